"""WSD cooldown branches against dedicated runs: what many token budgets from one run cost, and
whether the laws fitted to them change.

For each model size (widths 8, 16, 32 of the ladder's family: depth 2, context 64, batch 16) and
four budgets D = 2.5e5, 5e5, 1e6, 2e6 tokens, with a warmup of 20 steps and the last 20% of each
run cooling down:
- one run to 2e6 tokens with `schedule.branches` at the three smaller budgets (a family);
- a dedicated WSD run to each of the three smaller budgets (the family's own run is the dedicated
  run to 2e6: nothing forks it);
- at the largest width, a cosine run to each budget (same warmup, same peak rate).
Prints the compute (training FLOPs, the records' convention) of the branches against the
dedicated runs, the final-loss difference branch vs dedicated run, WSD vs cosine at equal D, and
a Chinchilla fit (bootstrap 200) from the branch records against one from the dedicated runs.

Every run is a `scalelab train` run with its record in --out; rerunning reuses finished runs.
About 10 min on 2 CPU cores.

    .venv/bin/python benchmarks/wsd_branches.py [--out runs/bench_wsd_branches]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

from hydra import compose, initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from scalelab.analysis.laws import ChinchillaLaw  # noqa: E402
from scalelab.analysis.table import load_table  # noqa: E402
from scalelab.platform.train import train  # noqa: E402
from scalelab.record import read  # noqa: E402

FAMILY = ["model.depth=2", "model.heads=2", "model.context=64", "model.init_std=0.1", "train.batch_size=16",
          "train.eval_tokens=32768", "optim.lr=0.02", "schedule.warmup=20", "logger=none"]
WIDTHS = (8, 16, 32)
BUDGETS = (2.5e5, 5e5, 1e6, 2e6)


def run(folder: Path, *overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*FAMILY, *overrides])
    train(cfg, run_dir=folder)
    return read(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_wsd_branches")
    args = parser.parse_args()
    out = Path(args.out)
    smaller = ",".join(f"{d:g}" for d in BUDGETS[:-1])
    compute = {"branches": 0.0, "dedicated": 0.0}
    differences, wsd = [], {}  # wsd: the largest width's final loss by budget
    for width in WIDTHS:
        family = out / "branches" / f"width_{width}"
        parent = run(family, f"model.width={width}", f"train.tokens={BUDGETS[-1]:g}", "schedule=wsd",
                     f"schedule.branches=[{smaller}]")
        compute["branches"] += parent["family"]["compute"]
        compute["dedicated"] += parent["scale"]["C"]
        wsd[BUDGETS[-1]] = parent["metrics"]["final_val_loss"]
        for budget, folder in zip(BUDGETS, parent["family"]["folders"]):
            branch = read(family / folder)
            dedicated = run(out / "dedicated" / f"width_{width}" / f"D={budget:g}", f"model.width={width}",
                            f"train.tokens={budget:g}", "schedule=wsd")
            compute["dedicated"] += dedicated["scale"]["C"]
            differences.append(branch["metrics"]["final_val_loss"] - dedicated["metrics"]["final_val_loss"])
            wsd[budget] = dedicated["metrics"]["final_val_loss"]
    print(f"models: widths {WIDTHS}, depth 2, context 64; budgets D = {', '.join(f'{d:g}' for d in BUDGETS)}")
    print(f"compute: branches {compute['branches']:.4g} FLOPs, dedicated runs {compute['dedicated']:.4g}: "
          f"ratio {compute['branches'] / compute['dedicated']:.3f}")
    print(f"final loss, branch - dedicated run, {len(differences)} pairs: max |difference| "
          f"{max(abs(d) for d in differences):.2e}")

    print(f"WSD vs cosine at width {WIDTHS[-1]} (same warmup, peak rate, seed):")
    for budget in BUDGETS:
        cosine = run(out / "cosine" / f"D={budget:g}", f"model.width={WIDTHS[-1]}", f"train.tokens={budget:g}",
                     "schedule=cosine")["metrics"]["final_val_loss"]
        print(f"  D = {budget:8.3g}: WSD {wsd[budget]:.4f}, cosine {cosine:.4f}, "
              f"WSD - cosine {wsd[budget] - cosine:+.4f} ({100 * (wsd[budget] / cosine - 1):+.2f}%)")

    table = load_table(out, quiet=True)
    where = table["record"].map(lambda p: Path(p).relative_to(out).parts)
    parents = where.map(lambda parts: parts[0] == "branches" and len(parts) == 3)  # branches/width_*/run.json
    sets = {"branches": table[where.map(lambda parts: parts[0] == "branches")],
            "dedicated": table[where.map(lambda parts: parts[0] == "dedicated") | parents]}
    fits = {}
    for name, runs in sets.items():
        fits[name] = ChinchillaLaw().fit(runs, bootstrap=200, seed=0)
        print(f"Chinchilla fit from the {name} ({len(runs)} runs): " + ", ".join(
            f"{k} {v:.4g} [{fits[name].ci_[k][0]:.4g}, {fits[name].ci_[k][1]:.4g}]" for k, v in fits[name].params_.items()))
    inside = all(fits[b].ci_[k][0] <= fits[a].params_[k] <= fits[b].ci_[k][1]
                 for a, b in (("branches", "dedicated"), ("dedicated", "branches")) for k in fits[a].params_)
    print(f"each fit's parameters inside the other's bootstrap interval: {inside}; largest relative difference "
          f"{max(abs(fits['branches'].params_[k] / fits['dedicated'].params_[k] - 1) for k in fits['branches'].params_):.2e}")


if __name__ == "__main__":
    main()
