import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scalelab.platform.errors import ConfigError
from scalelab.platform.run_folder import CHECKPOINT, CONFIG_FILE, differences, run_id_for
from scalelab.platform.train import train
from scalelab.record import read

RUN = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
       "train.tokens=2e5", "train.eval_every=100", "train.eval_tokens=2048", "logger=none"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_final_loss(make_cfg, run_cli, tmp_path):
    uninterrupted = train(make_cfg(*RUN), run_dir=tmp_path / "whole")

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "scalelab", "train", *RUN, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not checkpoint.exists():
        pytest.fail(f"the run ended before its first checkpoint: {list(run_dir.rglob('*'))} {proc.stderr.read()}")
    assert not (run_dir / "run.json").exists()  # killed mid-way: no record yet, and never half a one
    run_id = (run_dir / ".run_id").read_text()

    other = run_cli(*RUN, f"hydra.run.dir={run_dir}", "optim.lr=3e-2", "train.seed=5", cwd=tmp_path)
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1] == (
        f"scalelab: error: {run_dir} holds an unfinished run (its checkpoint) started with other settings "
        "(optim.lr: 0.003 -> 0.03; train.seed: 0 -> 5); choose another hydra.run.dir, or add "
        "train.fresh_start=true to discard it")
    assert checkpoint.exists() and not (run_dir / "run.json").exists()  # nothing touched

    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resuming" in out.stdout + out.stderr
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["run_id"] == run_id  # the same run, resumed
    assert record["metrics"]["final_val_loss"] == pytest.approx(uninterrupted, rel=1e-5)
    assert record["metrics"]["steps"] == int(2e5 // 256)
    assert record["curve"][0]["step"] == 0  # the curve before the kill was kept


def test_a_run_folder_keeps_its_run_id(tmp_path):
    first = run_id_for(tmp_path / "a")
    assert run_id_for(tmp_path / "a") == first  # a restart in the same folder is the same run
    assert run_id_for(tmp_path / "b") != first


def test_a_finished_run_is_not_trained_again(make_cfg, tmp_path, caplog):
    loss = train(make_cfg(), run_dir=tmp_path)
    record = read(tmp_path)
    caplog.set_level("INFO")
    # a setting that changes only where results go may differ
    assert train(make_cfg("logger=csv", "train.keep_checkpoint=true"), run_dir=tmp_path) == loss
    assert read(tmp_path) == record and not (tmp_path / "csv").exists()
    assert "already holds a completed run" in caplog.text


def test_other_settings_are_refused_in_a_finished_folder(make_cfg, tmp_path):
    train(make_cfg(), run_dir=tmp_path)
    record = read(tmp_path)
    with pytest.raises(ConfigError, match=r"holds a finished run started with other settings "
                                          r"\(model.width: 16 -> 32; optim.lr: 0.003 -> 0.03\)"):
        train(make_cfg("model.width=32", "optim.lr=3e-2"), run_dir=tmp_path)
    assert read(tmp_path) == record  # the refused command wrote nothing


def test_an_unfinished_run_resumes_only_with_its_own_settings(make_cfg, tmp_path):
    # A run killed after its last checkpoint: the checkpoint is there, the record is not.
    loss = train(make_cfg("train.keep_checkpoint=true"), run_dir=tmp_path)
    (tmp_path / "run.json").unlink()
    with pytest.raises(ConfigError, match=r"holds an unfinished run \(its checkpoint\) started with other "
                                          r"settings \(train.seed: 0 -> 5\)"):
        train(make_cfg("train.seed=5"), run_dir=tmp_path)
    assert (tmp_path / CHECKPOINT).exists()
    assert train(make_cfg(), run_dir=tmp_path) == loss  # the same settings resume it
    assert read(tmp_path)["status"] == "completed"


def test_a_folder_from_an_earlier_version_resumes_with_the_settings_added_since_at_their_defaults(make_cfg,
                                                                                                   tmp_path):
    # what an earlier version remembered: no train.compile, no trainer.num_nodes, precision explicit
    loss = train(make_cfg("train.keep_checkpoint=true"), run_dir=tmp_path)
    (tmp_path / "run.json").unlink()  # killed after its last checkpoint
    remembered = json.loads((tmp_path / CONFIG_FILE).read_text())
    del remembered["train"]["compile"], remembered["trainer"]["num_nodes"]
    remembered["train"]["precision"] = "32-true"  # the earlier default; `auto` on a CPU
    (tmp_path / CONFIG_FILE).write_text(json.dumps(remembered))
    with pytest.raises(ConfigError, match=r"started with other settings \(trainer.num_nodes: 1 -> 2\)"):
        train(make_cfg("trainer.num_nodes=2"), run_dir=tmp_path)  # an added setting away from its default
    assert train(make_cfg(), run_dir=tmp_path) == loss
    assert read(tmp_path)["status"] == "completed"


def test_a_changed_default_is_named_with_the_override_that_keeps_it_and_a_removed_setting_is_none(make_cfg,
                                                                                                 tmp_path):
    # An upgrade: the default of train.eval_share was 0.05 when the folder's run started, and that
    # version had a setting this one no longer has.
    loss = train(make_cfg("train.keep_checkpoint=true", "train.eval_share=0.05"), run_dir=tmp_path)
    (tmp_path / "run.json").unlink()  # killed after its last checkpoint
    remembered = json.loads((tmp_path / CONFIG_FILE).read_text())
    remembered["train"]["grad_accumulation"] = 1
    (tmp_path / CONFIG_FILE).write_text(json.dumps(remembered))
    with pytest.raises(ConfigError) as refused:
        train(make_cfg(), run_dir=tmp_path)
    assert ("started with other settings (train.eval_share: the folder's run used 0.05, the default is now 0.04; "
            "pass train.eval_share=0.05 to resume it); choose another hydra.run.dir") in str(refused.value)
    assert train(make_cfg("train.eval_share=0.05"), run_dir=tmp_path) == loss
    assert read(tmp_path)["status"] == "completed"


def test_a_changed_precision_default_names_the_precision_the_run_used():
    assert differences({"train": {"precision": "32-true"}}, {"train": {"precision": "auto"}}, "bf16-mixed") == [
        "train.precision: the folder's run used 32-true, the default is now bf16-mixed; pass "
        "train.precision=32-true to resume it"]


def test_fresh_start_discards_the_earlier_run(make_cfg, tmp_path):
    train(make_cfg("train.keep_checkpoint=true"), run_dir=tmp_path)
    first = read(tmp_path)
    train(make_cfg("optim.lr=3e-2", "train.fresh_start=true"), run_dir=tmp_path)
    second = read(tmp_path)
    assert second["run_id"] != first["run_id"] and second["hparams"]["lr"] == 0.03
    assert second["metrics"]["final_val_loss"] != first["metrics"]["final_val_loss"]
    assert not (tmp_path / CHECKPOINT).exists()  # the old checkpoint went, and this run kept none


@pytest.mark.slow
@pytest.mark.parametrize("signal_number,cause", [(signal.SIGINT, "KeyboardInterrupt"),
                                                 (signal.SIGTERM, "SIGTERMException")])
def test_an_interrupted_run_is_recorded_and_keeps_its_checkpoint(tmp_path, signal_number, cause):
    cmd = [sys.executable, "-m", "scalelab", "train", *RUN, f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, "WANDB_MODE": "disabled"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal_number)
    assert proc.wait(timeout=60) == 128 + signal_number  # 130, 143: as a shell reports a signal
    record = read(tmp_path)
    assert record["status"] == "failed" and record["error"] == f"interrupted ({cause})"
    assert checkpoint.exists()  # to resume from
