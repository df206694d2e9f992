"""The backtest's reference runs: whole loss curves of the project's own models, trained once.

Six widths (N = 25k to 887k non-embedding parameters, 36x) x three peak learning rates, each one
WSD run to 3.2M tokens with cooldown branches at 0.1M, 0.2M, 0.4M, 0.8M and 1.6M tokens (D spans
32x), warmup 30 steps for every budget, and a few more runs (`EXTRA`). Every run is trained by `scalelab train`, two at a time on
one thread each, into runs/reference/ (a run with a record is not trained again, so a killed
script resumes), and the curves go to benchmarks/data/reference_curves.csv: one row per
evaluation, with the learning rate at that step and the schedule's areas (`scalelab.analysis.curves`).

    .venv/bin/python benchmarks/reference_runs.py            # about an hour on 2 idle cores
    .venv/bin/python benchmarks/reference_runs.py --export   # only rewrite the CSV from runs/reference
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scalelab.analysis.curves import LAMBDA, curve_rows
from scalelab.record import find, read

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = (32, 48, 64, 96, 128, 192)
RATES = (0.5, 1.0, 2.0)  # x each width's centre rate, 2.5e-3 x 128 / width (Adam's best rate falls about as 1 / width)
TOKENS = 3.2e6
BRANCHES = "[1e5,2e5,4e5,8e5,1.6e6]"
SETTINGS = ["model=gpt_xs", "model.name=gpt_reference", "model.depth=2", "model.heads=2", "model.context=64",
            "train.batch_size=16", "train.eval_tokens=32768", "train.eval_share=1", "train.evals=16", f"train.tokens={TOKENS:g}",
            "schedule=wsd", "schedule.warmup=30", "schedule.decay_fraction=0.2",
            f"schedule.branches={BRANCHES}", "trainer.threads=1", "logger=csv"]
# (width, lr, seed) beyond the grid: width 96's middle rate diverged at step 21, in its warmup,
# so a rate between; and the best rate of widths 64 and 128 with more seeds, for the seed-to-seed spread
EXTRA = [(96, 2.5e-3, 0), (64, 5e-3, 1), (64, 5e-3, 2), (128, 2.5e-3, 1)]
OUT = ROOT / "benchmarks" / "data" / "reference_curves.csv"


def train(width: int, lr: float, runs: Path, seed: int = 0) -> None:
    """One run and its branches (a finished one is reused, a killed one resumes)."""
    folder = runs / (f"w{width}_lr{lr:g}" + (f"_seed{seed}" if seed else ""))
    cmd = [sys.executable, "-m", "scalelab", "train", *SETTINGS, f"model.width={width}", f"optim.lr={lr:g}",
           f"train.seed={seed}", f"hydra.run.dir={folder}"]
    subprocess.run(cmd, check=False, cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"},
                   stdout=subprocess.DEVNULL)
    print(f"width {width} lr {lr:g}: {'done' if (folder / 'run.json').exists() else 'FAILED'}", flush=True)


def export(runs: Path, out: Path, lam: float) -> None:
    records = [read(path) for path in find(runs)]
    table = curve_rows(records, lam)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g")
    print(f"{len(table)} curve points of {table['run'].nunique()} runs -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "reference")
    parser.add_argument("--export", action="store_true", help="only write the CSV from the runs there")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--lam", type=float, default=LAMBDA, help="the annealing momentum of the areas")
    args = parser.parse_args()
    if not args.export:
        jobs = [(w, 2.5e-3 * 128 / w * r, 0) for w in reversed(WIDTHS) for r in RATES]  # the longest first
        jobs += EXTRA
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda job: train(job[0], job[1], args.runs, job[2]), jobs))
    export(args.runs, args.out, args.lam)


if __name__ == "__main__":
    main()
