"""`scalelab fit`, `predict`, `sensitivity`, `report` and `sync`: the analysis commands.

They import the analysis alone (numpy, pandas, scipy, Optuna's core); `report` adds matplotlib
and `sync` wandb's workspaces API, each inside its own command.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd

from scalelab.analysis.curves import load_curves
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import (AutoLaw, ChinchillaLaw, CurveLaw, HparamsLaw, IsoflopLaw, PowerLaw, SparsityLaw,
                                    load_fit)
from scalelab.analysis.laws.base import strict_json
from scalelab.analysis.laws.sparsity import EXPANSIONS
from scalelab.analysis.reach import LIMIT, beyond, distrust
from scalelab.analysis.sensitivity import importance_by_scale, importance_table, lr_sensitivity
from scalelab.analysis.table import best_per_cell, has_sweep, load_table, raw_frame, table_from_raw, warn
from scalelab.arguments import count, level, positive
from scalelab.record import write_atomic


class _Parser(argparse.ArgumentParser):
    """argparse whose errors reach `main` as an AnalysisError: one line, exit status 2."""

    def error(self, message: str):
        raise AnalysisError(message)


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="run folder, .csv/.parquet, Optuna storage URL or "
                                  "wandb:ENTITY/PROJECT")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="name a column of a foreign table (N, D, C, loss, lr, batch_size, "
                        "initial_loss, or any hyperparameter)")
    p.add_argument("--context", type=positive, default=None,
                   help="tokens per sequence, for batch size in tokens when the table lacks it")
    p.add_argument("--status", default="completed",
                   help="comma-separated run statuses to use (default completed; 'all' for all)")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="scalelab", description="Fit, predict and report scaling laws.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="fit|predict|sensitivity|report|sync")
    f = sub.add_parser("fit", help="fit a law to runs")
    _source_args(f)
    f.add_argument("--law", required=True,
                   choices=["power", "chinchilla", "isoflop", "auto", "hparams", "curve", "sparsity"],
                   help="curve: whole loss curves (run, N, step or tokens, lr, loss), the schedule in the law; "
                        "sparsity: MoE runs of several sparsities, L(N_active, D, G = experts/top_k)")
    f.add_argument("--form", default=None, help="hparams: steplaw|deepseek|constant; chinchilla: "
                                                "chinchilla|shared|no_floor; sparsity: auto|chinchilla|bilinear")
    f.add_argument("--optimum", default="near-best", choices=["near-best", "surface", "profile"])
    f.add_argument("--x", default="C", help="power: the x column (default C)")
    f.add_argument("--y", default="loss", help="power: the y column (default loss)")
    f.add_argument("--fix-E", action="store_true", help="power: fix E at 0")
    f.add_argument("--per-cell", choices=["auto", "best", "all"], default="auto",
                   help="loss laws: use the best run of each (N, D) cell, (N, D, sparsity) for the "
                        "sparsity law (auto: when a cell holds several runs, i.e. a hyperparameter sweep)")
    f.add_argument("--bootstrap", type=count, default=0, metavar="K",
                   help="bootstrap refits for intervals (0: none)")
    f.add_argument("--level", type=level, default=0.95)
    f.add_argument("--seed", type=count, default=0)
    f.add_argument("--json", default=None, metavar="FILE")
    p = sub.add_parser("predict", help="predict from fit files")
    p.add_argument("--fit", action="append", required=True, metavar="FILE",
                   help="a fit file of `scalelab fit --json` (repeat for several)")
    p.add_argument("--N", type=positive, help="parameters (non-embedding, as the fit counted them)")
    p.add_argument("--D", type=positive, help="training tokens")
    p.add_argument("--C", type=positive, help="training FLOPs; with --N gives D, alone the compute-optimal N and D")
    p.add_argument("--sparsity", type=float, default=None,
                   help="sparsity fit: 1 - top_k/experts of the model (0: dense; 0.875: 8 experts, top-1); "
                        "with --N and --D (or --C) the loss there, with --C alone the best N for this sparsity")
    p.add_argument("--memory", type=positive, default=None,
                   help="sparsity fit, with --C alone: the most total parameters (N_total) a model may have; "
                        "without --sparsity, the best of the expansions G = experts/top_k "
                        f"{', '.join(map(str, EXPANSIONS))} under this cap")
    p.add_argument("--schedule", default=None, metavar="KEY=VALUE,...",
                   help="curve law: the run's schedule (name, warmup, decay_fraction, min_lr_ratio), over the "
                        "fitted runs' own; e.g. name=wsd,warmup=30,decay_fraction=0.2")
    p.add_argument("--tokens-per-step", type=positive, default=None, help="curve law: tokens per optimizer step")
    p.add_argument("--level", type=level, default=0.95, help="the intervals' level (default 0.95)")
    p.add_argument("--force", action="store_true",
                   help=f"predict even more than {LIMIT:g}x beyond the fitted range (marked unreliable, no interval)")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")
    s = sub.add_parser("sensitivity", help="importance and learning-rate sensitivity by scale")
    _source_args(s)
    s.add_argument("--params", default=None, help="comma-separated hyperparameters to rank")
    s.add_argument("--json", default=None, metavar="FILE")
    r = sub.add_parser("report", help="plots, index.html, fits.json (and a W&B analysis run)")
    _source_args(r)
    r.add_argument("--out", required=True)
    r.add_argument("--bootstrap", type=count, default=100, metavar="K")
    r.add_argument("--seed", type=count, default=0)
    r.add_argument("--wandb", action="store_true", help="log to a W&B run (offline unless "
                                                       "WANDB_MODE says otherwise)")
    r.add_argument("--project", default=None, help="W&B project")
    y = sub.add_parser("sync", help="upload every offline W&B run below FOLDER, then publish the W&B "
                                    "workspaces and reports `report --wandb` defined there")
    y.add_argument("folder", metavar="FOLDER")
    y.add_argument("--dry-run", action="store_true", help="list what would be uploaded and published")
    return ap


def writable(path: str) -> None:
    """Refuse an output file that cannot be written before the work, not after it."""
    target = Path(path)
    if target.is_dir():
        raise AnalysisError(f"--json {path} is a folder: name a file")
    folder = next(p for p in (target.parent, *target.parent.parents) if p.exists())  # the first that exists
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise AnalysisError(f"--json {path}: cannot write in {folder}: choose a folder you can write to")


def _write(path: str, text: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as e:
        raise AnalysisError(f"cannot write {path}: {e.strerror or e}") from None


def _statuses(s: str):
    return None if s == "all" else tuple(x.strip() for x in s.split(",") if x.strip())


def analysis_main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "json", None) and isinstance(args.json, str):
        writable(args.json)
    command = {"fit": cmd_fit, "predict": cmd_predict, "sensitivity": cmd_sensitivity,
               "report": cmd_report, "sync": cmd_sync}[args.cmd]
    with warnings.catch_warnings():
        # numpy's RuntimeWarnings (an overflow at a fit's wild start) name source lines the user can
        # do nothing with; what is wrong with a table or a fit, scalelab's own checks say
        warnings.simplefilter("ignore", RuntimeWarning)
        return command(args)


def _load(args, statuses, require=()):
    return load_table(args.source, args.map, statuses=statuses, require=require,
                      context=args.context)


def cmd_fit(args) -> int:
    if args.law == "curve":
        table = load_curves(args.source, args.map)
        law = CurveLaw().fit(table, bootstrap=args.bootstrap, seed=args.seed, level=args.level)
        law.inputs_["source"] = str(args.source)
        return _finish_fit(law, args)
    need = {"power": (args.x, args.y), "chinchilla": ("N", "D", "loss"), "auto": ("N", "D", "loss"),
            "isoflop": ("N", "D", "C", "loss"), "hparams": ("N", "D", "loss", "lr", "batch_size"),
            "sparsity": ("N", "D", "loss")}
    table = _load(args, _statuses(args.status), require=need[args.law])
    if args.law in ("chinchilla", "auto", "power") and {"N", "D"} <= set(table.columns):
        if args.per_cell == "best" or (args.per_cell == "auto" and has_sweep(table)):
            table = best_per_cell(table)
            table.attrs["notes"] = table.attrs.get("notes", []) + [
                "loss law fitted to the best run of each (N, D) cell"]
            warn("several runs per (N, D) cell: fitting the best run of each cell")
    if args.law == "power":
        law = PowerLaw(args.x, args.y, args.fix_E)
    elif args.law == "chinchilla":
        law = ChinchillaLaw(args.form or "chinchilla")
    elif args.law == "auto":
        law = AutoLaw()
    elif args.law == "isoflop":
        law = IsoflopLaw()
    elif args.law == "sparsity":  # the best run per (N, D, G) cell is the law's own choice (--per-cell)
        law = SparsityLaw(args.form or "auto", per_cell=args.per_cell)
    else:
        law = HparamsLaw(args.form or "steplaw", args.optimum)
    law.fit(table, bootstrap=args.bootstrap, seed=args.seed, level=args.level)
    law.inputs_["source"] = table.attrs["source"]  # a storage URL without its password
    return _finish_fit(law, args)


def _finish_fit(law, args) -> int:
    law.inputs_["map"] = list(args.map)
    if args.json:
        _write(args.json, strict_json(law.to_dict()))
    _print_fit(law)
    return 0


def _print_fit(law) -> None:
    print(f"{law.name}: {law.form}   ({law.n_points_} points)")
    for k, v in law.params_.items():
        ci = law.ci_.get(k)
        print(f"  {k:>8} = {v:.6g}" + (f"   [{ci[0]:.6g}, {ci[1]:.6g}]" if ci else ""))
    print(f"  FLOPs: {law.flops_.describe()}")
    for note in law.inputs_.get("notes", []):
        print(f"  note: {note}")
    if "selection" in law.metrics_:
        print("  form selection (held-out RMSE of log loss):")
        for s in law.metrics_["selection"]:
            score = f"{s['heldout_rmse_log']:.5f}" if "heldout_rmse_log" in s else f"not scored: {s.get('error')}"
            print(f"    {s['form']:>10}: {score}{'   <- winner' if s['form'] == law.metrics_['winner'] else ''}")
    if law.name == "sparsity":
        _print_sparsity_fit(law)
    if "leave_one_n_out" in law.metrics_:
        print("  leave-one-N-out regret:   N          mean %   max %")
        for r in law.metrics_["leave_one_n_out"]:
            print(f"    {r['N']:>14.4g}  {100 * r['mean_regret']:8.3f} {100 * r['max_regret']:7.3f}")


def _print_sparsity_fit(law) -> None:
    inputs = law.inputs_
    if "selection_margin" in law.metrics_:
        margin = 1 - law.metrics_["selection_margin"]
        print(f"    (the bilinear form wins below {margin:.2g}x the chinchilla form's error)")
    print(f"  expansions G = experts/top_k fitted: {', '.join(f'{g:g}' for g in inputs['expansions'])}"
          + (f"; centre N0 = {inputs['centre']['N']:.4g}, G0 = {inputs['centre']['G']:.4g}"
             if law.variant == "bilinear" else ""))
    f = inputs.get("expert_share")
    if f is not None:
        emb = inputs.get("embedding")
        print(f"  expert share f = {f:.4g}: N_total = N_active (1 + f (G - 1))"
              + (f" + {emb['k']:.4g} N_active^{emb['p']:.3g} (embeddings)" if emb else ""))
    lr = law.metrics_.get("lr_against_dense")
    if isinstance(lr, dict):
        print(f"  lr: {lr['statement']}")
        for row in lr["by_G"]:
            print(f"    G = {row['G']:g}: {row['ratio']:.3g}x the dense law ({row['cells']} cells)")
    elif lr:
        print(f"  lr against dense: {lr}")


def _scale_for(law, path: str, N, D, C, notes: list[str]):
    """The query's N, D, C completed by this fit's own FLOP convention.

    A derived value the law reads is noted with the convention that gave it: a law fitted to
    run records counts C with the attention term, one fitted to a published table as 6ND.
    """
    if law.name == "power":
        reads = law.x
    elif law.name == "isoflop" or getattr(law, "law_form", None) == "deepseek":
        reads = "C"
    else:  # chinchilla, auto, hparams of the steplaw form: N and D
        reads = "D"
    N2, D2, C2 = law.complete_scale(N, D, C)
    if reads == "C" and C is None and C2 is not None:
        notes.append(f"{path}: C = {float(C2):.4g} from --N, --D by {law.flops_.describe()}")
    if reads == "D" and D is None and D2 is not None:
        notes.append(f"{path}: D = {float(D2):.4g} from --N, --C by {law.flops_.describe()}")
    return N2, D2, C2


def cmd_predict(args) -> int:
    out: dict = {"inputs": {k: v for k, v in {"N": args.N, "D": args.D, "C": args.C}.items()
                            if v is not None}, "notes": []}
    out["inputs"].update({k: v for k, v in {"sparsity": args.sparsity, "memory": args.memory}.items()
                          if v is not None})
    for path in args.fit:  # argparse requires at least one
        law = load_fit(path)
        if law.name == "sparsity":
            _predict_sparsity(law, path, args, out)
            continue
        if args.sparsity is not None or args.memory is not None:
            raise AnalysisError(f"{path}: --sparsity and --memory apply to a sparsity fit, not a {law.name} one")
        N, D, C = _scale_for(law, path, args.N, args.D, args.C, out["notes"])
        if law.name in ("chinchilla", "auto") and N is None and C is not None:
            N, D = (float(v) for v in law.compute_optimal(C))  # checked for reach like any query
            out["notes"].append(f"{path}: loss at the compute-optimal N_opt, D_opt ({law.flops_.describe()})")
        query = {"x": {"C": C, "N": N, "D": D}.get(law.x)} if law.name == "power" else \
            {"C": C} if law.name == "isoflop" else {"N": N, "D": D, "C": C}
        reliable = _reach(law, path, query, args.force, out)
        bounded = reliable and bool(law.samples_)  # an interval comes from a bootstrap, or there is none
        values = _predict_one(law, path, N, D, C, args)
        for key, value in values.items():
            if isinstance(value, tuple):  # (value, its interval)
                value, interval = value
                out[f"{key}_interval"] = interval if bounded and _is_interval(interval) else None
            out[key] = value
        if reliable and not law.samples_:
            out["notes"].append(f"{path}: no interval: the fit has no bootstrap (fit again with --bootstrap 200)")
        elif law.name == "curve" and reliable:
            out["notes"].append(f"{path}: the interval is the curve fit's bootstrap alone, which held for 80% of the "
                                "backtest's targets 4x beyond their fit; the scaling study's adds the spread between "
                                "laws and seed noise (100%) and a 2% floor: docs/figures.md#backtest")
    if args.json:
        print(strict_json(out), end="")
        return 0
    if "best_sparsity" in out:
        _print_best_sparsity(out["best_sparsity"], args.level)
    for k, v in out.items():
        if k in ("inputs", "notes", "reach", "unreliable", "best_sparsity") or k.endswith("_interval"):
            continue
        iv = out.get(f"{k}_interval")
        print(f"{k:>12} = {v:.6g}" if isinstance(v, float) else f"{k:>12} = {v}",
              f"  {int(args.level * 100)}% interval [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else "")
    for line in out.get("reach", []):
        print(f"extrapolation: {line}")
    for line in out.get("unreliable", []):
        print(f"unreliable: {line}")
    for n in out["notes"]:
        print(f"note: {n}")
    return 0


def _reach(law, path: str, query: dict, force: bool, out: dict) -> bool:
    """Say how far `query` lies beyond the fit (`scalelab.analysis.reach`); refuse past the
    limit unless forced. False where the law has no reliable number there."""
    far = beyond(law.inputs_, **query)
    out.setdefault("reach", []).extend(f"{path}: {b.describe()}" for b in far)
    if not any(f"{axis}_range" in law.inputs_ for axis in ("N", "D", "C", "x")):
        out["notes"].append(f"{path}: the fit file stores no fitted range (an older file): its reach is unchecked")
    why = distrust(law, **query)
    if why and any(b.factor > LIMIT for b in far) and not force:
        raise AnalysisError(f"{path}: {why}: no prediction (--force predicts anyway, without an interval)")
    if why:
        out.setdefault("unreliable", []).append(f"{path}: {why}")
    return not why


def _predict_sparsity(law, path: str, args, out: dict) -> None:
    """A sparsity fit: with --C alone, the best expansion for that budget (under --memory); else the
    loss at --N, --D (or --C) and --sparsity."""
    if args.sparsity is not None and not 0 <= args.sparsity < 1:
        raise AnalysisError(f"--sparsity must lie in [0, 1), got {args.sparsity:g}")
    G = None if args.sparsity is None else 1.0 / (1.0 - args.sparsity)
    if args.N is None and args.D is None and args.C is not None:
        result = law.best_sparsity(args.C, args.memory, EXPANSIONS if G is None else (G,), args.level)
        best = next(r for r in result["rows"] if r["fits"] and r["G"] == result["best_G"])
        reliable = _reach(law, path, {"N": best["N_active"], "D": best["D"], "C": args.C, "G": best["G"]},
                          args.force, out)
        out["best_sparsity"] = result
        out.update({k: best[k] for k in ("G", "sparsity", "N_active", "N_total", "D")})
        out["loss"] = best["loss"]
        out["loss_interval"] = best["loss_interval"] if reliable and _is_interval(best["loss_interval"]) else None
        out["notes"] += [f"{path}: {n}" for n in result["notes"]]
    else:
        if args.memory is not None:
            raise AnalysisError(f"{path}: --memory applies to the best sparsity at --C alone (without --N, --D)")
        if G is None or args.N is None:
            raise AnalysisError(f"{path}: the sparsity law needs --N, --D (or --C) and --sparsity (0 for dense); "
                                "--C alone gives the best sparsity for that budget")
        N, D, C = _scale_for(law, path, args.N, args.D, args.C, out["notes"])
        reliable = _reach(law, path, {"N": N, "D": D, "C": C, "G": G}, args.force, out)
        out["G"] = G
        out["loss"] = float(law.predict(N, D, G))
        interval = law.predict_interval(N, D, G, args.level)
        out["loss_interval"] = interval if reliable and _is_interval(interval) else None
    if reliable and not law.samples_:
        out["notes"].append(f"{path}: no interval: the fit has no bootstrap (fit again with --bootstrap 200)")


def _print_best_sparsity(result: dict, level: float) -> None:
    cap = f" under N_total <= {result['memory']:.4g}" if result["memory"] is not None else ""
    print(f"best sparsity at C = {result['C']:.4g}{cap}:")
    print(f"{'G':>6} {'sparsity':>9} {'N_active':>11} {'N_total':>11} {'D':>11} {'loss':>8}")
    for r in result["rows"]:
        head = f"{r['G']:>6g} {r['sparsity']:>9.4f}"
        if not r["fits"]:
            print(f"{head}   does not fit: N_total >= {r['N_total_min']:.4g} even at the smallest size the law reaches")
            continue
        total = f"{r['N_total']:>11.4g}" if r["N_total"] is not None else f"{'?':>11}"
        iv = r["loss_interval"]
        extra = ([f"{int(level * 100)}% [{iv[0]:.4g}, {iv[1]:.4g}]"] if _is_interval(iv) else []) + \
            (["at the memory cap"] if r["bound"] == "memory" else []) + \
            (["unreliable"] if r["unreliable"] else []) + \
            ([f"beyond the fit in {', '.join(b.split(' ')[0] for b in r['reach'])}"] if r["reach"] else []) + \
            (["<- best"] if r["G"] == result["best_G"] else [])
        print(f"{head} {r['N_active']:>11.4g} {total} {r['D']:>11.4g} {r['loss']:>8.4f}   {'; '.join(extra)}")


def _is_interval(interval) -> bool:
    """An interval has two finite, distinct ends: a bootstrap whose draws all agree is none."""
    return interval is not None and all(math.isfinite(v) for v in interval) and interval[0] < interval[1]


def _predict_one(law, path: str, N, D, C, args) -> dict:
    """name -> (value, interval) of each number the law predicts at the query (a plain value:
    what the number is in, e.g. the batch size's unit)."""
    level = args.level
    if law.name == "curve":
        if N is None or D is None:
            raise AnalysisError(f"{path}: the curve law needs --N and --D (or --C): the final loss of that run "
                                "under the fitted runs' schedule")
        law.set_schedule(_schedule_arg(args.schedule), args.tokens_per_step)
        return {"loss": (float(law.predict(N, D)), law.predict_interval(N, D, level))}
    if law.name in ("chinchilla", "auto"):
        out = {}
        if args.N is None and C is not None:  # the compute-optimal allocation for the budget
            ni, di = law.compute_optimal_interval(C, level)
            out = {"N_opt": (N, ni), "D_opt": (D, di)}
        elif N is None or D is None:
            raise AnalysisError(f"{path}: the {law.name} law needs --N and --D (or --C)")
        return {**out, "loss": (float(law.predict(N, D)), law.predict_interval(N, D, level))}
    if law.name == "hparams":
        if N is None and law.law_form == "steplaw" and C is not None:
            raise AnalysisError(f"{path}: the steplaw form needs --N with --D or --C")
        lr, bs = law.predict(N=N, D=D, C=C)
        lri, bsi = law.predict_interval(N=N, D=D, C=C, level=level)
        out = {"lr": (float(lr), lri)}
        if law.bs_varied:  # else the fitted runs shared one batch size: no law of it (the fit says so)
            out.update({"batch_size": (float(bs), bsi), "batch_size_unit": law.inputs_.get("batch_unit", "sequences")})
            context = law.inputs_.get("context")
            if context and out["batch_size_unit"] == "tokens":
                out["batch_size_sequences"] = float(bs) / context
        return out
    if law.name == "isoflop":
        if C is None:
            raise AnalysisError(f"{path}: the isoflop law needs --C (or --N and --D)")
        n, d = law.predict(C)
        ni, di = law.compute_optimal_interval(C, level)
        return {"N_opt": (float(n), ni), "D_opt": (float(d), di)}
    x = {"C": C, "N": N, "D": D}.get(law.x)  # the power law
    if x is None:
        raise AnalysisError(f"{path}: the power law of {law.y} needs --{law.x}")
    return {law.y: (float(law.predict(x)), law.predict_interval(x, level))}


def _schedule_arg(text: str | None) -> dict:
    """`name=wsd,warmup=30` -> {"name": "wsd", "warmup": 30.0}."""
    out: dict = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise AnalysisError(f"--schedule expects KEY=VALUE,..., got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


def cmd_sensitivity(args) -> int:
    st = _statuses(args.status)
    if args.status == "completed":  # the default: diverged runs count too, at the initial loss
        st = ("completed", "diverged")
    table = _load(args, st, require=("N", "D", "lr"))
    sens = lr_sensitivity(table)
    params = args.params.split(",") if args.params else None
    imp = importance_by_scale(table, params)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("Learning-rate sensitivity by scale")
        print(sens.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for ev in imp["evaluator"].unique():
            print(f"\nImportance by scale ({ev})")
            print(importance_table(imp, ev).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.json:
        _write(args.json, strict_json({"lr_sensitivity": sens.to_dict(orient="records"),
                                       "importance": imp.to_dict(orient="records"),
                                       "notes": list(table.attrs.get("notes", []))}))
    return 0


def cmd_report(args) -> int:
    # Imported here: the report module loads matplotlib, which no other command needs and
    # which alone costs about half a second of start-up.
    from scalelab.analysis.report import write_report

    raw, kind = raw_frame(args.source)  # read once (W&B and Optuna are slow): both tables use it
    table = table_from_raw(raw, kind, args.source, args.map, statuses=_statuses(args.status),
                           require=("N", "D", "loss"), context=args.context)
    all_runs = None
    if args.status == "completed":
        try:
            all_runs = table_from_raw(raw, kind, args.source, args.map,
                                      statuses=("completed", "diverged"), context=args.context,
                                      quiet=True)
        except AnalysisError:  # sensitivity then uses the completed runs only
            all_runs = None
    files = write_report(table, args.out, bootstrap=args.bootstrap, seed=args.seed,
                         all_runs=all_runs, use_wandb=args.wandb, wandb_project=args.project,
                         source_runs=len(raw))
    for k, v in files.items():
        print(f"{k}: {v}")
    return 0


def start_order(runs) -> list[Path]:
    """Offline runs in the order they started (the time in `offline-run-<YYYYMMDD_HHMMSS>-<id>`),
    then by path: a resumed run's files reach `wandb sync` after the file they continue, wherever
    their folders lie (a resumed trial may write to another folder)."""
    def started(path: Path) -> tuple[str, str]:
        stamp = re.match(r"offline-run-(\d{8}_\d{6})-", path.name)
        return (stamp[1] if stamp else "", str(path))

    return sorted(runs, key=started)


def cmd_sync(args) -> int:
    # Imported here: wandb_workspaces loads wandb, over half a second that no other command pays.
    from scalelab.analysis.dashboards import SPEC_FILE, DashboardSpec, publish

    folder = Path(args.folder)
    if not folder.is_dir():
        raise AnalysisError(f"{folder} is not a folder")
    runs = start_order(p for p in folder.rglob("offline-run-*") if p.is_dir())
    specs = sorted(folder.rglob(SPEC_FILE))
    if not runs and not specs:
        raise AnalysisError(f"no offline W&B run (offline-run-*) and no {SPEC_FILE} below {folder}")
    dashboards = [DashboardSpec.read(p) for p in specs]  # a bad file stops us before any upload
    print(f"{len(runs)} offline W&B run(s), {len(specs)} dashboard definition(s) below {folder}")
    if args.dry_run:
        for p in [*runs, *specs]:
            print(f"  {p}")
        return 0
    if runs:
        done = subprocess.run([sys.executable, "-m", "wandb", "sync", *map(str, runs)])
        if done.returncode != 0:
            raise AnalysisError(f"wandb sync exited with status {done.returncode} (are you logged in? "
                                "`wandb login`)")
    for path, spec in zip(specs, dashboards):
        for kind, url in publish(spec).items():
            print(f"{kind}: {url}  ({path})")
    return 0
