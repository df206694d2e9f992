"""Data-parallel jobs end to end, apart from `test_cluster.py` so that the two files run on two
test workers at once: a sweep whose trials are two-process Slurm jobs (emulated), and how often a
data-parallel run asks about a SIGTERM."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from scalelab.record import read

from tests.platform import fake_slurm
from tests.platform.test_cluster import JOB_RUN, check_one_world_of_two, job_env, job_tasks, scalelab_train


@pytest.mark.slow
def test_a_sweep_whose_trials_are_two_process_slurm_jobs(make_cfg, no_launcher, tmp_path):
    """Two trials at once, each a Slurm job (emulated) whose two tasks are one run."""
    slurm = fake_slurm.install(tmp_path / "slurm", first_job_id=1000 + os.getpid() % 4000)
    scalelab_train(tmp_path, "-m", "hydra/sweeper=scalelab", "hydra.sweeper.study_name=ddp",
                   "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "optim.lr=tag(log, interval(1e-3, 1e-2))",
                   "hydra/launcher=submitit_slurm", "hydra.launcher.tasks_per_node=2", "trainer.accelerator=cpu",
                   "trainer.strategy=ddp", "trainer.devices=2", *make_cfg.tiny, timeout=200, **slurm)
    scripts = [Path(job.read_text()).read_text() for job in (tmp_path / "slurm" / "state").glob("*.job")]
    assert len(scripts) == 2 and all("#SBATCH --ntasks-per-node=2" in script for script in scripts)
    storage = f"sqlite:///{tmp_path}/runs/sweeps/studies.db"
    study = optuna.load_study(study_name="ddp", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    folder = tmp_path / "runs" / "sweeps" / "ddp"
    assert sorted(folder.rglob("run.json")) == [folder / "trial_0" / "run.json", folder / "trial_1" / "run.json"]
    losses = {}
    for t in study.trials:
        r = json.loads(Path(t.user_attrs["record"]).read_text())
        assert r["status"] == "completed" and r["trial"] == t.number and r["study"] == "ddp"
        assert t.value == pytest.approx(r["metrics"]["final_val_loss"])
        assert r["config"]["optim"]["lr"] == pytest.approx(t.params["optim.lr"])
        assert len(t.intermediate_values) == len(r["curve"]) - 1  # rank 0 alone reported each evaluation
        losses[str(Path(t.user_attrs["record"]).parent)] = t.value
    jobs = job_tasks(folder / ".submitit")
    assert len(jobs) == 2  # a job per trial, each one run of two processes
    for tasks in jobs:
        run_dir = tasks[0].output_dir
        check_one_world_of_two(tasks, Path(run_dir), losses[run_dir])


@pytest.mark.slow
def test_a_data_parallel_run_asks_about_sigterm_every_log_every_steps_not_every_step(no_launcher, tmp_path):
    """Lightning's check for a SIGTERM of the first process (a broadcast and a host read: a
    synchronisation) comes every `train.log_every` steps: 4 times in 40 steps, in both processes."""
    # run by path, as `scalelab train` would be: Lightning reruns sys.argv[0] for the second process,
    # and the script imports only scalelab, so it needs no PYTHONPATH nor `-m tests....` from the root
    script = Path(__file__).parent / "count_sigterm_broadcasts.py"
    steps, log_every = 40, 10
    run = [o for o in JOB_RUN if not o.startswith("train.tokens=")] + [f"train.tokens={steps * 8 * 32}"]
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), *run, f"train.log_every={log_every}",
                          "logger=none", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                          "trainer.threads=1"],
                         cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(re.findall(r"rank (\d): (\d+) broadcasts", out.stdout)) == [("0", "4"), ("1", "4")]
    r = read(tmp_path / "run")
    assert r["status"] == "completed" and r["metrics"]["steps"] == steps
