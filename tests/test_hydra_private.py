"""Hydra's private API, as `scalelab.hydra_private` uses it, still there in the installed Hydra.

Each row of `RELIED_ON` must resolve and take the parameters scalelab passes; each message text
`input_error_line` reads must be in a real Hydra error; and nothing else in the project touches
`hydra._internal`. A failure names the Hydra attribute and the function that relies on it.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import os
import re
import sys
from pathlib import Path

import hydra
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.types import RunMode

from scalelab import hydra_private
from scalelab.errors import ScalelabError
from scalelab.hydra_private import (FLAG_ERRORS, FULL_ERROR_ENV, MESSAGE_TEXTS, RELIED_ON, ConfigLoaderImpl,
                                    Relied, allow_params_on_command_line, job_result, locate, run_app)
from scalelab.platform.errors import ConfigError
from scalelab.sweeps.config import SweepError

ROOT = Path(__file__).resolve().parents[1]
HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


def resolve(row: Relied):
    """The object a row names; pytest.fail naming it and its user when Hydra no longer has it."""
    where = f"hydra-core {hydra.__version__}: {row.module}.{row.name}"
    user = f"scalelab.hydra_private ({row.used_by}) relies on it"
    try:
        obj = importlib.import_module(row.module)
    except ImportError as e:
        pytest.fail(f"{where}: module {row.module} is gone ({e}); {user}")
    for part in row.name.split("."):
        fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        if part in fields:  # a dataclass field without a default is no class attribute
            obj = fields[part]
        elif hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            pytest.fail(f"{where} is gone ({part!r} missing); {user}")
    return obj


@pytest.mark.parametrize("row", RELIED_ON, ids=[f"{r.module}.{r.name}" for r in RELIED_ON])
def test_each_private_name_is_there_and_takes_what_scalelab_passes(row):
    obj = resolve(row)
    if row.params is None:
        return
    assert callable(obj), f"hydra-core {hydra.__version__}: {row.module}.{row.name} is no longer callable"
    signature = inspect.signature(obj)  # follows __wrapped__: Hydra's own, even once patched
    missing = [p for p in row.params if p not in signature.parameters]
    assert not missing, (f"hydra-core {hydra.__version__}: {row.module}.{row.name}{signature} no longer takes "
                         f"{missing}, which scalelab.hydra_private ({row.used_by}) passes")


def _private_uses(tree: ast.AST) -> set[str]:
    """Names imported from `hydra._internal` or `_`-prefixed from any Hydra module, and `_`-prefixed
    attributes read or set (`job._return_value`), as they appear in the code."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hydra"):
            for alias in node.names:
                if node.module.startswith("hydra._internal") or alias.name.startswith("_"):
                    used.add(alias.name)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            used.add(node.attr)
    return used


def test_every_private_use_of_the_module_has_a_row():
    tree = ast.parse(Path(hydra_private.__file__).read_text())
    in_rows = {part for row in RELIED_ON for part in row.name.split(".")}
    assert _private_uses(tree) - in_rows == set(), "scalelab.hydra_private uses these without a RELIED_ON row"


def test_no_other_module_uses_hydra_private_api():
    own = Path(hydra_private.__file__).resolve()
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if path.resolve() == own or rel.parts[0] in ("tests", "build") or rel.parts[0].startswith("."):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if re.search(r"\bhydra\._internal\b|\bConfigLoaderImpl\b|\._return_value\b", text):
            offenders.append(str(rel))
    assert offenders == [], "Hydra's private API outside scalelab/hydra_private.py"


# ------------------------------------------------------------------------- behaviour, on real Hydra
@pytest.fixture
def app(tmp_path, monkeypatch):
    """A two-group config in tmp_path; `run(*args, task=...)` runs it through `run_app`."""
    conf = tmp_path / "conf"
    (conf / "db").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - db: mysql\n  - _self_\nx: 1\n")
    (conf / "db" / "mysql.yaml").write_text("port: 3306\n")
    (conf / "db" / "postgresql.yaml").write_text("port: 5432\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(FULL_ERROR_ENV, raising=False)
    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none", "hydra.output_subdir=null",
             f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]

    def run(*args: str, task=lambda cfg: None) -> None:
        flags = [a for a in args if a.startswith("-")]
        run_app([*args, *([] if "--cfg" in flags or "--resolve" in flags else quiet)], task,
                config_path=str(conf), config_name="config")

    return run


# Each text `input_error_line` reads: the arguments that make Hydra say it, and the line it becomes.
REAL_ERRORS = {
    hydra_private.SEARCH_PATH_TAIL: (["db=nope"], "In 'config': Could not find 'db/nope'; "
                                                  "Available options in 'db': mysql, postgresql"),
    hydra_private.OPTIONS_HEADER: (["db=nope"], "In 'config': Could not find 'db/nope'; "
                                                "Available options in 'db': mysql, postgresql"),
    hydra_private.DOCS_LINK: (["x=[1,"], "no viable alternative at input '[1,'"),
    FLAG_ERRORS[0]: (["-m", "--cfg", "job"], FLAG_ERRORS[0]),
    FLAG_ERRORS[1]: (["--resolve"], FLAG_ERRORS[1]),
}


@pytest.mark.parametrize("text", MESSAGE_TEXTS)
def test_the_message_texts_read_are_in_real_hydra_errors(app, capsys, text):
    args, line = REAL_ERRORS[text]  # a KeyError: a text new to MESSAGE_TEXTS needs a real error here
    with pytest.raises(ScalelabError) as e:
        app(*args)
    hydras = str(e.value.__cause__)
    assert text in hydras, (f"hydra-core {hydra.__version__}: {args} no longer says {text!r}, which "
                            f"scalelab.hydra_private.input_error_line reads; it says: {hydras!r}")
    assert str(e.value) == line
    assert capsys.readouterr().err == ""  # raised, not printed by Hydra


def test_a_single_runs_input_error_comes_as_raised_and_hydra_prints_nothing(app, capsys):
    error = ConfigError("optim.lr=-1.0 must be > 0")

    def task(cfg):
        raise error

    with pytest.raises(ConfigError) as e:
        app("x=2", task=task)
    assert e.value is error
    assert capsys.readouterr().err == ""  # no "Error executing job with overrides: [...]"
    assert FULL_ERROR_ENV not in os.environ  # as it was


def test_a_multiruns_input_error_stays_with_its_job(app, capsys):
    """In a multirun the launcher keeps each job's exception in its JobReturn, and the other jobs
    run: scalelab's sweeper reads it there (`job_result`) and records a failed trial. Hydra's
    basic sweeper raises the first one at the end, as Hydra does."""
    calls = []

    def task(cfg):
        calls.append(cfg.x)
        if cfg.x == 1:
            raise ConfigError("x=1 is refused")

    with pytest.raises(ConfigError, match="x=1 is refused"):
        app("-m", "x=1,2", task=task)
    assert calls == [1, 2]


def test_hydra_prints_a_one_line_error_from_an_app_as_its_message_alone(capsys, monkeypatch):
    """What a plain Hydra app using the sweeper shows for a bad sweep setting (run_and_report)."""
    if sys.gettrace() is not None:
        pytest.skip("under a tracer Hydra raises instead of reporting (it takes it for a debugger)")
    monkeypatch.delenv(FULL_ERROR_ENV, raising=False)
    (run_and_report,) = [resolve(r) for r in RELIED_ON if r.name == "run_and_report"]

    def sweep():
        raise SweepError("n_trials must be at least 1, got -1")

    with pytest.raises(SystemExit) as e:
        run_and_report(sweep)
    assert e.value.code == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line] == [
        "n_trials must be at least 1, got -1", HINT]

    def other():
        raise ValueError("not a OneLineInHydra")

    with pytest.raises(SystemExit):
        run_and_report(other)
    assert "Traceback" in capsys.readouterr().err  # why SweepError is a OneLineInHydra


def test_the_patch_lets_a_search_space_through_where_hydra_refuses_it():
    allow_params_on_command_line()
    allow_params_on_command_line()  # idempotent
    line = "+hydra.sweeper.params.x=interval(0, 1)"
    parser = OverridesParser.create()
    original = inspect.unwrap(ConfigLoaderImpl.validate_sweep_overrides_legal)
    with pytest.raises(HydraException, match="Sweeping over Hydra's configuration is not supported"):
        original(overrides=parser.parse_overrides([line]), run_mode=RunMode.MULTIRUN, from_shell=True)
    (override,) = parser.parse_overrides([line])
    ConfigLoaderImpl.validate_sweep_overrides_legal(overrides=[override], run_mode=RunMode.MULTIRUN, from_shell=True)
    assert not override.is_sweep_override() and override.value() == "interval(0, 1)"


def test_job_result_and_locate():
    error = ConfigError("bad")
    assert job_result(JobReturn(status=JobStatus.FAILED, _return_value=error)) is error
    assert locate("os.path.join") is os.path.join
