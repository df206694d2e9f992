"""Storage URLs -> Optuna storages, heartbeats, and credential redaction."""
import pytest
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalStorage

from scalelab.platform.storage import StorageError, make_storage, redact_url


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


def test_sweeper_keeps_the_password_out_of_hydra_files(monkeypatch):
    from omegaconf import OmegaConf

    from scalelab.platform.sweeper import STORAGE_ENV, OptunaSweeper

    monkeypatch.setenv(STORAGE_ENV, "placeholder")  # restored (removed) after the test
    url = "postgresql://alice:s3cret@db:5432/optuna"
    sweeper = OptunaSweeper(storage=url)
    config = OmegaConf.create({"hydra": {"sweeper": {"storage": url},
                                         "overrides": {"hydra": [f"hydra.sweeper.storage={url}", "hydra.verbose=false"]}}})
    sweeper._hide_credentials(config)
    text = OmegaConf.to_yaml(config, resolve=True)
    assert "s3cret" not in text and "alice:***@db" in text
    # jobs get the URL through the environment, never in their overrides
    assert sweeper._storage_for_jobs() == "${oc.env:" + STORAGE_ENV + "}"
    import os

    assert os.environ[STORAGE_ENV] == url


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_stale_running_trials_are_failed_with_a_reason(tmp_path, kind):
    import time

    import optuna

    from scalelab.platform.storage import fail_stale_trials, record_heartbeat

    url = f"sqlite:///{tmp_path}/s.db" if kind == "sqlite" else f"journal:{tmp_path}/s.log"
    storage = make_storage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage)
    dead, alive = study.ask(), study.ask()
    record_heartbeat(storage, dead._trial_id)
    time.sleep(2.2)  # SQLite keeps heartbeat times to the second
    record_heartbeat(storage, alive._trial_id)
    assert fail_stale_trials(study, grace_period=1) == [dead.number]
    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead.number].state.name == "FAIL"
    assert "heartbeat" in trials[dead.number].user_attrs["fail_reason"]
    assert trials[alive.number].state.name == "RUNNING"
