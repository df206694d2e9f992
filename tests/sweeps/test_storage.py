"""Storage URLs -> Optuna storages, the URL jobs get, heartbeats, and credential redaction."""
import os
import time

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalStorage

from scalelab.messages import redact_url
from scalelab.sweeps.heartbeat import STALE_REASON, UNCOUNTED_ATTR, fail_stale_trials, record_heartbeat
from scalelab.sweeps.job_overrides import overrides_for_jobs
from scalelab.sweeps.storage import STORAGE_ENV, StorageError, make_storage, url_for_jobs


@pytest.mark.parametrize("url, shown", [
    ("postgresql://alice:s3cret@db.example:5432/optuna", "postgresql://alice:***@db.example:5432/optuna"),
    ("postgresql+psycopg2://u:p%40ss@h/db?sslmode=require", "postgresql+psycopg2://u:***@h/db?sslmode=require"),
    ("mysql://u@h/db?password=zz", "mysql://u@h/db?password=***"),
    ("sqlite:///runs/sweeps/studies.db", "sqlite:///runs/sweeps/studies.db"),
    ("journal:runs/x.log", "journal:runs/x.log"),
    (None, None),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_storage_ladder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert isinstance(make_storage(None), RDBStorage)
    assert (tmp_path / "runs/sweeps/studies.db").exists()
    assert isinstance(make_storage(f"journal:{tmp_path}/j/studies.log"), JournalStorage)
    assert isinstance(make_storage(str(tmp_path / "plain.log")), JournalStorage)


def test_unreachable_storage_is_one_redacted_line():
    with pytest.raises(StorageError) as e:
        make_storage("postgresql://bob:hunter2@127.0.0.1:1/nodb", check=True)
    msg = str(e.value)
    assert "hunter2" not in msg and "bob:***@127.0.0.1" in msg and "\n" not in msg


def test_jobs_get_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert url_for_jobs(None) == f"'sqlite:///{tmp_path}/runs/sweeps/studies.db'"
    assert url_for_jobs("sqlite:///s.db") == f"'sqlite:///{tmp_path}/s.db'"
    assert url_for_jobs("sqlite:////abs/s.db") == "'sqlite:////abs/s.db'"
    assert url_for_jobs("journal:j/s.log") == f"'journal:{tmp_path}/j/s.log'"
    assert url_for_jobs("plain.log") == f"'journal:{tmp_path}/plain.log'"
    assert url_for_jobs("postgresql://db/optuna") == "'postgresql://db/optuna'"


def test_the_password_stays_out_of_hydra_files(monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, "placeholder")  # restored (removed) after the test
    url = "postgresql://alice:s3cret@db:5432/optuna"
    lines = [f"hydra.sweeper.storage={url}", "+hydra.sweeper.params.lr=interval(0, 1)", "hydra.verbose=false"]
    shown = overrides_for_jobs(lines, url)
    assert shown == ["hydra.sweeper.storage='postgresql://alice:***@db:5432/optuna'",
                     "+hydra.sweeper.params.lr='interval(0, 1)'", "hydra.verbose=false"]
    # jobs get the URL through the environment, never in their overrides
    assert url_for_jobs(url) == "${oc.env:" + STORAGE_ENV + "}"
    assert os.environ[STORAGE_ENV] == url
    job = OmegaConf.create({"trial": {"storage": url_for_jobs(url)}})
    assert job.trial.storage == url


def test_a_url_without_a_password_is_left_alone():
    lines = ["hydra.sweeper.storage=sqlite:///x.db", "+hydra.sweeper.params.lr='interval(0, 1)'"]
    assert overrides_for_jobs(lines, "sqlite:///x.db") == lines


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_stale_running_trials_are_failed_with_a_reason(tmp_path, kind):
    url = f"sqlite:///{tmp_path}/s.db" if kind == "sqlite" else f"journal:{tmp_path}/s.log"
    storage = make_storage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage)
    dead, alive = study.ask(), study.ask()
    record_heartbeat(storage, dead._trial_id)
    # SQLite keeps heartbeat times to the second; the journal's own beats are exact
    grace = 1 if kind == "sqlite" else 0.2
    time.sleep(2.2 if kind == "sqlite" else 0.4)
    record_heartbeat(storage, alive._trial_id)
    assert fail_stale_trials(study, grace_period=grace) == [dead.number]
    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead.number].state.name == "FAIL"
    assert "heartbeat" in trials[dead.number].user_attrs["fail_reason"]
    assert trials[dead.number].system_attrs[UNCOUNTED_ATTR] == STALE_REASON  # the budget is not used up
    assert trials[alive.number].state.name == "RUNNING"
