"""A storage password given on the command line is written nowhere by a real training sweep."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import optuna
import pytest

from scalelab.sweeps.storage import make_storage

from tests.sweeps.sweep_helpers import sweep_env


@pytest.mark.slow
def test_real_sweep_on_postgres_writes_no_password(tmp_path, postgres_url, postgres_password, where_shown):
    name = f"cred-{uuid.uuid4().hex[:8]}"
    sweep = tmp_path / "sw"
    # W&B offline writes its files (the .wandb log records sys.argv); its other folders are kept
    # under tmp_path too, so that they are searched and the user's home is not written
    wandb_home = tmp_path / "wandb-home"
    env = {**sweep_env(), "WANDB_MODE": "offline", "WANDB_CONFIG_DIR": str(wandb_home / "config"),
           "WANDB_CACHE_DIR": str(wandb_home / "cache"), "WANDB_DATA_DIR": str(wandb_home / "data")}
    cmd = [sys.executable, "-m", "scalelab", "train", "-m", "hydra/sweeper=scalelab", "hydra.sweeper.n_trials=1",
           f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage='{postgres_url}'", "model=gpt_xs",
           "train.tokens=2e4", "train.eval_every=5", f"hydra.sweep.dir={sweep}",
           "optim.lr=tag(log, interval(1e-3, 1e-2))"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    output = (proc.stdout + proc.stderr).replace(postgres_password, "***")  # failure messages show no password
    assert proc.returncode == 0, output[-5000:]
    optuna.delete_study(study_name=name, storage=make_storage(postgres_url))
    assert json.loads((sweep / "trial_0" / "run.json").read_text())["status"] == "completed"
    assert list(sweep.glob("trial_0/wandb/*/*.wandb")), "W&B wrote no offline run: nothing of it was searched"
    leaks = where_shown(postgres_password, tmp_path, proc.stdout, proc.stderr)
    assert not leaks, f"the password is in {leaks}"
