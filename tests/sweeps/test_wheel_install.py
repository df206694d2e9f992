"""A regular (wheel) install: Hydra's own plugin scan finds the sweeper and the presets,
without `hydra_plugins.scalelab_sweeper.register()`, which the other sweeper tests call.
test_plugin_discovery.py covers an editable install (`make install`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sweeps.sweep_helpers import copy_project

ROOT = Path(__file__).resolve().parents[2]
APP = '''
import json, os
import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    out = HydraConfig.get().runtime.output_dir
    loss = (cfg.optim.lr - 0.01) ** 2
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"schema_version": 1, "status": "completed", "metrics": {"final_val_loss": loss}}, f)
    return loss

if __name__ == "__main__":
    main()
'''
CONFIG = """defaults:
  - _self_
  - sweeps: null
optim: {lr: 0.001}
trial: {study_name: null, storage: null, number: null}
"""


@pytest.mark.slow
def test_wheel_install_finds_sweeper_and_presets(tmp_path):
    src = tmp_path / "src"  # build from a copy: no build/ or egg-info churn in the checkout
    copy_project(ROOT, src)
    pip = [sys.executable, "-m", "pip", "-q"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    target = tmp_path / "site"
    wheel = next((tmp_path / "dist").glob("scalelab-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    (app / "app.py").write_text(APP)
    (app / "conf" / "config.yaml").write_text(CONFIG)
    env = dict(os.environ, PYTHONPATH=str(target), WANDB_MODE="disabled")
    probe = subprocess.run([sys.executable, "-c", "import scalelab.sweeps as s; print(s.__file__)"],
                           env=env, capture_output=True, text=True, cwd=app)
    assert probe.stdout.startswith(str(target)), probe  # the wheel, not the editable checkout
    proc = subprocess.run([sys.executable, "app.py", "sweeps=lr", "hydra.sweeper.n_trials=2"],
                          env=env, capture_output=True, text=True, cwd=app, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "study lr: trial 1 COMPLETE" in proc.stderr + proc.stdout
    assert (app / "runs/sweeps/lr/trial_1/run.json").exists()
    # the scaling study's sweeper, which the `ladder` preset chooses, is found the same way
    scaling = subprocess.run([sys.executable, "app.py", "hydra/sweeper=scaling", "--cfg", "hydra"],
                             env=env, capture_output=True, text=True, cwd=app, timeout=120)
    assert scaling.returncode == 0 and "hydra_plugins.scalelab_sweeper.ScalingSweeper" in scaling.stdout, scaling
