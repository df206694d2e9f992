import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scalelab.platform.train import run_id_for, train

RUN = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
       "train.tokens=2e5", "train.eval_every=100", "train.eval_tokens=2048", "logger=none"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_final_loss(make_cfg, tmp_path):
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
