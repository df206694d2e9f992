"""Sweeps through the real training run (`scalelab train -m ...`, in this process but for Ctrl-C),
tiny models: results, pruning, Ctrl-C, and a search space its typed config refuses."""
from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.sweeps.sweep_helpers import load_study, start, states

TINY = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.tokens=1e4",
        "train.batch_size=8", "train.eval_every=8", "train.eval_tokens=1024", "logger=none"]


def train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "scalelab", "train", *overrides, *TINY]


@pytest.mark.slow
def test_preset_sweep_completes_and_records_trials(tmp_path, run_cli):
    # `sweeps=lr` sets multirun mode itself: no -m needed
    out = run_cli("sweeps=lr", "hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_interval=1", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    study = load_study(tmp_path, "lr")
    assert states(study) == {"COMPLETE": 2}
    for t in study.trials:
        record = json.loads(Path(t.user_attrs["record"]).read_text())
        assert record["status"] == "completed" and record["trial"] == t.number and record["study"] == "lr"
        assert record["ladder_id"] == study.user_attrs["ladder_id"] and record["ladder_id"].startswith("lr-")
        assert t.value == pytest.approx(record["metrics"]["final_val_loss"])
        assert record["config"]["optim"]["lr"] == pytest.approx(t.params["optim.lr"])
        assert record["hparams"]["optim.lr"] == pytest.approx(t.params["optim.lr"])  # searched values, by path
        assert t.intermediate_values  # the Lightning callback reported every evaluation


@pytest.mark.slow
def test_pruner_stops_real_runs(tmp_path, run_cli):
    # a threshold no tiny run reaches: every trial is pruned at its first evaluation
    out = run_cli("-m", "hydra/sweeper=scalelab", "hydra.sweeper.study_name=pr", "hydra.sweeper.n_trials=2",
                  "+hydra.sweeper.params.optim.lr=tag(log, interval(1e-4, 1e-2))",
                  "+hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
                  "+hydra.sweeper.pruner.upper=0.5", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    study = load_study(tmp_path, "pr")
    assert states(study) == {"PRUNED": 2}
    for t in study.trials:
        record = json.loads(Path(t.user_attrs["record"]).read_text())
        assert record["status"] == "pruned"
        assert record["hparams"]["optim.lr"] == pytest.approx(t.params["optim.lr"])
        assert record["metrics"]["steps"] < 39  # stopped before the end


@pytest.mark.slow
def test_a_value_of_the_wrong_type_is_refused_before_any_trial(tmp_path, run_cli):
    # train.seed: TINY fixes train.batch_size on the command line, which takes it out of the search
    proc = run_cli("-m", "hydra/sweeper=scalelab", "hydra.sweeper.study_name=ty",
                   "+hydra.sweeper.params.train.seed=choice(8, abc)", *TINY, cwd=tmp_path)
    assert proc.returncode == 2
    assert ("scalelab: error: params.train.seed: choice 'abc' is not a valid int for "
            "train.seed (Value 'abc' of type 'str' could not be converted to Integer)") in proc.stderr.splitlines()
    assert not list(tmp_path.glob("runs/sweeps/ty/trial_*"))


@pytest.mark.parametrize("overrides, line", [
    (["-m", "hydra/sweeper=scalelab", "+hydra.sweeper.params.optim.lr=interval(-1, 1)"],
     "params.optim.lr: interval(-1.0, 1.0) includes -1.0, but optim.lr must be > 0"),
    (["sweeps=lr", "hydra.sweeper.objectives=[metrics.mfu]"],  # trainer=cpu, the default
     "objectives: metrics.mfu is null in every run of this sweep (a run with trainer.accelerator=cpu has no peak "
     "FLOP/s to divide by; train on a GPU or set trainer.peak_flops), so every trial would fail"),
    (["sweeps=lr", "optim.lr=0.01"],
     "no key is searched (the command line fixes optim.lr, which params would search), so every trial of the study "
     "would run the same config; search one with a sweep on the command line ('optim.lr=interval(a, b)', "
     "'optim.lr=choice(x, y)') or in hydra.sweeper.params"),
])
def test_what_every_trial_would_fail_on_is_refused_before_the_first(tmp_path, run_cli, overrides, line):
    proc = run_cli(*overrides, "hydra.sweeper.study_name=no", *TINY, cwd=tmp_path)  # the command, in-process
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if "error" in ln] == [f"scalelab: error: {line}"], proc.stderr
    assert not list(tmp_path.glob("runs/**/run.json"))


@pytest.mark.slow
def test_ctrl_c_fails_the_trial_uncounted(tmp_path):
    # Lightning turns the KeyboardInterrupt into sys.exit(1): still the sweep's interruption
    cmd = train_cmd("-m", "hydra/sweeper=scalelab", "hydra.sweeper.study_name=cc", "hydra.sweeper.n_trials=1",
                    "hydra.sweeper.heartbeat_interval=1", "optim.lr=tag(log, interval(1e-3, 1e-2))")
    proc = start(cmd + ["train.tokens=1e6"], tmp_path)  # after TINY's: a run long enough to interrupt
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "runs/sweeps/cc/trial_0/.hydra").exists():
        time.sleep(0.1)
    time.sleep(3)  # training
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out[-3000:]
    assert "scalelab sweeper: interrupted; trial(s) 0 of study cc marked FAIL (interrupted)" in out
    (trial,) = load_study(tmp_path, "cc").trials
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == "interrupted"
    record = json.loads(Path(trial.user_attrs["record"]).read_text())
    assert record["status"] == "failed" and record["error"].startswith("interrupted")
