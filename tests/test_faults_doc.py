"""docs/faults.md names, for each bad input and fault, the test that checks it: every test it
names exists (a renamed or removed test would leave the table claiming a check nobody runs)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `folder/test_file.py::test_name` or `::test_name` (same file as the reference before it), with
# an optional parameter id in brackets
REFERENCE = re.compile(r"`((?:\w+/)*test_\w+\.py)?(?:::(\w+))?(?:\[[^\]`]*\])?`")


def named_tests() -> list[tuple[str, str]]:
    found = []
    for line in (ROOT / "docs" / "faults.md").read_text().splitlines():
        current = None
        for match in REFERENCE.finditer(line):
            path, name = match.groups()
            current = path or current
            if current and name:
                found.append((current, name))
    return found


def test_every_test_the_faults_table_names_exists():
    named = named_tests()
    assert len(named) > 50  # the table is read at all
    missing = [f"{path}::{name}" for path, name in named
               if not (ROOT / "tests" / path).exists()
               or not re.search(rf"^def {name}\(", (ROOT / "tests" / path).read_text(), re.MULTILINE)]
    assert missing == []
