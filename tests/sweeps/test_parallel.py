"""Workers on a real PostgreSQL server, and Hydra's joblib and submitit launchers."""
from __future__ import annotations

import uuid
from pathlib import Path

import optuna
import pytest

from scalelab.messages import redact_url
from scalelab.sweeps.storage import make_storage

from tests.sweeps.sweep_helpers import load_study, run, start, states, toy_cmd

pytestmark = pytest.mark.slow  # every test here runs sweeps in subprocesses

LR = "+hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-1))"


def test_two_workers_on_postgres_credentials_never_shown(tmp_path, postgres_url, postgres_password, where_shown):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    cmd = toy_cmd(f"hydra.sweeper.study_name={name}", "hydra.sweeper.n_trials=6", LR, "sleep=0.05",
                  f"hydra.sweeper.storage='{postgres_url}'")
    procs = [start(cmd, tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    study = load_study(tmp_path, name, storage=postgres_url)
    assert 6 <= sum(states(study).values()) <= 7 and set(states(study)) == {"COMPLETE"}, states(study)
    # the password is in no log, record, Hydra config or trial attribute
    leaks = where_shown(postgres_password, tmp_path, *outs)
    assert not leaks, f"the password is in {leaks}"
    assert all(postgres_password not in str(t.user_attrs) for t in study.trials)
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
