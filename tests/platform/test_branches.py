"""WSD cooldown branches: each branch ends exactly where a dedicated run to its budget ends, a kill
in the stable phase or inside a cooldown resumes, and no branch is trained twice."""
from __future__ import annotations

import pytest

from scalelab.platform.branches import FOLDER
from scalelab.platform.errors import ConfigError
from scalelab.platform.module import LanguageModelTask
from scalelab.platform.train import train
from scalelab.record import read

# TINY trains 78 steps of 256 tokens; the branch at half of them: 39 steps, its cooldown from step 31
WSD = ["schedule=wsd", "schedule.warmup=4"]
BRANCHED = [*WSD, "schedule.branches=[0.5]", "train.keep_checkpoint=false"]
HALF = 39 * 256


@pytest.fixture
def dedicated(make_cfg, tmp_path):
    """The final loss of a dedicated WSD run to the branch's budget, same seed."""
    return train(make_cfg(*WSD, f"train.tokens={HALF}"), run_dir=tmp_path / "dedicated")


def branch_dir(run_dir):
    return run_dir / FOLDER / f"D={HALF}"


def test_a_branch_ends_where_the_dedicated_run_to_its_budget_ends(make_cfg, tmp_path, dedicated):
    run = tmp_path / "run"
    train(make_cfg(*BRANCHED), run_dir=run)
    parent, branch = read(run), read(branch_dir(run))
    assert branch["metrics"]["final_val_loss"] == pytest.approx(dedicated, rel=1e-6)
    assert branch["scale"]["D"] == HALF and branch["status"] == "completed" and branch["trial"] is None
    assert branch["branch"] == {"parent": parent["run_id"], "fork_step": 31, "fork_tokens": 31 * 256}
    assert branch["config"]["train"]["tokens"] == HALF and branch["config"]["schedule"]["branches"] is None
    # the family: the run's own compute, and each branch's cooldown beyond its fork
    per_token = parent["scale"]["flops_per_token"]
    assert parent["family"] == {"budgets": [HALF, 78 * 256], "folders": [f"{FOLDER}/D={HALF}"],
                                "compute": pytest.approx(parent["scale"]["C"] + (39 - 31) * 256 * per_token)}
    assert 31 in [p["step"] for p in parent["curve"]]  # the fork is an evaluation, where the checkpoint is


def _kill_at(monkeypatch, total_steps: int, step: int) -> None:
    """Make the run of `total_steps` steps crash once, at `step`, as a kill would stop it."""
    original, done = LanguageModelTask.training_step, []

    def training_step(self, batch, batch_idx):
        if not done and self.total_steps == total_steps and self.trainer.global_step == step:
            done.append(step)
            raise RuntimeError("killed")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LanguageModelTask, "training_step", training_step)


@pytest.mark.parametrize("total_steps, step", [(78, 50), (39, 35)], ids=["stable phase", "cooldown"])
def test_a_kill_resumes_and_no_branch_is_trained_twice(make_cfg, tmp_path, monkeypatch, dedicated, total_steps, step):
    run = tmp_path / "run"
    cfg = make_cfg(*BRANCHED, "train.eval_every=8")
    _kill_at(monkeypatch, total_steps, step)
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, run_dir=run)
    assert (branch_dir(run) / "checkpoints" / "last.ckpt").exists()  # forked before the kill
    train(cfg, run_dir=run)  # the same command again
    branch = read(branch_dir(run))
    assert branch["metrics"]["final_val_loss"] == pytest.approx(dedicated, rel=1e-6)
    steps = [p["step"] for p in branch["curve"]]
    assert steps == sorted(set(steps))  # each step once: nothing trained twice
    before = (read(run), branch)
    train(cfg, run_dir=run)  # a finished family: nothing to do
    assert (read(run), read(branch_dir(run))) == before


@pytest.mark.parametrize("overrides, message", [
    (["schedule.branches=[0.5]"], "schedule.branches needs schedule=wsd"),
    (["schedule=wsd", "schedule.branches=[0.5]"], "schedule.branches needs schedule.warmup as a step count"),
    ([*WSD, "schedule.branches=[0.02]"], "schedule.branches: 0.02 gives 1 steps, whose cooldown would start"),
    ([*WSD, "schedule.branches=[-3]"], "schedule.branches: -3.0 is no token budget"),
])
def test_branches_refuse_what_cannot_match_a_dedicated_run(make_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        train(make_cfg(*overrides), run_dir=tmp_path)
