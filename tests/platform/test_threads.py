import pytest

from scalelab.platform.threads import PARALLEL_TRIALS_ENV, available_cores, thread_count
from scalelab.platform.train import train
from scalelab.record import read


@pytest.fixture
def cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(PARALLEL_TRIALS_ENV, raising=False)
    monkeypatch.setattr("scalelab.platform.threads.available_cores", lambda: 16)


@pytest.mark.parametrize("setting,processes,env,expected", [
    (None, 1, {}, 16),                                              # a run alone has every core
    (None, 2, {}, 8),                                               # two data-parallel ranks share them
    (None, 2, {PARALLEL_TRIALS_ENV: "4"}, 2),                       # 4 parallel trials of 2 ranks each
    (None, 1, {PARALLEL_TRIALS_ENV: "64"}, 1),                      # never below one
    (None, 1, {PARALLEL_TRIALS_ENV: "x"}, 16),                      # a bad value is ignored
    (None, 4, {"OMP_NUM_THREADS": "3"}, 3),                         # the environment's number, as set
    (5, 4, {"OMP_NUM_THREADS": "3", PARALLEL_TRIALS_ENV: "4"}, 5),  # trainer.threads wins
])
def test_the_cores_are_divided_among_the_processes_that_share_them(cores, monkeypatch, setting, processes, env,
                                                                    expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert thread_count(setting, processes) == expected


def test_a_run_uses_and_records_its_threads(make_cfg, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(PARALLEL_TRIALS_ENV, str(available_cores()))
    caplog.set_level("INFO")
    train(make_cfg("train.progress_seconds=1e-9"), run_dir=tmp_path)
    assert read(tmp_path)["environment"]["threads"] == 1
    # stderr is not a terminal here: progress goes to the log instead of a bar
    steps = [r.getMessage() for r in caplog.records if r.name == "scalelab.platform.progress"]
    assert steps and steps[-1].startswith("step 78/78 (100%), val_loss ")
