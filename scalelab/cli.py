"""The `scalelab` command: `train` runs the Hydra app of one training run, `data prepare` makes
its token files, the rest analyse (`scalelab.analysis.commands`).

Each command imports what it needs inside its own branch: `train` torch, Lightning and the
sweeper; `data prepare` the tokenizers library and pyarrow; the analysis commands numpy,
pandas and scipy. A training process (and each data-parallel process, which reruns the
command) so starts without the analysis, and an analysis without torch.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from importlib.metadata import version

from scalelab.arguments import number, positive
from scalelab.errors import USAGE_EXIT, ScalelabError
from scalelab.prepare.errors import PrepareError

INTERRUPTED_EXIT = 128 + signal.SIGINT  # as a shell reports a command Ctrl-C stopped
USAGE = """usage: scalelab train [HYDRA OVERRIDES...]
       scalelab fit SOURCE --law {power,chinchilla,isoflop,auto,hparams,curve} [options]
       scalelab predict --fit FILE [--fit FILE ...] [--N N] [--D D] [--C C] [--force] [--json]
       scalelab sensitivity SOURCE [--json FILE]
       scalelab report SOURCE --out DIR [--wandb]
       scalelab sync FOLDER [--dry-run]
       scalelab data prepare INPUT... --out DIR [--tokenizer bytes|bpe|FILE] [options]
       scalelab --version
Each command's own options: scalelab COMMAND --help (train: scalelab train --help, Hydra's)."""
ANALYSIS = ("fit", "predict", "sensitivity", "report", "sync")


def main(argv: list[str] | None = None) -> int:
    """Every command; bad input (a `ScalelabError`, whichever part raised it) is one line on
    stderr, `scalelab: error: <message>`, and exit status 2. A Ctrl-C is one line too, with exit
    status 130 (a training run's says what it left; `data prepare` and sweeps say their own)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_command(argv)
    except ScalelabError as e:
        print(f"scalelab: error: {one_line(e)}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt as e:  # its message, if any, says what is left
        left = f"; {e}" if str(e) else "; the same command starts again"
        print(f"scalelab: error: interrupted (Ctrl-C){left}", file=sys.stderr)
        return INTERRUPTED_EXIT


def run_command(argv: list[str]) -> int:
    if argv and argv[0] == "train":
        return train(argv[1:])
    if argv and argv[0] == "data":
        return data_main(argv[1:])
    if not argv:
        print(USAGE, file=sys.stderr)
        return USAGE_EXIT
    if argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] == "--version":
        print(f"scalelab {version('scalelab')}")
        return 0
    if argv[0] not in ANALYSIS:
        raise ScalelabError(f"unknown command {argv[0]!r}: the commands are train, {', '.join(ANALYSIS)} and data "
                            "(scalelab --help)")
    from scalelab.analysis.commands import analysis_main  # pandas and scipy: analysis only

    return analysis_main(argv)


def one_line(error: BaseException) -> str:
    """The message on one line: its lines joined by "; " (by a space after a colon)."""
    out = ""
    for line in (line.strip() for line in str(error).splitlines() if line.strip()):
        out += f"{'' if not out else ' ' if out.endswith(':') else '; '}{line}"
    return out


def train(args: list[str]) -> int:
    """Hydra's app for one run, on `args` (overrides, `-m`, `--cfg job`, ...).

    Hydra gets the arguments directly rather than from sys.argv, which keeps its `train`:
    Lightning's data-parallel launcher starts the other processes by rerunning sys.argv. Bad
    input raised in a single run's job, in the sweeper, or found by Hydra itself comes back as a
    ScalelabError (`hydra_private.run_app`); a multirun's job's bad input is a failed trial.
    """
    # Imported here, for `train` alone: torch, Lightning, Hydra and the sweeper.
    from hydra_plugins.scalelab_sweeper import register
    from scalelab.hydra_private import run_app
    from scalelab.platform.train import hydra_task

    register()
    run_app(args, hydra_task, config_path="pkg://scalelab.conf", config_name="config")
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
    p.add_argument("--vocab-size", type=number(int, lambda v: v >= 1, "a whole number >= 1"), default=None,
                   metavar="N", help="bpe: the vocabulary to learn (default 8192)")
    p.add_argument("--field", default="text", metavar="NAME",
                   help="the jsonl field or parquet column holding the text (default text)")
    p.add_argument("--text-separator", default=None, metavar="SEP",
                   help="cut text files into documents at SEP; backslash escapes work, e.g. '\\n\\n' for "
                        "paragraphs (default: one document per file)")
    p.add_argument("--val-fraction", type=number(float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1"),
                   default=0.005, metavar="F", help="documents held out for validation (default 0.005)")
    p.add_argument("--workers", type=number(int, lambda v: v >= 1, "a whole number >= 1"), default=None,
                   metavar="N", help="threads that encode, bpe and tokenizer.json (default: every core)")
    p.add_argument("--dtype", choices=["auto", "uint16", "uint32"], default="auto",
                   help="of the token files (default auto: uint16 when the vocabulary fits)")
    p.add_argument("--eot", default=None, metavar="TOKEN",
                   help="a tokenizer.json's end-of-text token (default: <|endoftext|>, </s> or another "
                        "usual name it holds)")
    p.add_argument("--bpe-sample-mb", type=positive, default=512, metavar="MB",
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
