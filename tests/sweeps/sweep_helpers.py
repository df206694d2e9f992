"""Helpers for the sweeper tests: run a sweep inside a temporary folder, the toy app and
hydra-optuna-sweeper's example apps in this process (`run`), `scalelab` and anything started to be
signalled (`start`) in a subprocess.

Imported as `tests.sweeps.sweep_helpers`. The apps it starts (toy_app.py, examples/*.py) run as
scripts by path, not `python -m tests...`: Hydra finds their configs beside the file, and they
import nothing from tests/, so they need neither the repository root on sys.path nor PYTHONPATH."""
from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import optuna

from scalelab.sweeps.storage import make_storage

from tests.hydra_state import clear_hydra_state

HERE = Path(__file__).parent
TOY_APP = str(HERE / "toy_app.py")
EXAMPLES = HERE / "examples"  # hydra-optuna-sweeper's example apps, on the scalelab sweeper


def sweep_env() -> dict:
    env = dict(os.environ)
    env["WANDB_MODE"] = "disabled"
    env["HYDRA_FULL_ERROR"] = "0"
    env.pop("SCALELAB_OPTUNA_STORAGE", None)
    return env


def toy_cmd(*overrides: str) -> list[str]:
    return [sys.executable, TOY_APP, "-m", "hydra/sweeper=scalelab",
            "hydra.sweeper.heartbeat_interval=1", *overrides]


# The examples' `storage: null` is an in-memory study; the tests read the study afterwards.
STUDIES_FILE = "hydra.sweeper.storage=sqlite:///runs/sweeps/studies.db"


def example_cmd(app: str, *overrides: str, in_memory: bool = False) -> list[str]:
    """`python examples/APP -m OVERRIDES`: the app never imports scalelab; Hydra's plugin scan
    finds the sweeper in the installed package (in a process of its own:
    test_plugin_discovery.py). The study goes to the default SQLite file unless `in_memory` keeps
    the example's own `storage: null`."""
    return [sys.executable, str(EXAMPLES / app), "-m", *([] if in_memory else [STUDIES_FILE]), *overrides]


def run(cmd: list[str], cwd: Path, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """`cmd` in `cwd`, as a process would run it; the toy app and an example app in this process
    (start-up would be most of their time)."""
    if Path(cmd[1]).parent == EXAMPLES or cmd[1] == TOY_APP:
        proc = run_example(cmd, cwd)
    else:
        proc = subprocess.run(cmd, cwd=cwd, env=sweep_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-5000:]}")
    return proc


def run_example(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python APP ARGS...` in this process: the app run as `__main__` with its arguments, its
    environment, folder, import path and output its own, Hydra's singletons cleared before and after."""
    out, err = io.StringIO(), io.StringIO()
    saved, env = (list(sys.argv), dict(os.environ), os.getcwd(), list(sys.path)), sweep_env()
    sys.argv[:] = cmd[1:]
    sys.path.insert(0, str(Path(cmd[1]).parent))  # as `python APP` puts the app's folder first
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    code = 0
    try:
        clear_hydra_state()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(cmd[1], run_name="__main__")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        clear_hydra_state()
        sys.argv[:], sys.path[:] = saved[0], saved[3]
        os.environ.clear()
        os.environ.update(saved[1])
        os.chdir(saved[2])
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())


def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=sweep_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def load_study(cwd: Path, name: str, storage: str | None = None):
    url = storage or f"sqlite:///{cwd}/runs/sweeps/studies.db"
    return optuna.load_study(study_name=name, storage=make_storage(url))


def states(study) -> dict:
    out: dict = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def copy_project(root: Path, dst: Path) -> None:
    """The project at `root` as an install sees it: pyproject.toml, the README and every folder its
    package-dir table maps a package to (read without tomllib, which needs Python 3.11)."""
    dst.mkdir()
    shutil.copy(root / "pyproject.toml", dst / "pyproject.toml")
    shutil.copy(root / "README.md", dst / "README.md")
    table = (root / "pyproject.toml").read_text().split("[tool.setuptools.package-dir]")[1].split("\n[")[0]
    for folder in {path.split("/")[0] for path in re.findall(r'=\s*"([^"]+)"', table)}:
        shutil.copytree(root / folder, dst / folder, ignore=shutil.ignore_patterns("__pycache__"))
