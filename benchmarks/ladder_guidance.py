"""Law-guided search against the fixed-range ladder: regret at the law-guided scales.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder_guidance.py [--seeds 0,1,2] [--parallel 2]
        [--out runs/bench_ladder_guidance] [--tiny]

The `sweeps=ladder` study on a 12-scale ladder, model.width=12,16,24,32 x train.tokens=2e5,5e5,1.25e6
(`FULL_SCALES`), with the preset's lr range, trials per scale and everything else (read from
sweeps/ladder.yaml: 6 lr trials per scale in tag(log, interval(2e-3, 2e-1)), TPE), is run
twice per sampler seed, with `scaling.seeds=0 scaling.verify=false`: with `scaling.guide=true` (the first
`scaling.wide_scales` scales in ascending compute search the configured range, every later one a
range centred on the lr law fitted to the scales before it) and with `scaling.guide=false` (every
scale searches the configured range: the fixed-range ladder). Once, a plain ladder sweep
(`scaling.enabled=false`, Optuna's GridSampler) trains a dense lr grid at the same scales: factors
of sqrt(2) from the configured range's low end to the first point at or above its high end
(2e-3 .. 0.256, 15 points, for the range above). A best grid point at the grid's edge is warned.

Regret at a scale: the best completed search trial's final validation loss over the best final
validation loss of the grid at that scale, minus 1 (negative when a trial beats every grid
point). Per seed, the mean regret over the scales after the wide ones (scales 3..12 in ascending
C) for each study and the ratio guided / fixed; over seeds, the mean, min..max and standard
deviation of each, and the ratio of the means. Target: guided mean regret <= half the fixed one.

Each sweep is a subprocess (`python -m scalelab train -m sweeps=ladder ...`, trainer.threads=1,
WANDB_MODE=disabled, OMP_NUM_THREADS=1), at most --parallel at once, in its own folder under
--out with its own SQLite file; its output is in that folder's sweep.log. A sweep that finished
before with the same command is not run again (rerunning it would also be safe: the sweeper
resumes and skips finished work), and one stopped by a signal is resumed. A sweep whose process
fails after all its search trials (the fits after the ladder) still counts: the regret needs the
trials alone; the error line is printed. On the 2-core machine the full run (grid: 180 runs; 6
studies of 72 runs) takes about an hour with --parallel 2.
--tiny (widths 8..20, 2e4..8e4 tokens, a 6-point grid, 3 trials per scale, one seed) takes about
2 minutes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

from scalelab import record

REPO = Path(__file__).resolve().parent.parent
PRESET = REPO / "sweeps" / "ladder.yaml"
DONE_FILE = "bench_done.json"
INTERRUPTED = (130, 143, -2, -15)  # exit statuses of a sweep stopped by SIGINT or SIGTERM
MAX_RESUMES = 2
# --tiny: smaller scales (3 token budgets: the study's L(N, D) fit needs them), 3 trials each
TINY_SCALES = ["model.width=8,12,16,20", "train.tokens=2e4,4e4,8e4"]
TINY_TRIALS, TINY_GRID = 3, 6
# The benchmark's ladder: wider than the study's default (model.width=8,12,16) so that the
# guidance has 10 scales to act on; every other setting is the preset's.
FULL_SCALES = ["model.width=12,16,24,32", "train.tokens=2e5,5e5,1.25e6"]


def preset() -> dict:
    """What the benchmark takes from the `sweeps=ladder` preset: the ladder axes, the configured
    lr range, the trials per scale and the scales searched wide."""
    sweeper = OmegaConf.load(PRESET).hydra.sweeper
    found = re.search(r"interval\(\s*([^,\s]+)\s*,\s*([^)\s]+)\s*\)", str(sweeper.params["optim.lr"]))
    if not found:
        sys.exit(f"{PRESET}: optim.lr is not searched as tag(log, interval(a, b))")
    return {"width": str(sweeper.params["model.width"]), "tokens": str(sweeper.params["train.tokens"]),
            "lr": (float(found.group(1)), float(found.group(2))), "n_trials": int(sweeper.n_trials),
            "wide_scales": int(sweeper.scaling.wide_scales)}


def lr_grid(low: float, high: float, tiny: bool) -> list[float]:
    """Factors of sqrt(2) from `low` up to the first point at or above `high` (tiny: 6 points,
    `low` to `high`), rounded to 4 significant digits."""
    if tiny:
        points = [low * (high / low) ** (k / (TINY_GRID - 1)) for k in range(TINY_GRID)]
    else:
        n = math.ceil(math.log(high / low) / math.log(math.sqrt(2)) - 1e-9) + 1
        points = [low * 2 ** (k / 2) for k in range(n)]
    return [float(f"{v:.4g}") for v in points]


def sweep_command(folder: Path, name: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "scalelab", "train", "-m", "sweeps=ladder", "logger=none", "trainer.threads=1",
            f"hydra.sweep.dir={folder}", f"hydra.sweeper.storage=sqlite:///{folder}/studies.db",
            f"hydra.sweeper.study_name={name}", *extra]


def trials_done(folder: Path, n_scales: int, n_trials: int) -> bool:
    """Whether the folder holds `n_trials` finished search trials (completed, diverged or pruned)
    at each of `n_scales` scales."""
    count: dict[tuple, int] = {}
    for path in record.find(folder):
        rec = record.read(path)
        # an interrupted trial's record says failed and the resumed sweep runs another in its place
        if record.get(rec, "config.trial.role") is None and rec.get("status") != "failed":
            key = (record.get(rec, "scale.N"), record.get(rec, "scale.D"))
            count[key] = count.get(key, 0) + 1
    return len(count) >= n_scales and all(c >= n_trials for c in count.values())


def last_error(folder: Path) -> str:
    lines = [ln for ln in (folder / "sweep.log").read_text().splitlines() if "error:" in ln.lower()]
    return lines[-1].strip() if lines else "(no error line in sweep.log)"


def run_sweep(label: str, folder: Path, cmd: list[str], n_scales: int, n_trials: int) -> dict:
    """Run one sweep (or reuse a finished one); returns its label, wall time and exit status.
    A sweep whose process exits non-zero after every search trial finished (the fits after the
    ladder can fail) counts as finished: the regret needs the trials alone."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / DONE_FILE
    if done.exists():
        stored = json.loads(done.read_text())
        if stored.get("cmd") == cmd and stored.get("complete"):
            return {**stored, "label": label, "reused": True}
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    print(f"[{time.strftime('%H:%M:%S')}] start {label}", flush=True)
    t0 = time.perf_counter()
    interrupts = 0
    while True:
        with open(folder / "sweep.log", "a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            log.flush()
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        complete = rc == 0 or trials_done(folder, n_scales, n_trials)
        # stopped by a signal from outside (Ctrl-C, SIGTERM: exit 130/143): the same command resumes
        if complete or rc not in INTERRUPTED or interrupts >= MAX_RESUMES:
            break
        interrupts += 1
        print(f"[{time.strftime('%H:%M:%S')}] {label}: stopped by a signal (exit {rc}); resuming", flush=True)
    wall = time.perf_counter() - t0
    out = {"label": label, "cmd": cmd, "rc": rc, "wall_s": wall, "reused": False, "complete": complete,
           "interrupts": interrupts, "error": None if rc == 0 else last_error(folder)}
    if complete:
        done.write_text(json.dumps(out, indent=1))
    print(f"[{time.strftime('%H:%M:%S')}] end   {label}: exit {rc}, {wall:.0f} s", flush=True)
    return out


def best_by_scale(folder: Path) -> dict[tuple, dict]:
    """Per scale (N, D): C, and the completed search trials' (lr, final_val_loss), best first."""
    scales: dict[tuple, dict] = {}
    for path in record.find(folder):
        rec = record.read(path)
        if record.get(rec, "config.trial.role") is not None or rec.get("status") != "completed":
            continue
        loss = record.get(rec, "metrics.final_val_loss")
        if loss is None or not math.isfinite(loss):
            continue
        key = (float(record.get(rec, "scale.N")), float(record.get(rec, "scale.D")))
        cell = scales.setdefault(key, {"C": float(record.get(rec, "scale.C")), "trials": []})
        cell["trials"].append((float(record.get(rec, "hparams.lr")), float(loss)))
    for cell in scales.values():
        cell["trials"].sort(key=lambda t: t[1])
    return scales


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"mean {statistics.mean(values):+.5f}  min..max {min(values):+.5f}..{max(values):+.5f}  sd {sd:.5f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated TPE sampler seeds")
    ap.add_argument("--parallel", type=int, default=2, help="sweeps run at once")
    ap.add_argument("--out", default="runs/bench_ladder_guidance", help="folder for every sweep")
    ap.add_argument("--tiny", action="store_true", help="smoke mode: small scales, 6-point grid, 3 trials, one seed")
    args = ap.parse_args()
    conf = preset()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out).resolve()
    if args.tiny:
        seeds, out = seeds[:1], out / "tiny"
        scales, n_trials = TINY_SCALES, TINY_TRIALS
        n_scales = math.prod(len(o.split("=", 1)[1].split(",")) for o in TINY_SCALES)
    else:
        scales, n_trials = FULL_SCALES, conf["n_trials"]
        n_scales = math.prod(len(o.split("=", 1)[1].split(",")) for o in FULL_SCALES)
    wide = conf["wide_scales"]
    grid = lr_grid(*conf["lr"], args.tiny)

    jobs = []
    grid_dir = out / "grid"
    jobs.append(("grid", grid_dir, len(grid), sweep_command(grid_dir, "grid", [
        # `hydra/sweeper/sampler=grid` cannot be merged with the preset's TPE `n_startup_trials`
        # (a ConfigKeyError while composing); the same GridSampler, named by its target, can
        *scales, "hydra.sweeper.sampler._target_=optuna.samplers.GridSampler",
        "~hydra.sweeper.sampler.n_startup_trials", f"optim.lr=choice({','.join(f'{v:g}' for v in grid)})",
        f"hydra.sweeper.n_trials={len(grid)}", "hydra.sweeper.scaling.enabled=false"])))
    for seed in seeds:
        for mode, guide in (("guided", "true"), ("fixed", "false")):
            folder = out / f"{mode}_seed{seed}"
            jobs.append((f"{mode} seed {seed}", folder, n_trials, sweep_command(folder, f"{mode}_seed{seed}", [
                *scales, f"hydra.sweeper.n_trials={n_trials}",
                f"hydra.sweeper.sampler.seed={seed}", f"hydra.sweeper.scaling.guide={guide}",
                "hydra.sweeper.scaling.seeds=0", "hydra.sweeper.scaling.verify=false"])))

    print(f"ladder_guidance: {len(jobs)} sweeps under {out}, {args.parallel} at once"
          f"{' (tiny)' if args.tiny else ''}", flush=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        results = list(pool.map(lambda job: run_sweep(job[0], job[1], job[3], n_scales, job[2]), jobs))
    total = time.perf_counter() - t0

    print("\nwall time per sweep:")
    for r in results:
        note = " (reused: finished before; its first run's time)" if r["reused"] else ""
        if r.get("interrupts"):
            note += f" (stopped by a signal {r['interrupts']} time(s) and resumed; time includes every attempt)"
        print(f"  {r['label']:<16} {r['wall_s']:7.0f} s  exit {r['rc']}{note}")
        if r["rc"] != 0 and r["complete"]:
            print(f"  {'':<16} every search trial finished; the sweep then ended with: {r['error']}")
    print(f"  all sweeps: {total:.0f} s wall with {args.parallel} at once")
    failed = [(r, job[1]) for r, job in zip(results, jobs) if not r["complete"]]
    for r, folder in failed:
        tail = (folder / "sweep.log").read_text()[-3000:]
        print(f"\nsweep {r['label']} exited {r['rc']}; the end of {folder / 'sweep.log'}:\n{tail}")
    if failed:
        sys.exit(1)

    # ----------------------------------------------------------------- the grid's optimum per scale
    grid_cells = best_by_scale(grid_dir)
    order = sorted(grid_cells, key=lambda k: grid_cells[k]["C"])
    measured = order[wide:]
    print(f"\ndense grid: {len(grid)} lrs {grid[0]:g} .. {grid[-1]:g} (factor {grid[1] / grid[0]:.3g}) per scale")
    print(f"  {'scale':>5} {'N':>8} {'D':>8} {'C':>10} {'grid pts':>8} {'best lr':>9} {'best loss':>10}")
    warnings = []
    for i, key in enumerate(order, 1):
        cell = grid_cells[key]
        lr, loss = cell["trials"][0]
        print(f"  {i:>5} {key[0]:8.4g} {key[1]:8.4g} {cell['C']:10.4g} {len(cell['trials']):>8} {lr:9.4g} {loss:10.5f}")
        if math.isclose(lr, grid[0], rel_tol=1e-6) or math.isclose(lr, grid[-1], rel_tol=1e-6):
            warnings.append(f"WARNING: at scale {i} (N={key[0]:.4g}, D={key[1]:.4g}) the best grid lr {lr:g} is the "
                            "grid's edge: the grid may not cover the optimum")
        if len(cell["trials"]) < len(grid):
            warnings.append(f"note: at scale {i} only {len(cell['trials'])} of {len(grid)} grid runs completed "
                            "(the others diverged or failed)")
    for w in warnings:
        print(w)
    if len(order) < wide + 1:
        sys.exit(f"the grid has {len(order)} scales with a completed run: nothing to measure")

    # ----------------------------------------------------------------- regret per seed
    regrets: dict[str, dict[int, list]] = {"guided": {}, "fixed": {}}
    print(f"\nregret at scales {wide + 1}..{len(order)} (best search trial / best grid loss - 1)")
    header = "  ".join(f"{f'{m} s{s}':>10}" for s in seeds for m in ("guided", "fixed"))
    print(f"  {'scale':>5} {'C':>10} {'grid lr':>9}  {header}")
    cells = {(m, s): best_by_scale(out / f"{m}_seed{s}") for s in seeds for m in ("guided", "fixed")}
    for i, key in enumerate(measured, wide + 1):
        best_grid = grid_cells[key]["trials"][0][1]
        row = []
        for s in seeds:
            for m in ("guided", "fixed"):
                cell = cells[(m, s)].get(key)
                if cell is None:
                    sys.exit(f"{m} seed {s}: no completed search trial at N={key[0]:.4g} D={key[1]:.4g}")
                lr, loss = cell["trials"][0]
                r = loss / best_grid - 1
                regrets[m].setdefault(s, []).append(r)
                row.append(f"{r:+10.5f}")
        print(f"  {i:>5} {grid_cells[key]['C']:10.4g} {grid_cells[key]['trials'][0][0]:9.4g}  {'  '.join(row)}")

    print("\nper seed: mean regret over those scales")
    print(f"  {'seed':>4} {'guided':>10} {'fixed':>10} {'guided/fixed':>13}")
    means = {m: [statistics.mean(regrets[m][s]) for s in seeds] for m in ("guided", "fixed")}
    ratios = []
    for s, g, f in zip(seeds, means["guided"], means["fixed"]):
        ratio = g / f if f != 0 else float("nan")
        ratios.append(ratio)
        print(f"  {s:>4} {g:+10.5f} {f:+10.5f} {ratio:13.3f}")
    print(f"\nover {len(seeds)} seed(s):")
    print(f"  guided mean regret: {spread(means['guided'])}")
    print(f"  fixed  mean regret: {spread(means['fixed'])}")
    finite = [r for r in ratios if math.isfinite(r)]
    if finite:
        print(f"  ratio guided/fixed per seed: {spread(finite).replace('+', '')}")
    g_mean, f_mean = statistics.mean(means["guided"]), statistics.mean(means["fixed"])
    ratio_of_means = g_mean / f_mean if f_mean != 0 else float("nan")
    print(f"  ratio of the means guided/fixed: {ratio_of_means:.3f}")
    met = g_mean <= 0.5 * f_mean
    print(f"\ntarget (guided mean regret <= half the fixed one): {'MET' if met else 'NOT MET'} "
          f"(guided {g_mean:+.5f} vs half of fixed {0.5 * f_mean:+.5f}; ratio {ratio_of_means:.3f})")


if __name__ == "__main__":
    main()
