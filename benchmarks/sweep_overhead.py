"""Sweeper overhead, two measurements.

1. The training app: one process, N tiny trials through the real training run. Prints the
   fraction of the sweep's wall time spent in training steps and the median per-trial overhead
   (ask, compose, launch, record, tell: everything between two trials that is not the job's own
   train() call). Targets: fraction >= 0.8, overhead < 0.5 s.

2. A plain Hydra app against Hydra's own `hydra-optuna-sweeper` (with --upstream-python).
   Upstream's `sphere` example (x, y floats, returns x**2 + y**2), written into a temporary
   folder with two configs that differ only in `override hydra/sweeper: optuna|scalelab`:
   TPE with seed 0 (upstream's `hydra/sweeper/sampler=tpe`), `n_jobs: 1`, the same search space,
   basic launcher, and a fresh SQLite file per process for both (`hydra.sweeper.storage=
   sqlite:///<run folder>/studies.db`): a study that a killed sweep can resume and several
   workers can share, scalelab's default. Upstream's own default (`storage: null`, an
   in-memory study) is measured as well and printed for reference, but the ratio uses the
   SQLite figures.
   Each app runs as a whole process (`PYTHON <folder>/sphere.py -m --config-name=optuna` or
   `=scalelab`), once with `--app-trials` (50) trials and once with `--startup-trials` (1), for
   `--rounds` (3) rounds; within a round the order of the processes is rotated (each side starts
   one round), so a slow spell of the machine falls on each side in turn. Per side:

       per-trial overhead = (wall(N trials) - wall(n trials)) / (N - n)
       start-up           = wall(n trials) - n x per-trial overhead

   that is, the marginal cost of one more trial (ask, compose the job's config, write its
   `.hydra/` files and log, run the job, tell, TPE's own sampling cost, storage writes), with
   Python start-up, imports, Hydra's plugin scan, the first compose and opening the storage left
   out (they are paid once and printed as start-up). The job itself does nothing measurable
   (x**2 + y**2), so the per-trial figure is all sweeper, Hydra and Optuna. Figures are medians
   over the rounds (min-max in brackets); the ratio is scalelab/upstream of the medians. As a
   cross-check that needs no subtraction, the median gap between consecutive trials' completion
   times in each SQLite storage is printed too (the sweep loop alone: no start-up, no end). The
   two sides use different Optuna versions (upstream requires optuna<3: 2.10.x; scalelab 5.x), as
   they would for a user; everything else (Python, hydra-core, omegaconf) should match, and the
   versions are printed. Each side runs in its own environment, so the installed Hydra plugins
   differ too (scalelab's .venv also holds the joblib and submitit launchers; installing them
   into the upstream environment left upstream's per-trial figure unchanged). The 1-minute load
   average is printed before and after: the figures mean little when other processes compete for
   the cores.

Upstream is never a dependency of scalelab: install it into a throwaway environment,

    python3 -m venv /tmp/upstream
    /tmp/upstream/bin/pip install hydra-optuna-sweeper 'optuna<3' 'hydra-core==1.3.8' \\
        'omegaconf==2.3.*' 'sqlalchemy<2' 'alembic<1.14'

(hydra-optuna-sweeper's `hydra-core>=1.1.0.dev7` lets pip pick a hydra-core pre-release: pin the
one scalelab uses; Optuna 2.10's SQLite storage needs SQLAlchemy 1.x), then

    .venv/bin/python benchmarks/sweep_overhead.py [--trials 20] [--tokens 1e5]
        [--upstream-python /tmp/upstream/bin/python] [--app-trials 50] [--rounds 3] [--no-train]

Without --upstream-python the comparison is skipped with a line saying so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import optuna

TINY = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
        "train.eval_every=50", "train.eval_tokens=2048", "logger=none"]

# hydra-optuna-sweeper's sphere example as the tests run it (the sweeper's name the one change)
EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "sweeps" / "examples"


def sphere_config(sweeper: str) -> str:
    """The example's config under `sweeper`, with TPE seed 0; n_trials and storage come from
    the command line."""
    text = (EXAMPLES / "conf" / "config.yaml").read_text()
    for old, new in (("override hydra/sweeper: scalelab", f"override hydra/sweeper: {sweeper}"),
                     ("seed: 123", "seed: 0")):
        if old not in text:
            sys.exit(f"sweep_overhead: the example config changed: no {old!r} in it")
        text = text.replace(old, new)
    return text


VERSIONS = ("import sys, importlib.metadata as m; print(sys.version.split()[0], "
            "*(p + '=' + m.version(p) for p in ('hydra-core', 'omegaconf', 'optuna', 'sqlalchemy')))")


def train_overhead(args: argparse.Namespace) -> None:
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


def _env() -> dict:
    env = dict(os.environ, WANDB_MODE="disabled", HYDRA_FULL_ERROR="1")
    for key in ("SCALELAB_OPTUNA_STORAGE", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(key, None)
    return env


def _sweep(python: str, app_dir: Path, config: str, n: int, storage: str,
           run_dir: Path) -> tuple[float, list[float]]:
    """Wall seconds of one whole `python sphere.py -m` process running `n` trials, and (SQLite
    only) the gaps in seconds between consecutive trials' completion times as the storage
    recorded them; checks that it launched exactly `n` jobs and stored `n` COMPLETE trials."""
    run_dir.mkdir(parents=True)
    url = f"sqlite:///{run_dir}/studies.db" if storage == "sqlite" else "null"
    cmd = [python, str(app_dir / "sphere.py"), "-m", f"--config-name={config}",
           f"hydra.sweeper.n_trials={n}", f"hydra.sweeper.storage={url}", f"hydra.sweep.dir={run_dir}/multirun"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=run_dir, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    jobs = sum(1 for _ in run_dir.rglob(".hydra/overrides.yaml"))
    if jobs != n:
        sys.exit(f"{' '.join(cmd)} ran {jobs} jobs, expected {n}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    if storage == "sqlite":  # both really wrote their trials to the file
        with contextlib.closing(sqlite3.connect(run_dir / "studies.db")) as db:
            done = [datetime.fromisoformat(row[0]) for row in db.execute(
                "SELECT datetime_complete FROM trials WHERE state = 'COMPLETE' ORDER BY number")]
        if len(done) != n:
            sys.exit(f"{' '.join(cmd)}: {len(done)} COMPLETE trials in its storage, expected {n}")
        return wall, [(b - a).total_seconds() for a, b in zip(done, done[1:])]
    return wall, []


def _fmt(values: list[float], digits: int = 3) -> str:
    med = statistics.median(values)
    return f"{med:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def app_comparison(args: argparse.Namespace) -> None:
    if not args.upstream_python:
        print("sphere app vs hydra-optuna-sweeper: skipped (no --upstream-python; see this script's "
              "docstring for the throwaway environment to create)")
        return
    upstream = str(Path(args.upstream_python).expanduser())
    if not Path(upstream).exists():
        sys.exit(f"--upstream-python {upstream}: no such file")
    big, small = args.app_trials, args.startup_trials
    if not 0 < small < big:
        sys.exit("need 0 < --startup-trials < --app-trials")
    work = Path(tempfile.mkdtemp(prefix="scalelab-sphere-overhead-"))
    (work / "conf").mkdir()
    (work / "sphere.py").write_text((EXAMPLES / "sphere.py").read_text())
    (work / "conf/optuna.yaml").write_text(sphere_config("optuna"))
    (work / "conf/scalelab.yaml").write_text(sphere_config("scalelab"))
    # (label, python, config, storage); the first two are compared
    sides = [("scalelab", sys.executable, "scalelab", "sqlite"),
             ("upstream", upstream, "optuna", "sqlite"),
             ("upstream in-memory", upstream, "optuna", "memory")]
    if args.no_memory:
        sides = sides[:2]
    versions = {}
    for label, python, _, _ in sides[:2]:
        out = subprocess.run([python, "-c", VERSIONS], capture_output=True, text=True, env=_env())
        versions[label] = out.stdout.strip() or out.stderr.strip()[-300:]
    print(f"sphere app, {big} trials, TPE seed 0, n_jobs 1, basic launcher, whole processes; "
          f"{args.rounds} interleaved rounds; start-up measured with {small} trial(s); work folder {work}")
    for label, text in versions.items():
        print(f"  {label:8s} python {text}")
    walls: dict[tuple[str, int], list[float]] = {(s[0], n): [] for s in sides for n in (big, small)}
    in_sweep: dict[str, list[float]] = {s[0]: [] for s in sides}
    loads = [os.getloadavg()[0]]
    runs = [(side, n) for side in sides for n in (small, big)]
    for r in range(args.rounds):
        shift = (2 * r) % len(runs)  # each side leads one round in turn
        for (label, python, config, storage), n in runs[shift:] + runs[:shift]:
            wall, gaps = _sweep(python, work, config, n, storage, work / f"round{r}" / f"{config}-{storage}-{n}")
            walls[(label, n)].append(wall)
            if n == big and gaps:
                in_sweep[label].append(statistics.median(gaps))
        loads.append(os.getloadavg()[0])
        last = "; ".join(f"{label} {walls[(label, big)][-1]:.2f} s / {walls[(label, small)][-1]:.2f} s"
                         for label, *_ in sides)
        print(f"  round {r + 1}: {last}  ({big} / {small} trial(s); load {loads[-1]:.2f})")
    per_trial = {label: [(b - s) / (big - small) for b, s in zip(walls[(label, big)], walls[(label, small)])]
                 for label, *_ in sides}
    startup = {label: [s - small * p for s, p in zip(walls[(label, small)], per_trial[label])]
               for label, *_ in sides}
    print(f"  {'':20s} {'process wall, ' + str(big) + ' trials (s)':>28s} {'per-trial overhead (s)':>24s} "
          f"{'start-up (s)':>22s}")
    for label, *_ in sides:
        print(f"  {label:20s} {_fmt(walls[(label, big)], 2):>28s} {_fmt(per_trial[label]):>24s} "
              f"{_fmt(startup[label], 2):>22s}")
    med = {label: statistics.median(v) for label, v in per_trial.items()}
    wall_ratio = statistics.median(walls[("scalelab", big)]) / statistics.median(walls[("upstream", big)])
    print(f"  ratio scalelab/upstream (both SQLite): per-trial overhead {med['scalelab'] / med['upstream']:.2f}, "
          f"whole-process wall for {big} trials {wall_ratio:.2f}")
    print(f"  cross-check from the SQLite storages, median gap between consecutive trials' completion "
          f"(inside the sweep loop, no start-up or end): scalelab {_fmt(in_sweep['scalelab'])} s, "
          f"upstream {_fmt(in_sweep['upstream'])} s")
    print(f"  1-minute load average: {' -> '.join(f'{x:.2f}' for x in loads)} (before, after each round; "
          f"{os.cpu_count()} CPUs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials of the training-app sweep")
    ap.add_argument("--tokens", default="1e5", help="training tokens per trial (1e5: about 1 s of training here)")
    ap.add_argument("--no-train", action="store_true", help="skip the training-app measurement")
    ap.add_argument("--upstream-python", help="python of an environment with hydra-optuna-sweeper "
                    "(e.g. /tmp/upstream/bin/python); without it the sphere comparison is skipped")
    ap.add_argument("--app-trials", type=int, default=50, help="trials per sphere sweep (N)")
    ap.add_argument("--startup-trials", type=int, default=1, help="trials of the start-up sweep (n)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the sphere comparison")
    ap.add_argument("--no-memory", action="store_true", help="skip upstream's in-memory reference run")
    args = ap.parse_args()
    if not args.no_train:
        train_overhead(args)
    app_comparison(args)


if __name__ == "__main__":
    main()
