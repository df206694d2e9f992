"""A training run that is a trial: it reports each evaluation and stops when the pruner says so,
in one process or several (the first one decides, all stop together)."""
import os
import subprocess
import sys

import optuna
import pytest

from scalelab.platform.train import train
from scalelab.record import read
from scalelab.sweeps.algorithms import leave_pruner_config
from scalelab.sweeps.storage import make_storage


def trial_of(tmp_path, is_pruning: bool) -> list[str]:
    """A study as the sweeper leaves it, with Optuna's DeterministicPruner, and one asked trial."""
    url = f"sqlite:///{tmp_path}/studies.db"
    study = optuna.create_study(study_name="s", storage=make_storage(url))
    leave_pruner_config(study, {"_target_": "optuna.testing.pruners.DeterministicPruner", "is_pruning": is_pruning})
    number = study.ask().number
    return ["trial.study_name=s", f"trial.storage={url}", f"trial.number={number}"]


def reported(tmp_path) -> dict:
    (trial,) = optuna.load_study(study_name="s", storage=make_storage(f"sqlite:///{tmp_path}/studies.db")).trials
    return trial.intermediate_values


def test_a_pruned_trial_stops_at_its_first_evaluation(make_cfg, tmp_path):
    train(make_cfg(*trial_of(tmp_path, True)), run_dir=tmp_path / "run")
    r = read(tmp_path / "run")
    assert r["status"] == "pruned" and r["metrics"]["steps"] == 20  # train.eval_every=20
    # reported against tokens seen: 20 steps of 8 sequences of 32 tokens
    assert reported(tmp_path) == {5120: pytest.approx(r["curve"][-1]["val_loss"])}


def test_a_trial_that_is_not_pruned_reports_every_evaluation(make_cfg, tmp_path):
    train(make_cfg(*trial_of(tmp_path, False)), run_dir=tmp_path / "run")
    r = read(tmp_path / "run")
    assert r["status"] == "completed"
    evaluations = {p["tokens"]: p["val_loss"] for p in r["curve"] if p["step"] > 0}  # step 0 is before training
    assert reported(tmp_path) == pytest.approx(evaluations)


def test_evaluations_every_n_tokens_fall_on_the_same_token_counts_for_any_batch_size(make_cfg, tmp_path):
    keys = []
    for batch_size in (4, 8, 16):
        folder = tmp_path / str(batch_size)
        folder.mkdir()
        train(make_cfg(f"train.batch_size={batch_size}", "train.eval_every_tokens=4096",
                       *trial_of(folder, False)), run_dir=folder / "run")
        keys.append(list(reported(folder)))
    assert keys[0] == keys[1] == keys[2] == [4096, 8192, 12288, 16384, 19968]  # then the end of the run



@pytest.mark.slow
def test_data_parallel_processes_stop_together_on_the_first_ones_decision(make_cfg, tmp_path):
    out = subprocess.run([sys.executable, "-m", "scalelab", "train", "trainer.devices=2", "trainer.strategy=ddp",
                          *make_cfg.tiny, *trial_of(tmp_path, True), f"hydra.run.dir={tmp_path / 'run'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stderr[-2000:]
    r = read(tmp_path / "run")
    assert r["status"] == "pruned" and r["metrics"]["steps"] == 20
    assert list(reported(tmp_path)) == [5120]  # one report: the first process's
