"""A training run's W&B mirror, read back from the offline file it writes: history on tokens and
FLOPs at the record's steps, the metric definitions, config and tags; and `fit wandb:` reading it
back as the record it mirrors."""
from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import wandb
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from scalelab import wandb_keys
from scalelab.analysis.table import load_table
from scalelab.platform.train import placement, train
from scalelab.platform.wandb_run import is_preset
from scalelab.record import read

from tests.wandb_file import find_runs, offline_env, read_run

SEARCHED = ["optim.lr", "optim.weight_decay"]
STUDY = "lad/model.width=16"
RUN = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
       "train.tokens=2e4", "train.eval_tokens=2048", "logger=wandb", "train.log_every=4",
       f"trial.study_name='{STUDY}'", f"trial.searched=[{','.join(SEARCHED)}]"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny run with W&B offline, as a trial of a ladder's study would be: its folder, its
    record and its offline W&B file, read back."""
    tmp = tmp_path_factory.mktemp("wandb_run")
    with pytest.MonkeyPatch.context() as env:
        for name, value in offline_env(tmp).items():
            env.setenv(name, value)
        storage = f"sqlite:///{tmp / 'optuna.db'}"
        trial = optuna.create_study(study_name=STUDY, storage=storage).ask()  # as the sweeper asks
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*RUN, f"trial.storage='{storage}'",
                                                           f"trial.number={trial.number}"])
        GlobalHydra.instance().clear()
        train(cfg, run_dir=tmp / "run")
        wandb.teardown()
    [folder] = find_runs(tmp / "run")
    return tmp / "run", read(tmp / "run"), read_run(folder)


def test_every_row_is_on_tokens_and_flops_at_the_records_step(logged):
    _, record, run = logged
    tokens_per_step, flops_per_token = 8 * 32, record["scale"]["flops_per_token"]
    for row in run.history:
        assert row["tokens"] == row["_step"] * tokens_per_step
        assert row["flops"] == pytest.approx(row["tokens"] * flops_per_token)
    curve = [(row["_step"], row["val_loss"], row["eval_tokens"]) for row in run.history if "val_loss" in row]
    assert curve == [(p["step"], pytest.approx(p["val_loss"]), p["eval_tokens"]) for p in record["curve"]]
    assert all(0 < p["eval_tokens"] <= 2048 for p in record["curve"])  # train.eval_tokens=2048
    assert run.history[0]["_step"] == 0 and run.history[0]["tokens"] == 0 and "val_loss" in run.history[0]
    assert len(curve) == 11  # step 0 and the ten evaluations train.evals asks for
    losses = [row["_step"] for row in run.history if "train_loss" in row]
    assert losses == list(range(4, record["metrics"]["steps"] + 1, 4))  # train.log_every=4
    assert all(0 < row["lr"] <= 3e-3 for row in run.history if "lr" in row)


def test_define_metric_puts_losses_on_tokens_and_keeps_min_and_last(logged):
    _, record, run = logged
    defined = run.metric_definitions
    assert set(defined) == {"tokens", "flops", *wandb_keys.BY_TOKENS}
    for name in wandb_keys.BY_TOKENS:
        assert defined[name]["step_metric"] == "tokens"
    for name in wandb_keys.LOSSES:
        assert defined[name]["summary"] == ["min", "last"]
    curve = [p["val_loss"] for p in record["curve"]]
    assert run.summary["val_loss"] == {"min": pytest.approx(min(curve)), "last": pytest.approx(curve[-1])}
    assert run.summary["final_val_loss"] == record["metrics"]["final_val_loss"]
    assert set(wandb_keys.SUMMARY) <= set(run.summary) and run.summary["status"] == "completed"
    assert run.exit_code == 0


def test_config_and_tags_say_where_the_run_belongs(logged):
    _, record, run = logged
    c = run.config
    assert {k: c[k] for k in wandb_keys.SCALE} == {k: record["scale"][k] for k in wandb_keys.SCALE}
    # run outside the sweeper: no ladder name from Hydra, so the study is its own ladder
    assert (c["study"], c["ladder"], c["scale"], c["trial"]) == (STUDY, STUDY, None, 0)
    assert c["searched"] == SEARCHED and c["optim.lr"] == 3e-3 and c["optim.weight_decay"] == 0.1
    assert run.group == STUDY and run.job_type == wandb_keys.TRAIN_JOB and run.name == f"{STUDY}#0"
    s = record["scale"]
    assert run.tags == [f"N={s['N']:.3g}", f"D={s['D']:.3g}", f"C={s['C']:.2g}"]  # no preset model: no model tag


def test_ladder_and_scale_come_from_the_sweepers_study_name():
    cfg = OmegaConf.create({"trial": {"study_name": "lad/model.width=8,train.tokens=2e5", "number": 0,
                                      "role": None, "searched": ["optim.lr"]}})
    where = placement(cfg, OmegaConf.create({"sweeper": {"study_name": "lad"}}))
    assert (where["ladder"], where["scale"], where["ladder_id"]) == ("lad", "model.width=8,train.tokens=2e5", None)
    with_id = placement(OmegaConf.merge(cfg, {"trial": {"ladder_id": "lad-0a1b2c3d"}}),
                        OmegaConf.create({"sweeper": {"study_name": "lad"}}))
    assert with_id["ladder_id"] == "lad-0a1b2c3d"  # the sweeper's, one per sweep
    single = placement(OmegaConf.merge(cfg, {"trial": {"study_name": "lad"}}),
                       OmegaConf.create({"sweeper": {"study_name": "lad"}}))
    assert (single["ladder"], single["scale"]) == ("lad", None)
    plain = placement(OmegaConf.merge(cfg, {"trial": {"study_name": None, "number": None}}), None)
    assert (plain["study"], plain["ladder"], plain["scale"], plain["ladder_id"]) == (None, None, None, None)


def test_the_model_tag_only_for_an_unchanged_preset(make_cfg):
    assert is_preset(make_cfg("model=gpt_xs", tiny=False).model)
    assert not is_preset(make_cfg("model=gpt_xs", "model.width=16", tiny=False).model)
    assert not is_preset(make_cfg("sweeps=ladder", tiny=False).model)  # gpt_ladder: no preset file


def test_fit_reads_a_project_of_scalelab_runs_without_a_map(logged):
    """`wandb:ENTITY/PROJECT` on runs shaped exactly as training logs them gives the table the
    records give."""
    run_dir, record, run = logged
    api_run = SimpleNamespace(id=run.run_id, name=run.name, group=run.group, tags=run.tags, state="finished",
                              config=run.config, summary=run.summary)
    api = SimpleNamespace(runs=lambda path: [api_run])
    from_wandb = load_table("wandb:me/proj", api_factory=lambda: api, quiet=True)
    from_record = load_table(run_dir, quiet=True)
    columns = ["N", "D", "C", "loss", "lr", "batch_size", "batch_tokens", "initial_loss", "status", "run_id",
               "study", "trial", "ladder", "ladder_id", "weight_decay", "warmup", "schedule", "optim.lr", "optim.weight_decay"]
    assert from_wandb[columns].to_dict("records") == from_record[columns].to_dict("records")
    assert from_wandb.attrs["hparams"] == from_record.attrs["hparams"]
    assert from_wandb.loc[0, "loss"] == record["metrics"]["final_val_loss"] and from_wandb.loc[0, "N"] > 0
