"""The `scalelab` command: `train` runs the Hydra app of one training run, `data prepare` makes
its token files, the rest analyse.

Only `train` imports torch, Lightning and the sweeper, inside `train` itself; `fit`, `predict`
and `sensitivity` import the analysis alone (numpy, pandas, scipy, Optuna's core), `report`
adds matplotlib, and `data prepare` the tokenizers library and pyarrow.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd

from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import (AutoLaw, ChinchillaLaw, HparamsLaw, IsoflopLaw, PowerLaw,
                                    load_fit)
from scalelab.analysis.sensitivity import importance_by_scale, importance_table, lr_sensitivity
from scalelab.analysis.table import (best_per_cell, has_sweep, load_table, raw_frame,
                                     table_from_raw, warn)
from scalelab.prepare.errors import PrepareError
from scalelab.record import sanitize

USAGE = """usage: scalelab train [HYDRA OVERRIDES...]
       scalelab fit SOURCE --law {power,chinchilla,isoflop,auto,hparams} [options]
       scalelab predict --fit FILE [--fit FILE ...] [--N N] [--D D] [--C C] [--json]
       scalelab sensitivity SOURCE [--json FILE]
       scalelab report SOURCE --out DIR [--wandb]
       scalelab sync FOLDER [--dry-run]
       scalelab data prepare INPUT... --out DIR [--tokenizer bytes|bpe|FILE] [options]"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return train(argv[1:])
    if argv and argv[0] == "data":
        try:
            return data_main(argv[1:])
        except PrepareError as e:
            print(f"scalelab: error: {e}", file=sys.stderr)
            return 2
    if not argv or argv[0] not in ("fit", "predict", "sensitivity", "report", "sync"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return analysis_main(argv)
    except AnalysisError as e:
        print(f"scalelab: error: {e}", file=sys.stderr)
        return 2


def train(args: list[str]) -> int:
    """Hydra's app for one run, on `args` (overrides, `-m`, `--cfg job`, ...).

    Hydra gets the arguments directly rather than from sys.argv, which keeps its `train`:
    Lightning's data-parallel launcher starts the other processes by rerunning sys.argv.
    """
    # Imported here, for `train` alone: torch, Lightning, Hydra's internals and the sweeper.
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    from scalelab.platform.train import hydra_task
    from scalelab.sweeps.registration import register

    register()
    version.setbase("1.3")
    parser = get_args_parser()
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing: bad input becomes one line
    try:
        _run_hydra(args=parser.parse_args(args), args_parser=parser, task_function=hydra_task,
                   config_path="pkg://scalelab.conf", config_name="config")
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as e:
        if full_error == "1":
            raise
        print(f"scalelab: error: {hydra_error_line(e)}", file=sys.stderr)
        return 2
    except ValueError as e:
        if not str(e).startswith("Only one of --run"):  # Hydra's check of its flags (-m with --cfg)
            raise
        print(f"scalelab: error: {e}", file=sys.stderr)
        return 2
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
    return 0


def hydra_error_line(error: Exception) -> str:
    """Hydra's composition error and its cause in one line: the setting, then what is allowed."""
    text = str(error).split("Config search path")[0]
    lines = [line.strip().rstrip(".") for line in text.splitlines() if line.strip() and "hydra.cc/docs" not in line]
    if error.__cause__ is not None:
        lines.insert(1, str(error.__cause__).strip().splitlines()[0].rstrip("."))
    out: list[str] = []
    for line in lines:  # "Available options in 'schedule':" and one option per line -> one clause
        if out and out[-1].endswith((":", ",")):
            out[-1] += f" {line},"
        else:
            out.append(line)
    return "; ".join(part.rstrip(",") for part in out)


# ------------------------------------------------------------------------------- analysis
class _Parser(argparse.ArgumentParser):
    """argparse whose errors reach `main` as an AnalysisError: one line, exit status 2."""

    def error(self, message: str):
        raise AnalysisError(message)


def _number(kind: type, ok, allowed: str):
    """An argparse type for numbers a command can use; a refusal says what is allowed."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not ok(value):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


_count = _number(int, lambda v: v >= 0, "a whole number >= 0")
_positive = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_level = _number(float, lambda v: 0 < v < 1, "a level strictly between 0 and 1 (0.95 for 95%)")


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="run folder, .csv/.parquet, Optuna storage URL or "
                                  "wandb:ENTITY/PROJECT")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="name a column of a foreign table (N, D, C, loss, lr, batch_size, "
                        "initial_loss, or any hyperparameter)")
    p.add_argument("--context", type=_positive, default=None,
                   help="tokens per sequence, for batch size in tokens when the table lacks it")
    p.add_argument("--status", default="completed",
                   help="comma-separated run statuses to use (default completed; 'all' for all)")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="scalelab", description="Fit, predict and report scaling laws.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="prepare")
    f = sub.add_parser("fit", help="fit a law to runs")
    _source_args(f)
    f.add_argument("--law", required=True, choices=["power", "chinchilla", "isoflop", "auto", "hparams"])
    f.add_argument("--form", default=None, help="hparams: steplaw|deepseek|constant; chinchilla: "
                                                "chinchilla|shared|no_floor")
    f.add_argument("--optimum", default="near-best", choices=["near-best", "surface", "profile"])
    f.add_argument("--x", default="C", help="power: the x column (default C)")
    f.add_argument("--y", default="loss", help="power: the y column (default loss)")
    f.add_argument("--fix-E", action="store_true", help="power: fix E at 0")
    f.add_argument("--per-cell", choices=["auto", "best", "all"], default="auto",
                   help="loss laws: use the best run of each (N, D) cell (auto: when a cell "
                        "holds several runs, i.e. a hyperparameter sweep)")
    f.add_argument("--bootstrap", type=_count, default=0, metavar="K",
                   help="bootstrap refits for intervals (0: none)")
    f.add_argument("--level", type=_level, default=0.95)
    f.add_argument("--seed", type=_count, default=0)
    f.add_argument("--json", default=None, metavar="FILE")
    p = sub.add_parser("predict", help="predict from fit files")
    p.add_argument("--fit", action="append", required=True, metavar="FILE")
    p.add_argument("--N", type=_positive)
    p.add_argument("--D", type=_positive)
    p.add_argument("--C", type=_positive)
    p.add_argument("--level", type=_level, default=0.95)
    p.add_argument("--json", action="store_true")
    s = sub.add_parser("sensitivity", help="importance and learning-rate sensitivity by scale")
    _source_args(s)
    s.add_argument("--params", default=None, help="comma-separated hyperparameters to rank")
    s.add_argument("--json", default=None, metavar="FILE")
    r = sub.add_parser("report", help="plots, index.html, fits.json (and a W&B analysis run)")
    _source_args(r)
    r.add_argument("--out", required=True)
    r.add_argument("--bootstrap", type=_count, default=100, metavar="K")
    r.add_argument("--seed", type=_count, default=0)
    r.add_argument("--wandb", action="store_true", help="log to a W&B run (offline unless "
                                                       "WANDB_MODE says otherwise)")
    r.add_argument("--project", default=None, help="W&B project")
    y = sub.add_parser("sync", help="upload every offline W&B run below FOLDER, then publish the W&B "
                                    "workspaces and reports `report --wandb` defined there")
    y.add_argument("folder", metavar="FOLDER")
    y.add_argument("--dry-run", action="store_true", help="list what would be uploaded and published")
    return ap


def _statuses(s: str):
    return None if s == "all" else tuple(x.strip() for x in s.split(",") if x.strip())


def analysis_main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return {"fit": cmd_fit, "predict": cmd_predict, "sensitivity": cmd_sensitivity,
            "report": cmd_report, "sync": cmd_sync}[args.cmd](args)


def _load(args, statuses, require=()):
    return load_table(args.source, args.map, statuses=statuses, require=require,
                      context=args.context)


def cmd_fit(args) -> int:
    need = {"power": (args.x, args.y), "chinchilla": ("N", "D", "loss"), "auto": ("N", "D", "loss"),
            "isoflop": ("N", "D", "C", "loss"), "hparams": ("N", "D", "loss", "lr", "batch_size")}
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
    else:
        law = HparamsLaw(args.form or "steplaw", args.optimum)
    law.fit(table, bootstrap=args.bootstrap, seed=args.seed, level=args.level)
    law.inputs_["source"] = table.attrs["source"]  # a storage URL without its password
    law.inputs_["map"] = list(args.map)
    if args.json:
        law.save(args.json)
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
            print(f"    {s['form']:>10}: {s.get('heldout_rmse_log', float('nan')):.5f}"
                  f"{'   <- winner' if s['form'] == law.metrics_['winner'] else ''}")
    if "leave_one_n_out" in law.metrics_:
        print("  leave-one-N-out regret:   N          mean %   max %")
        for r in law.metrics_["leave_one_n_out"]:
            print(f"    {r['N']:>14.4g}  {100 * r['mean_regret']:8.3f} {100 * r['max_regret']:7.3f}")


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
    for path in args.fit:  # argparse requires at least one
        law = load_fit(path)
        N, D, C = _scale_for(law, path, args.N, args.D, args.C, out["notes"])
        if law.name in ("chinchilla", "auto"):
            if N is None and C is not None:  # compute-optimal allocation for the budget
                n, d = law.compute_optimal(C)
                ni, di = law.compute_optimal_interval(C, args.level)
                out.update({"N_opt": float(n), "N_opt_interval": ni, "D_opt": float(d),
                            "D_opt_interval": di})
                N, D = float(n), float(d)
                out["notes"].append(f"{path}: loss at the compute-optimal N_opt, D_opt "
                                    f"({law.flops_.describe()})")
            elif N is None or D is None:
                raise AnalysisError(f"{path}: the {law.name} law needs --N and --D (or --C)")
            out["loss"] = float(law.predict(N, D))
            out["loss_interval"] = law.predict_interval(N, D, args.level)
        elif law.name == "hparams":
            if N is None and law.law_form == "steplaw" and C is not None:
                raise AnalysisError(f"{path}: the steplaw form needs --N with --D or --C")
            lr, bs = law.predict(N=N, D=D, C=C)
            lri, bsi = law.predict_interval(N=N, D=D, C=C, level=args.level)
            out.update({"lr": float(lr), "lr_interval": lri, "batch_size": float(bs),
                        "batch_size_interval": bsi,
                        "batch_size_unit": law.inputs_.get("batch_unit", "sequences")})
            ctx = law.inputs_.get("context")
            if ctx and out["batch_size_unit"] == "tokens":
                out["batch_size_sequences"] = float(bs) / ctx
        elif law.name == "isoflop":
            if C is None:
                raise AnalysisError(f"{path}: the isoflop law needs --C (or --N and --D)")
            n, d = law.predict(C)
            ni, di = law.compute_optimal_interval(C, args.level)
            out.update({"N_opt": float(n), "N_opt_interval": ni, "D_opt": float(d),
                        "D_opt_interval": di})
        elif law.name == "power":
            x = {"C": C, "N": N, "D": D}.get(law.x)
            if x is None:
                raise AnalysisError(f"{path}: the power law of {law.y} needs --{law.x}")
            out[law.y] = float(law.predict(x))
            out[f"{law.y}_interval"] = law.predict_interval(x, args.level)
    if args.json:
        print(_strict_json(out, indent=2))
    else:
        for k, v in out.items():
            if k in ("inputs", "notes") or k.endswith("_interval"):
                continue
            iv = out.get(f"{k}_interval")
            print(f"{k:>12} = {v:.6g}" if isinstance(v, float) else f"{k:>12} = {v}",
                  f"  {int(args.level * 100)}% interval [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else "")
        for n in out["notes"]:
            print(f"note: {n}")
    return 0


def _strict_json(obj, **kwargs) -> str:
    """JSON that strict parsers accept: NaN and infinities are written as null."""
    return json.dumps(sanitize(obj), allow_nan=False, **kwargs)


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
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(_strict_json({
            "lr_sensitivity": sens.to_dict(orient="records"),
            "importance": imp.to_dict(orient="records"),
            "notes": list(table.attrs.get("notes", []))}, indent=2))
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
                         all_runs=all_runs, use_wandb=args.wandb, wandb_project=args.project)
    for k, v in files.items():
        print(f"{k}: {v}")
    return 0


def cmd_sync(args) -> int:
    # Imported here: wandb_workspaces loads wandb, over half a second that no other command pays.
    from scalelab.analysis.dashboards import SPEC_FILE, DashboardSpec, publish

    folder = Path(args.folder)
    if not folder.is_dir():
        raise AnalysisError(f"{folder} is not a folder")
    runs = sorted(p for p in folder.rglob("offline-run-*") if p.is_dir())
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


# ------------------------------------------------------------------------------- data
PREPARE_DESCRIPTION = """\
Make text files, jsonl and parquet into the token files of `scalelab train data=tokens
data.dir=DIR`: DIR/train.bin and DIR/val.bin (uint16 ids, uint32 for a vocabulary over 65536),
DIR/meta.json and, for bpe or a tokenizer.json, DIR/tokenizer.json.

INPUT: files, folders (every file below, hidden ones left out) and globs. *.jsonl and *.ndjson:
one JSON object per line, the text in --field; *.parquet: the text in column --field; anything
else: UTF-8 text, one document per file (or per --text-separator). Any may end in .gz, .bz2,
.xz or .zst. Documents go to validation by a hash of their number (document 0 always), and
each ends with the end-of-text token: <|endoftext|> (id 0 under bpe, 256 under bytes).

Memory stays bounded whatever the corpus size: the text streams through in pieces of 64K
characters, two batches of 1M characters encoding at once (a peak of 0.3 GB measured on 1 GB of
text), plus the longest jsonl line or a parquet row group's text column; a BPE also holds the
distinct words of its sample (--bpe-sample-mb).
The previous content of DIR stays as it was until the new one is complete: an error or a
Ctrl-C leaves it untouched."""


class _DataParser(argparse.ArgumentParser):
    """argparse whose errors reach `main` as a PrepareError: one line, exit status 2."""

    def error(self, message: str):
        raise PrepareError(message)


def data_parser() -> argparse.ArgumentParser:
    ap = _DataParser(prog="scalelab data", description="Prepare training data.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="prepare")
    p = sub.add_parser("prepare", help="text files, jsonl, parquet -> train.bin, val.bin, meta.json",
                       description=PREPARE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders and globs")
    p.add_argument("--out", required=True, metavar="DIR", help="the output folder (made if missing)")
    p.add_argument("--tokenizer", default="bpe", metavar="bytes|bpe|FILE",
                   help="bytes (vocabulary 257), bpe (trained here on the corpus), or a tokenizer.json "
                        "(default bpe)")
    p.add_argument("--vocab-size", type=_number(int, lambda v: v >= 1, "a whole number >= 1"), default=None,
                   metavar="N", help="bpe: the vocabulary to learn (default 8192)")
    p.add_argument("--field", default="text", metavar="NAME",
                   help="the jsonl field or parquet column holding the text (default text)")
    p.add_argument("--text-separator", default=None, metavar="SEP",
                   help="cut text files into documents at SEP; backslash escapes work, e.g. '\\n\\n' for "
                        "paragraphs (default: one document per file)")
    p.add_argument("--val-fraction", type=_number(float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1"),
                   default=0.005, metavar="F", help="documents held out for validation (default 0.005)")
    p.add_argument("--workers", type=_number(int, lambda v: v >= 1, "a whole number >= 1"), default=None,
                   metavar="N", help="threads that encode, bpe and tokenizer.json (default: every core)")
    p.add_argument("--dtype", choices=["auto", "uint16", "uint32"], default="auto",
                   help="of the token files (default auto: uint16 when the vocabulary fits)")
    p.add_argument("--eot", default=None, metavar="TOKEN",
                   help="a tokenizer.json's end-of-text token (default: <|endoftext|>, </s> or another "
                        "usual name it holds)")
    p.add_argument("--bpe-sample-mb", type=_positive, default=512, metavar="MB",
                   help="bpe: millions of characters of training text to learn from, spread over the "
                        "corpus (default 512)")
    return ap


def data_main(argv: list[str]) -> int:
    args = data_parser().parse_args(argv)
    # Imported here: the tokenizers library and pyarrow, which no other command needs.
    from scalelab.prepare.command import Options, prepare
    from scalelab.prepare.tokenizer import abandoned_training

    separator = None
    if args.text_separator is not None:
        separator = args.text_separator.encode("latin-1", "backslashreplace").decode("unicode_escape")
    options = Options(inputs=args.inputs, out=args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                      field=args.field, text_separator=separator, val_fraction=args.val_fraction,
                      workers=args.workers, dtype=args.dtype, eot=args.eot, bpe_sample_mb=args.bpe_sample_mb)
    stopped_by = [signal.SIGINT]

    def on_sigterm(signum, frame):
        stopped_by[0] = signal.SIGTERM
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)  # SIGTERM stops it as cleanly as Ctrl-C
    try:
        prepare(options)
    except KeyboardInterrupt:
        print(f"scalelab: error: interrupted ({signal.Signals(stopped_by[0]).name}); {args.out} is as it was",
              file=sys.stderr)
        if abandoned_training():  # the output is already as it was; a normal shutdown would abort
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + stopped_by[0])
        return 128 + stopped_by[0]
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
