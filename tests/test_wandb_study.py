"""A ladder seen from W&B, end to end and offline: a 2-scale sweep logs to W&B, `report --wandb`
adds the analysis run and the dashboards' definitions, `sync --dry-run` finds every offline run,
and the dashboards read only names the runs really logged."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab import wandb_keys
from scalelab.analysis import dashboards
from scalelab.analysis.dashboards import DashboardSpec

from tests.wandb_file import find_runs, offline_env, read_run

TINY = ["model.depth=1", "model.heads=2", "model.context=32", "train.tokens=1e4", "train.batch_size=8",
        "train.eval_tokens=1024", "logger=wandb"]


def scalelab(*args: str, cwd: Path) -> str:
    env = {**os.environ, **offline_env(cwd / "wandb_home"), "HYDRA_FULL_ERROR": "0"}
    env.pop("SCALELAB_OPTUNA_STORAGE", None)
    done = subprocess.run([sys.executable, "-m", "scalelab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_a_ladder_in_wandb(tmp_path):
    scalelab("train", "sweeps=lr", "hydra.sweeper.study_name=lad", "hydra.sweeper.n_trials=2",
             "model.width=8,16", *TINY, cwd=tmp_path)
    ladder = tmp_path / "runs" / "sweeps" / "lad"
    report = tmp_path / "report"
    scalelab("report", str(ladder), "--out", str(report), "--wandb", "--bootstrap", "0", cwd=tmp_path)

    training = [read_run(p) for p in find_runs(ladder)]
    assert len(training) == 4  # 2 scales x 2 trials, each trial's run folder deeper than a glob of two levels
    scales = {"model.width=8", "model.width=16"}
    for run in training:
        c = run.config
        assert c["ladder"] == "lad" and c["scale"] in scales and c["study"] == f"lad/{c['scale']}"
        assert c["ladder_id"] == training[0].config["ladder_id"] and c["ladder_id"].startswith("lad-")
        assert run.group == c["study"] and c["searched"] == ["optim.lr"]
    assert {run.config["scale"] for run in training} == scales

    out = scalelab("sync", str(tmp_path), "--dry-run", cwd=tmp_path)
    assert out.splitlines()[0] == f"5 offline W&B run(s), 1 dashboard definition(s) below {tmp_path}"
    listed = {Path(line.strip()) for line in out.splitlines()[1:]}
    assert listed == {*find_runs(ladder), *find_runs(report), report / dashboards.SPEC_FILE}

    [analysis] = [read_run(p) for p in find_runs(report)]
    assert analysis.config["ladder"] == "lad" and analysis.group == "lad"
    assert analysis.project == "scalelab" == training[0].project  # the runs' own logger.project
    assert sorted(analysis.config["run_ids"]) == sorted(run.run_id for run in training)

    spec = DashboardSpec.read(report)
    ladder_id = training[0].config["ladder_id"]  # one per sweep, made when it started
    assert (spec.runs_key, spec.runs_value, spec.searched) == ("ladder_id", ladder_id, ("optim.lr",))
    assert {json.loads(p.read_text())["ladder_id"] for p in ladder.rglob("run.json")} == {ladder_id}
    assert spec.analysis_id == analysis.run_id and spec.runs >= len(training) + 1  # every panel draws every run
    logged = {
        "history": {k for run in [*training, analysis] for row in run.history for k in row},
        "config": set.intersection(*(set(run.config) for run in training)),
        "summary": set.intersection(*(set(run.summary) for run in training)),
        "table": {k for row in analysis.history for k in row},
        "run": {"JobType", "ID"},  # W&B's own: the run's job type and id
    }
    # the frontier's law needs three scales and the target a scaling study: two scales log neither
    unfitted = {*wandb_keys.FRONTIER, *wandb_keys.TARGET}
    assert {wandb_keys.FRONTIER_X, wandb_keys.BEST, "eval_tokens"} <= logged["history"]
    assert not unfitted & logged["history"]
    logged["history"] |= unfitted
    for build in (dashboards.build_workspace, dashboards.build_report):
        for where, keys in dashboards.referenced_keys(build(spec)).items():
            assert keys <= logged[where], (build.__name__, where, keys - logged[where])
    # the filter keys are in every run the dashboards show, training and analysis alike
    assert {"ladder", "ladder_id"} <= set(analysis.config) and all("ladder_id" in run.config for run in training)
