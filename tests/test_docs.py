"""Docs that cannot go stale: every command README.md and docs/*.md show still works, and every
link between them still lands.

- Every `scalelab train ...` line composes: it runs in-process with `--cfg job` added, which
  makes Hydra compose and print the config and train nothing, and must exit 0. A line the docs
  show failing (followed in its code block by a line `scalelab: error: ...`) must exit 2 with
  that very line.
- Multirun lines (`-m`, or a `sweeps=` preset, which switches to multirun itself) cannot take
  `--cfg` as they are: Hydra composes the config with `--cfg` in run mode, where a sweep
  (`a,b,c`, `range(...)`, `interval(...)`, `tag(...)`) is refused as ambiguous. So `-m` is
  dropped and Hydra's own override parser replaces each sweep by its first value (an interval
  by its lower end); every key, every config group option, the preset and the sweeper's and
  launcher's settings are still composed against their schemas. What is not checked this way is
  the sweeper's reading of the sweeps themselves (their syntax is checked by the parser).
- Every other `scalelab ...` line (fit, predict, sensitivity, report, sync, data prepare) parses
  with the command's real argparse parser; none is run.
- Every relative link between these pages (and to the images beside them) resolves: the file
  exists, and an anchor `#x` matches a heading of the page it points to (GitHub's slugs).

Commands are read from fenced and indented code blocks only: a line starting with `scalelab `
or `$ scalelab ` (a trailing `\\` continues it on the next line; a `# comment` is cut off).
One rule skips a command, visibly: one holding `...`, which the reader completes (SKIPPED).
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

from scalelab import cli
from scalelab.analysis.commands import parser as analysis_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

COMMAND_START = re.compile(r"^(?:\$ )?scalelab\s")
ERROR_LINE = "scalelab: error:"
ANALYSIS_COMMANDS = ("fit", "predict", "sensitivity", "report", "sync")
PLACEHOLDER = "..."  # a command holding it is a shape for the reader to complete, not a command


@dataclass(frozen=True)
class Command:
    doc: Path
    line: int
    text: str  # the command as written, continuation lines joined, comment cut off
    words: tuple[str, ...]  # shell words after `scalelab`
    error: Optional[str] = None  # the `scalelab: error: ...` line the docs show it printing

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


# ------------------------------------------------------------------------ reading the docs
def code_blocks(text: str) -> Iterator[list[tuple[int, str]]]:
    """Each fenced or indented code block as its (line number, line) pairs. An indented block is
    lines indented by 4 spaces (or a tab) after a blank line, outside a fence."""
    block: list[tuple[int, str]] = []
    fence: Optional[str] = None
    indented = False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence):
                yield block
                block, fence = [], None
            else:
                block.append((number, line))
            continue
        if stripped.startswith(("```", "~~~")):
            if block:
                yield block
            block, indented, fence = [], False, stripped[:3]
            continue
        if (line.startswith("    ") or line.startswith("\t")) and (indented or previous_blank) and stripped:
            indented = True
            block.append((number, line.strip()))
        elif indented and not stripped:
            block.append((number, ""))
        else:
            if block:
                yield block
            block, indented = [], False
        previous_blank = not stripped
    if block:
        yield block


def commands_in(text: str, doc: Path = ROOT / "README.md") -> list[Command]:
    found = []
    for block in code_blocks(text):
        lines = [(n, line.strip()) for n, line in block]
        i = 0
        while i < len(lines):
            number, line = lines[i]
            i += 1
            if not COMMAND_START.match(line):
                continue
            while line.endswith("\\") and i < len(lines):  # a shell continuation line
                line = line[:-1].rstrip() + " " + lines[i][1]
                i += 1
            words = shlex.split(line, comments=True)
            if words[0] == "$":
                words = words[1:]
            error = lines[i][1] if i < len(lines) and lines[i][1].startswith(ERROR_LINE) else None
            found.append(Command(doc, number, shlex.join(words), tuple(words[1:]), error))
    return found


def all_commands() -> list[Command]:
    return [c for doc in DOCS for c in commands_in(doc.read_text(encoding="utf-8"), doc)]


COMMANDS = all_commands()
SKIPPED = [c for c in COMMANDS if PLACEHOLDER in c.text]
TRAIN = [c for c in COMMANDS if c not in SKIPPED and c.words[:1] == ("train",)]
OTHER = [c for c in COMMANDS if c not in SKIPPED and c.words[:1] != ("train",)]


# ------------------------------------------------------------------------ checking commands
def first_values(args: list[str]) -> list[str]:
    """A multirun's overrides with `-m` dropped and every sweep replaced by its first value
    (an interval by its lower end), by Hydra's own override parser."""
    parser = OverridesParser.create()
    out = []
    for arg in args:
        if arg in ("-m", "--multirun"):
            continue
        if arg.startswith("-"):
            out.append(arg)
            continue
        override = parser.parse_overrides([arg])[0]
        if not override.is_sweep_override():
            out.append(arg)
            continue
        sweep = override.value()
        if isinstance(sweep, ChoiceSweep):
            value = sweep.list[0]
        elif isinstance(sweep, (RangeSweep, IntervalSweep)):
            value = sweep.start
        else:  # glob(...): no first value without the config's options
            raise ValueError(f"{arg}: a sweep this check cannot reduce to one value")
        out.append(f"{override.get_key_element()}={override._get_value_element_as_str(value)}")
    return out


def is_multirun(args: list[str]) -> bool:
    return any(a in ("-m", "--multirun") or a.startswith("sweeps=") for a in args)


def compose(args: list[str]) -> tuple[int, str]:
    """`scalelab train ARGS --cfg job` in this process: (exit status, stderr)."""
    args = first_values(args) if is_multirun(args) else list(args)
    if "--cfg" not in args and "-c" not in args:
        args += ["--cfg", "job"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(["train", *args])
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
    return status, err.getvalue()


def parse(words: tuple[str, ...]) -> Optional[str]:
    """None when `scalelab WORDS` parses with its command's parser, else why not."""
    if words[:1] == ("data",):
        parser = cli.data_parser()
        args = list(words[1:])
    elif words[:1] and words[0] in ANALYSIS_COMMANDS:
        parser = analysis_parser()
        args = list(words)
    else:
        return f"not a scalelab command: {' '.join(words[:1])}"
    try:
        parser.parse_args(args)
    except (Exception, SystemExit) as e:  # the parsers raise their one-line errors
        return f"{type(e).__name__}: {e}"
    return None


def check_train(command: Command) -> Optional[str]:
    """None when the command composes as the docs say (or fails with the line they show)."""
    status, err = compose(list(command.words[1:]))
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if command.error is None:
        return None if status == 0 else f"exit {status}: {last}"
    shown = command.error
    if status != 2:
        return f"the docs show it failing with {shown!r}; it exited {status}"
    same = last.startswith(shown[:-3].rstrip()) if shown.endswith("...") else last == shown
    return None if same else f"the docs show {shown!r}; it prints {last!r}"


# ------------------------------------------------------------------------ links
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`]*`")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links_in(doc: Path) -> list[tuple[int, str]]:
    found = []
    text = doc.read_text(encoding="utf-8")
    code_lines = {n for block in code_blocks(text) for n, _ in block}
    for number, line in enumerate(text.splitlines(), 1):
        if number in code_lines:
            continue
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            target = match.group(1)
            if not re.match(r"^[a-z][a-z+.-]*:", target):  # http:, https:, mailto:, ...
                found.append((number, target))
    return found


def broken(doc: Path, target: str) -> Optional[str]:
    path, _, anchor = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    if not file.exists():
        return f"{path}: no such file"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"#{anchor}: no such heading in {file.relative_to(ROOT)}"
    return None


# ------------------------------------------------------------------------ the tests
def _id(command: Command) -> str:
    return command.where


@pytest.mark.parametrize("command", TRAIN, ids=_id)
def test_every_train_command_composes(command):
    problem = check_train(command)
    assert problem is None, f"{command.where}: scalelab {command.text[len('scalelab '):]}\n{problem}"


@pytest.mark.parametrize("command", OTHER, ids=_id)
def test_every_other_command_parses(command):
    problem = parse(command.words)
    assert problem is None, f"{command.where}: {command.text}\n{problem}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    problems = [f"{doc.relative_to(ROOT)}:{n}: {target}: {why}"
                for n, target in links_in(doc) if (why := broken(doc, target))]
    assert problems == []


def test_the_docs_hold_commands_and_skip_only_placeholders():
    """The extraction finds the docs' commands (the tests above cannot pass on an empty list),
    and the only ones left unchecked are those the reader completes."""
    assert len(TRAIN) >= 30 and len(OTHER) >= 15
    assert any(is_multirun(list(c.words)) for c in TRAIN)
    assert all(PLACEHOLDER in c.text for c in SKIPPED)
    assert len(SKIPPED) <= 3, [c.where for c in SKIPPED]


# ------------------------------------------------------------------------ the checker itself
SAMPLE = """\
Prose that mentions scalelab train optim.lr=1 is not a command, nor is `scalelab fit x`.

    scalelab train model=gpt_xs   # a comment
    $ scalelab train optim.lrr=1
    scalelab: error: Could not override 'optim.lrr'; ...

scalelab train in prose at the start of a line is not one either.

```bash
scalelab train -m sweeps=lr \\
    model.width=32,64
make test
```
"""


def test_the_extraction_reads_code_blocks_only():
    found = commands_in(SAMPLE)
    assert [(c.line, c.words) for c in found] == [
        (3, ("train", "model=gpt_xs")),
        (4, ("train", "optim.lrr=1")),
        (10, ("train", "-m", "sweeps=lr", "model.width=32,64")),
    ]
    assert found[1].error == "scalelab: error: Could not override 'optim.lrr'; ..."


def test_the_checker_fails_on_a_broken_command():
    doc = ROOT / "README.md"
    assert check_train(Command(doc, 1, "scalelab train optim.lrr=1", ("train", "optim.lrr=1"))) is not None
    assert check_train(Command(doc, 1, "", ("train", "-m", "sweeps=lr", "optim.lrr=1,2"))) is not None
    assert check_train(Command(doc, 1, "", ("train", "-m", "hydra/sweeper=scalelab",
                                             "hydra.sweeper.n_trialz=3"))) is not None
    # a failure the docs show must be the failure that happens
    assert check_train(Command(doc, 1, "", ("train", "optim.lr=3e-3"),
                               "scalelab: error: Could not override 'optim.lrr'; ...")) is not None
    assert parse(("fit", "runs/", "--law", "chinchila")) is not None
    assert parse(("predict", "--fit", "f.json", "--N", "-1")) is not None
    assert parse(("data", "prepare", "texts/")) is not None  # --out is required
    assert parse(("fitt", "runs/")) is not None


def test_the_checker_passes_a_sound_multirun_and_its_first_values():
    assert first_values(["-m", "sweeps=lr", "model.width=32,64", "x=[1,2]",
                         "optim.lr=tag(log, interval(1e-4, 1e-1))", "y=range(2, 5)"]) == [
        "sweeps=lr", "model.width=32", "x=[1,2]", "optim.lr=0.0001", "y=2"]
    doc = ROOT / "README.md"
    assert check_train(Command(doc, 1, "", ("train", "-m", "sweeps=lr", "model.width=32,64"))) is None


def test_the_link_checker_finds_a_broken_link_and_anchor():
    doc = ROOT / "README.md"
    assert broken(doc, "docs/no_such_page.md") is not None
    assert broken(doc, "docs/faults.md#no-such-heading") is not None
    assert broken(doc, "docs/faults.md#sweeps") is None
    assert slug("Analysis (`scalelab fit / predict / sensitivity / report`)") == \
        "analysis-scalelab-fit--predict--sensitivity--report"
