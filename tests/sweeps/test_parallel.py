"""Workers on a real PostgreSQL server, and Hydra's joblib and submitit launchers."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from scalelab.messages import redact_url
from scalelab.sweeps.storage import make_storage

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from sweep_helpers import load_study, run, start, states, toy_cmd  # noqa: E402

pytestmark = pytest.mark.slow  # every test here runs sweeps in subprocesses

LR = "+hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-1))"
ROOT = Path(__file__).resolve().parents[2]


def _postgres_url() -> str | None:
    url = os.environ.get("SCALELAB_TEST_POSTGRES_URL")
    if url:
        return url
    # No URL from .ci/run: start a local server if PostgreSQL is installed (seconds); the
    # script installs it only when asked explicitly (CI), which takes minutes.
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        return None
    proc = subprocess.run(["bash", str(ROOT / ".ci/postgres.sh")], capture_output=True, text=True, timeout=120)
    return proc.stdout.strip() or None


@pytest.fixture(scope="module")
def postgres_url():
    url = _postgres_url()
    if not url:
        pytest.skip("no PostgreSQL server could be started: run .ci/postgres.sh (as root, installs "
                    "it) or set SCALELAB_TEST_POSTGRES_URL")
    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        pytest.skip("no PostgreSQL driver: pip install 'scalelab[postgres]'")
    return url


def test_two_workers_on_postgres_credentials_never_shown(tmp_path, postgres_url):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    cmd = toy_cmd(f"hydra.sweeper.study_name={name}", "hydra.sweeper.n_trials=6", LR, "sleep=0.05",
                  f"hydra.sweeper.storage='{postgres_url}'")
    procs = [start(cmd, tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    study = load_study(tmp_path, name, storage=postgres_url)
    assert 6 <= sum(states(study).values()) <= 7 and set(states(study)) == {"COMPLETE"}, states(study)
    # the password is in no log, record, Hydra config or trial attribute
    assert all(password not in o for o in outs)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    assert all(password not in str(t.user_attrs) for t in study.trials)
    rec = (Path(study.trials[0].user_attrs["record"])).read_text()
    assert redact_url(postgres_url) in rec
    optuna.delete_study(study_name=name, storage=make_storage(postgres_url))


def test_joblib_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    run(toy_cmd("hydra.sweeper.study_name=jl", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
                "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", LR), tmp_path)
    study = load_study(tmp_path, "jl")
    assert states(study) == {"COMPLETE": 4}


def test_submitit_local_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    run(toy_cmd("hydra.sweeper.study_name=sl", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2",
                "hydra/launcher=submitit_local", LR), tmp_path)
    study = load_study(tmp_path, "sl")
    assert states(study) == {"COMPLETE": 3}
    assert all(Path(t.user_attrs["record"]).exists() for t in study.trials)
