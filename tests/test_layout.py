"""docs/layout.md's import arrows hold: every import of every module is one they allow, and each
arrow is used by some import."""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "layout.md"
PACKAGES = {"conf": "conf", "prepare": "prepare", "platform": "platform", "sweeps": "sweeps",
            "scaling": "scaling", "analysis": "analysis"}


def stated_arrows(text: str) -> dict[str, set[str]]:
    """`a -> b, c` lines of the page's code block, as {a: {b, c}}."""
    block = re.search(r"```\n(.*?)```", text.split("## Imports", 1)[1], re.S).group(1)
    arrows = {}
    for line in block.strip().splitlines():
        source, targets = (part.strip() for part in line.split("->"))
        arrows[source] = {t.strip() for t in targets.split(",") if t.strip()}
    return arrows


def part_of(module: str) -> str | None:
    """The layout's name of the part `module` (a dotted import) belongs to; None: outside."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "hydra_plugins"
    if parts[0] != "scalelab":
        return None
    if len(parts) == 1:
        return "core"
    if parts[1] in ("cli", "__main__"):
        return "cli"
    if parts[1] == "sweeps" and parts[2:3] == ["reporting"]:
        return "sweeps.reporting"
    return PACKAGES.get(parts[1], "core")


def source_files() -> dict[str, list[Path]]:
    files = {name: sorted((ROOT / folder).rglob("*.py")) for name, folder in PACKAGES.items()}
    files["hydra_plugins"] = sorted((ROOT / "hydra_plugins").rglob("*.py"))
    command = ("cli.py", "__main__.py")
    files["cli"] = [ROOT / "scalelab" / name for name in command]
    files["core"] = [p for p in sorted((ROOT / "scalelab").glob("*.py")) if p.name not in command]
    return files


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # by name: `from scalelab.sweeps import reporting` imports scalelab.sweeps.reporting
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@functools.cache
def used_arrows() -> dict[str, dict[str, set[str]]]:
    """{part: {part it imports: the files that do}}, from the code."""
    used: dict[str, dict[str, set[str]]] = {}
    for part, paths in source_files().items():
        for path in paths:
            for module in imports(path):
                target = part_of(module)
                if target is None or target == part or (part == "sweeps" and target == "sweeps.reporting"):
                    continue
                used.setdefault(part, {}).setdefault(target, set()).add(str(path.relative_to(ROOT)))
    return used


ARROWS = stated_arrows(PAGE.read_text())


@pytest.mark.parametrize("part", sorted(source_files()))
def test_every_import_is_an_arrow_of_the_layout(part):
    allowed = ARROWS.get(part, set())
    allowed = allowed | {"sweeps.reporting"} if "sweeps" in allowed else allowed
    wrong = {target: files for target, files in used_arrows().get(part, {}).items() if target not in allowed}
    assert not wrong, f"docs/layout.md does not allow {part} -> {sorted(wrong)}: {wrong}"


def test_every_arrow_of_the_layout_is_used():
    used = used_arrows()
    unused = [f"{part} -> {target}" for part, targets in ARROWS.items() for target in targets
              if target not in used.get(part, {})]
    assert not unused, f"docs/layout.md states arrows no import uses: {unused}"


def test_the_analysis_never_imports_torch_or_lightning():
    for path in source_files()["analysis"]:
        heavy = {m for m in imports(path) if m.split(".")[0] in ("torch", "lightning")}
        assert not heavy, f"{path.relative_to(ROOT)} imports {heavy}"


def test_the_check_fails_on_an_arrow_against_the_flow():
    # the analysis importing the training code would be data flowing back
    assert part_of("scalelab.platform.model") == "platform" and "platform" not in ARROWS["analysis"]
    assert part_of("scalelab.sweeps.reporting") == "sweeps.reporting" and "sweeps" not in ARROWS["platform"]
