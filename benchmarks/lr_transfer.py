"""Learning-rate transfer across widths, SP against µP: does a learning rate found at the smallest
width still hold at the largest?

At fixed depth, context, batch and tokens, each parametrization trains each width over a
learning-rate grid spaced by sqrt(2) (lr = 1e-3 x 2^(k/2)). The grid is walked, not filled:
from the best rate of the width before, outwards until the best rate tried has two tried rates on
each side. lr* per width is the parabola in log lr through the best rate and its neighbours
(`scalelab.analysis.transfer`). Then, at the largest width, one run at the smallest width's lr*
and one at its own lr*, same seed: the regret of transferring is the first loss over the second.

Figures (targets from the issue: µP spread <= 0.5 doublings, µP regret < 0.5%):
- spread of log2(lr*) across the widths, SP vs µP;
- regret of the smallest width's lr* at the largest width, SP vs µP.

Every run is a real `scalelab train` run with its record in --out; rerunning the command reuses
finished runs. With the defaults, 51 runs, about 25 min on 2 CPU cores; on a GPU, --widths 64,128,256,512
--tokens 2e7 trainer=gpu.

    .venv/bin/python benchmarks/lr_transfer.py [--widths 16,32,64,128] [--tokens 1e6] [--seeds 1] [--out runs/bench_lr_transfer] [OVERRIDE ...]
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

from hydra import compose, initialize_config_module  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from scalelab.analysis import transfer  # noqa: E402
from scalelab.analysis.table import load_table  # noqa: E402
from scalelab.platform.train import train  # noqa: E402
from scalelab.record import read  # noqa: E402

FAMILY = ["model.depth=2", "model.heads=2", "model.context=64", "model.init_std=0.1", "train.batch_size=16",
          "train.eval_tokens=32768", "logger=none"]


def rate(k: int) -> float:
    return 1e-3 * 2 ** (k / 2)


def run(out: Path, parametrization: str, width: int, lr: float, tokens: float, base: int, extra: list[str],
        name: str) -> float:
    overrides = [*FAMILY, f"model.width={width}", f"train.tokens={tokens:g}", f"optim.lr={float(lr)!r}",
                 f"model.parametrization={parametrization}", f"model.base_width={base}", *extra]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_dir = out / parametrization / f"width_{width}" / name
    loss = train(cfg, run_dir=run_dir)
    diverged = read(run_dir)["status"] != "completed"
    return math.inf if diverged or loss is None or not math.isfinite(loss) else loss


def mean_run(out: Path, parametrization: str, width: int, lr: float, tokens: float, base: int, extra: list[str],
             name: str, seeds: int) -> float:
    """The mean final loss over `seeds` seeds (seed 0's run keeps the name of a one-seed benchmark)."""
    losses = [run(out, parametrization, width, lr, tokens, base, [*extra, f"train.seed={s}"],
                  name if s == 0 else f"{name}_seed{s}") for s in range(seeds)]
    return sum(losses) / len(losses)


def walk(evaluate, start: int, low: int = -8, high: int = 18) -> int:
    """Evaluate grid points from `start` until the best has two evaluated points on each side
    (or the grid's end); returns the best k."""
    losses: dict[int, float] = {}
    todo = [start - 1, start, start + 1]
    while todo:
        for k in todo:
            if low <= k <= high and k not in losses:
                losses[k] = evaluate(k)
        best = min(losses, key=losses.get)
        todo = [k for k in (best - 2, best - 1, best + 1, best + 2) if low <= k <= high and k not in losses]
    return min(losses, key=losses.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="16,32,64,128")
    parser.add_argument("--tokens", type=float, default=1e6)
    parser.add_argument("--out", default="runs/bench_lr_transfer")
    parser.add_argument("--seeds", type=int, default=1, help="runs per grid point, averaged")
    parser.add_argument("--parametrizations", default="sp,mup",
                        help="train these only (one process each, in parallel; a last run with both reports)")
    parser.add_argument("overrides", nargs="*", help="more training overrides, e.g. trainer=gpu")
    args = parser.parse_args()
    widths = sorted(int(w) for w in args.widths.split(","))
    out, base = Path(args.out), widths[0]

    trained = args.parametrizations.split(",")
    for parametrization in trained:
        start = round(2 * math.log2(1e-2 / 1e-3))  # lr 1e-2
        for width in widths:
            start = walk(lambda k: mean_run(out, parametrization, width, rate(k), args.tokens, base, args.overrides,
                                            f"lr_{k}", args.seeds), start)

    if set(trained) != {"sp", "mup"}:
        return
    table = load_table(out, quiet=True)  # the completed runs
    grid = table[table["record"].str.contains(f"{os.sep}lr_")]
    optima = transfer.lr_optima(grid)
    spreads = transfer.spread(optima)
    print(f"widths {widths} (base width {base}), depth 2, context 64, batch 16, D = {args.tokens:g} tokens, "
          f"{args.seeds} seed(s) per point")
    print(optima.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    regrets = {}
    for parametrization in ("sp", "mup"):
        rows = optima[optima["parametrization"] == parametrization].set_index("width")
        small, large = rows.loc[widths[0], "lr_opt"], rows.loc[widths[-1], "lr_opt"]
        transferred, own = (mean_run(out, parametrization, widths[-1], lr, args.tokens, base, args.overrides, name,
                                     args.seeds) for lr, name in ((small, f"transferred_{small:.6g}"), (large, f"own_{large:.6g}")))
        regrets[parametrization] = transferred / own - 1
        print(f"{parametrization}: lr* spread {spreads[parametrization]:.2f} doublings; at width {widths[-1]}, "
              f"lr {small:.4g} (width {widths[0]}'s lr*) -> loss {transferred:.4f}, its own lr* {large:.4g} -> "
              f"{own:.4f}: regret {100 * regrets[parametrization]:.2f}%")
    print(f"spread of log2(lr*): SP {spreads['sp']:.2f}, muP {spreads['mup']:.2f} (goal: muP <= 0.5)")
    print(f"regret of the smallest width's lr* at the largest: SP {100 * regrets['sp']:.2f}%, "
          f"muP {100 * regrets['mup']:.2f}% (goal: muP < 0.5%)")
    path = transfer.plot_lr_transfer(grid, optima, out / "lr_transfer.png")
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
