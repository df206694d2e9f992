"""No file of the project names a place on one developer's machine.

A path such as a home folder or a shared mount works on the machine it was written on and
nowhere else: a test that reads it is skipped, or fails, on every fresh checkout. Data the
project needs lives in the repository and is found relative to the file that reads it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(?:"
    r"/work/"                      # a workspace mount
    r"|/home/[\w.-]+/"             # a Linux home folder
    r"|/Users/[^/\s]+/"            # a macOS home folder
    r"|/root/"                     # root's home folder
    r"|[A-Za-z]:\\Users\\"         # a Windows home folder
    r")"
    r"|(?:\.\./)+shared\b"         # a folder beside the checkout
)


def project_files() -> list[Path]:
    """Every file git tracks, plus the untracked ones it does not ignore."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    names = sorted({n for n in done.stdout.decode().split("\0") if n})
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte, or not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_file_names_a_path_on_a_developer_machine():
    this = Path(__file__).resolve()
    hits = []
    for path in project_files():
        if path.resolve() == this:  # the patterns themselves are spelled out above
            continue
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in MACHINE_PATH.finditer(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r} in "
                            f"{line.strip()[:120]}")
    assert not hits, "paths of a developer machine:\n" + "\n".join(hits)


@pytest.mark.parametrize("line", [
    "DATA = '/work/shared/reference-data/x.csv'", "open('/home/alice/runs/run.json')",
    "see /Users/bob/Desktop/notes", "cache in /root/.cache", r"C:\Users\carol\data",
    "Path('../shared/reference-data')", "../../shared/x",
])
def test_pattern_finds_machine_paths(line):
    assert MACHINE_PATH.search(line)


@pytest.mark.parametrize("line", [
    "https://github.com/step-law/steplaw/work/x", "benchmarks/data/steplaw.csv",
    "runs/work/", "tmp_path / 'work' / 'x'", "~/.cache/huggingface", "shared/ folder",
    "homework/", "a/home/b/",
])
def test_pattern_leaves_other_paths_alone(line):
    assert not MACHINE_PATH.search(line)
