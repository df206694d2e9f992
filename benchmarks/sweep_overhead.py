"""Sweeper overhead: one process, N tiny trials through the real training run.

Prints the fraction of the sweep's wall time spent in training steps and the median
per-trial overhead (ask, compose, launch, record, tell: everything between two trials that is
not the job's own train() call). Targets: fraction >= 0.8, overhead < 0.5 s.

    .venv/bin/python benchmarks/sweep_overhead.py [--trials 20] [--tokens 1e5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

TINY = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
        "train.eval_every=50", "train.eval_tokens=2048", "logger=none"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--tokens", default="1e5", help="training tokens per trial (1e5: about 1 s of training here)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scalelab-sweep-overhead-"))
    storage = f"sqlite:///{work}/studies.db"
    cmd = [sys.executable, "-m", "scalelab", "train", "-m", "hydra/sweeper=scalelab",
           "hydra.sweeper.study_name=overhead", f"hydra.sweeper.storage={storage}",
           f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweep.dir={work}/runs",
           "+hydra.sweeper.params.optim.lr=tag(log, interval(1e-3, 1e-2))",
           f"train.tokens={args.tokens}", *TINY]
    env = dict(os.environ, WANDB_MODE="disabled")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    process_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"sweep failed:\n{proc.stderr[-3000:]}")
    trials = sorted(optuna.load_study(study_name="overhead", storage=storage).trials, key=lambda t: t.number)
    records = [json.loads(Path(t.user_attrs["record"]).read_text()) for t in trials]
    step_seconds = [r["metrics"]["tokens_seen"] / r["metrics"]["tokens_per_second"] for r in records]
    job_seconds = [r["metrics"]["wall_seconds"] for r in records]
    start, end = trials[0].datetime_start, trials[-1].datetime_complete
    sweep_wall = (end - start).total_seconds()
    # between the tell of trial i-1 and the tell of trial i, everything but trial i's train()
    overheads = [
        (trials[i].datetime_complete - trials[i - 1].datetime_complete).total_seconds() - job_seconds[i]
        for i in range(1, len(trials))
    ]
    print(f"sweep_overhead: {len(trials)} trials of {args.tokens} tokens, basic launcher, one process")
    print(f"  sweep wall (first ask -> last tell): {sweep_wall:.1f} s; process wall {process_wall:.1f} s "
          f"(includes {process_wall - sweep_wall:.1f} s of start-up: imports, config, storage)")
    print(f"  fraction of sweep wall in training steps: {sum(step_seconds) / sweep_wall:.3f}  (target >= 0.8)")
    print(f"  fraction of sweep wall inside the jobs' train(): {sum(job_seconds) / sweep_wall:.3f}")
    print(f"  median per-trial sweeper overhead (ask, compose, launch, record, tell): "
          f"{statistics.median(overheads):.3f} s  (target < 0.5 s; max {max(overheads):.3f} s)")
    print(f"  median job time outside training steps (model, data, trainer set-up, evaluation): "
          f"{statistics.median(j - s for j, s in zip(job_seconds, step_seconds)):.3f} s")


if __name__ == "__main__":
    main()
