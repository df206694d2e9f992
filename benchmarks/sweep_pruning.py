"""Pruning: a 24-trial learning-rate search at one scale, with and without a pruner, same seed.

Prints the ratio of training tokens spent (pruned / unpruned) and both best final validation
losses. Target: at most 0.6 of the tokens for a best loss within 0.5% of the unpruned search's.

    .venv/bin/python benchmarks/sweep_pruning.py [--trials 24] [--tokens 6e4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

# 234 steps per full trial; evaluations every 30 steps on 8192 tokens (a smaller evaluation set
# makes the final losses noisy at the 0.5% level, and "best of 24" then rewards luck).
SCALE = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
         "train.eval_every=30", "train.eval_tokens=8192", "logger=none"]
# Rungs at 15,360 and 46,080 tokens (60 and 180 steps of 256 tokens; trials report against tokens
# seen): a trial goes on only if in the best third of those at its rung.
PRUNER = ["+hydra.sweeper.pruner._target_=optuna.pruners.SuccessiveHalvingPruner",
          "+hydra.sweeper.pruner.min_resource=15360", "+hydra.sweeper.pruner.reduction_factor=3"]


def sweep(work: Path, name: str, trials: int, tokens: str, extra: list[str]) -> tuple[list, float]:
    storage = f"sqlite:///{work}/studies.db"
    cmd = [sys.executable, "-m", "scalelab", "train", "-m", "hydra/sweeper=scalelab",
           f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage={storage}",
           f"hydra.sweeper.n_trials={trials}", f"hydra.sweep.dir={work}/{name}",
           "hydra.sweeper.sampler.seed=0", "+hydra.sweeper.sampler.n_startup_trials=8",
           "+hydra.sweeper.params.optim.lr=tag(log, interval(1e-4, 1e-1))",
           f"train.tokens={tokens}", *SCALE, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=dict(os.environ, WANDB_MODE="disabled"),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"sweep {name} failed:\n{proc.stderr[-3000:]}")
    study = optuna.load_study(study_name=name, storage=storage)
    rows = []
    for t in study.trials:
        rec = json.loads(Path(t.user_attrs["record"]).read_text())
        rows.append((t.state.name, rec["metrics"]["tokens_seen"] or 0,
                     rec["metrics"]["final_val_loss"] if t.state.name == "COMPLETE" else None))
    return rows, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--tokens", default="6e4", help="training tokens per full trial")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scalelab-sweep-pruning-"))
    full, wall_full = sweep(work, "unpruned", args.trials, args.tokens, [])
    pruned, wall_pruned = sweep(work, "pruned", args.trials, args.tokens, PRUNER)
    tokens_full, tokens_pruned = sum(r[1] for r in full), sum(r[1] for r in pruned)
    best_full = min(r[2] for r in full if r[2] is not None)
    best_pruned = min(r[2] for r in pruned if r[2] is not None)
    n_pruned = sum(r[0] == "PRUNED" for r in pruned)
    print(f"sweep_pruning: {args.trials}-trial lr search, {args.tokens} tokens per full trial, TPE seed 0")
    print(f"  pruner: SuccessiveHalvingPruner(min_resource=15360 tokens, reduction_factor=3); {n_pruned} trials pruned")
    print(f"  training tokens, pruned / unpruned: {tokens_pruned} / {tokens_full} = "
          f"{tokens_pruned / tokens_full:.3f}  (target <= 0.6)")
    print(f"  best final val loss: unpruned {best_full:.4f}, pruned {best_pruned:.4f} "
          f"({(best_pruned / best_full - 1) * 100:+.2f}%; target within 0.5%)")
    print(f"  wall: unpruned {wall_full:.0f} s, pruned {wall_pruned:.0f} s")


if __name__ == "__main__":
    main()
