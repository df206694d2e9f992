"""An editable install, as `make install` makes it: a plain Hydra app, which never imports
scalelab nor calls `register()`, selects `hydra/sweeper=scalelab` and gives it a search space
on the command line. Hydra's plugin scan finds the sweeper only if pkgutil can list the
checkout's `hydra_plugins/` (see `hydra_plugins` in pyproject.toml's packages).
test_wheel_install.py covers a regular install."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
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
    loss = float((cfg.x - 1.0) ** 2)
    with open(os.path.join(HydraConfig.get().runtime.output_dir, "run.json"), "w") as f:
        json.dump({"schema_version": 1, "status": "completed", "metrics": {"final_val_loss": loss}}, f)
    return loss

if __name__ == "__main__":
    main()
'''
CONFIG = """defaults:
  - _self_
x: 0.0
trial: {study_name: null, storage: null, number: null}
"""
PROBE = """import scalelab.analysis.laws, scalelab.cli, scalelab.conf, scalelab.platform.threads, scalelab.sweeps
print(scalelab.sweeps.__file__, scalelab.platform.threads.__file__)"""


@pytest.mark.slow
def test_editable_install_lets_a_plain_app_find_the_sweeper(tmp_path):
    src = tmp_path / "src"  # install a copy: the checkout's own install (if any) stays as it is
    copy_project(ROOT, src)
    # A bare venv (no pip: seconds) that sees this environment's packages (Hydra, Optuna, torch,
    # setuptools) through a path line; a .pth file's path lines do not run that folder's own .pth
    # files, so the environment's own scalelab install, if editable, is not active in it.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # `make install`'s `pip install -e`, in setuptools' default editable mode; this environment's
    # pip drives the venv's Python. --ignore-installed: pip never looks at (or uninstalls) the
    # scalelab that the path line above makes visible.
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "-q", "--python", str(python), "install", "--no-deps",
         "--no-build-isolation", "--ignore-installed", "-e", str(src)],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    (app / "app.py").write_text(APP)
    (app / "conf" / "config.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SCALELAB_OPTUNA_STORAGE")}
    env.update(WANDB_MODE="disabled", HYDRA_FULL_ERROR="0")
    probe = subprocess.run([str(python), "-c", PROBE], env=env, capture_output=True, text=True, cwd=app)
    assert probe.returncode == 0, probe.stderr[-3000:]  # scalelab.* mapped from the top-level folders
    sweeps_file, threads_file = probe.stdout.split()
    real = src.resolve()  # setuptools maps to resolved paths
    assert Path(sweeps_file) == real / "sweeps" / "__init__.py"  # editable: the copy's files themselves
    assert Path(threads_file) == real / "platform" / "threads.py"

    proc = subprocess.run(
        [str(python), "app.py", "-m", "hydra/sweeper=scalelab", "hydra.sweeper.n_trials=2",
         "+hydra.sweeper.params.x=interval(-5, 5)", f"hydra.sweeper.storage=sqlite:///{tmp_path}/s.db"],
        env=env, capture_output=True, text=True, cwd=app, timeout=120)
    out = proc.stderr + proc.stdout
    if proc.returncode != 0:
        path = subprocess.run([str(python), "-c", "import hydra_plugins; print(list(hydra_plugins.__path__))"],
                              env=env, capture_output=True, text=True, cwd=app).stdout
        pytest.fail(f"{out[-3000:]}\nhydra_plugins.__path__ (what Hydra's scan lists): {path}")
    assert "study scalelab: trial 1 COMPLETE" in out, out[-3000:]
    assert (app / "runs/sweeps/scalelab/trial_1/run.json").exists()
