"""A sweep's `objectives`: each names a number a trial's run.json holds, checked before any trial."""
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from scalelab.conf.schema import RunConfig
from scalelab.platform.train import summarize
from scalelab.record import METRICS
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.objectives import check_paths

RUN = OmegaConf.structured(RunConfig)  # trainer.accelerator=cpu, no peak_flops, train.compile=false
GPU = OmegaConf.merge(RUN, {"trainer": {"accelerator": "gpu"}})


@pytest.mark.parametrize("objective, words", [
    ("metrics.nosuch", "objectives: metrics.nosuch names no number in run.json; metrics has final_val_loss, "
                       "best_val_loss, initial_loss, steps, tokens_seen, tokens_per_second, mfu, compile_seconds, "
                       "wall_seconds, moe_balance_loss"),
    ("scale.n", "objectives: scale.n names no number in run.json; scale has N, N_total, D, C, flops_per_token, "
                "N_active, sparsity"),
    ("final_val_loss", "objectives: final_val_loss names no number in run.json; a path starts with metrics., scale."),
    ("hparams.schedule", "objectives: hparams.schedule names no number"),  # a string
    ("hparams.optim.eps", "objectives: hparams.optim.eps names no number"),  # not searched: not in the record
    ("config.optim.nosuch", "objectives: config.optim.nosuch names no number"),
    ("metrics.mfu", "objectives: metrics.mfu is null in every run of this sweep (a run with trainer.accelerator=cpu "
                    "has no peak FLOP/s to divide by; train on a GPU or set trainer.peak_flops), so every trial "
                    "would fail"),
    ("metrics.compile_seconds", "objectives: metrics.compile_seconds is null in every run of this sweep (only a run "
                                "with train.compile=true records it)"),
    ("metrics.moe_load_max", "objectives: metrics.moe_load_max is null in every run of this sweep (only a "
                             "mixture-of-experts run (model.moe.experts > 0) records it)"),
])
def test_an_objective_no_trial_can_report_is_refused(objective, words):
    with pytest.raises(SweepError) as e:
        check_paths(["metrics.final_val_loss", objective], RUN, searched=["optim.lr"], training=True)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("objective, config", [
    ("metrics.final_val_loss", RUN), ("scale.C", RUN), ("hparams.lr", RUN), ("hparams.optim.weight_decay", RUN),
    ("config.model.width", RUN),
    ("metrics.mfu", GPU), ("metrics.mfu", OmegaConf.merge(RUN, {"trainer": {"peak_flops": 1e12}})),
    ("metrics.compile_seconds", OmegaConf.merge(RUN, {"train": {"compile": True}})),
    ("scale.sparsity", OmegaConf.merge(RUN, {"model": {"moe": {"experts": 8, "top_k": 2}}})),
])
def test_an_objective_a_trial_can_report_passes(objective, config):
    check_paths([objective], config, searched=["optim.weight_decay"], training=True)


def test_only_the_training_runs_config_says_which_fields_are_always_null():
    # another app writes its own record: an mfu it measures itself is not refused
    check_paths(["metrics.mfu"], OmegaConf.create({"x": 1}), training=False)


def test_the_metrics_an_objective_may_name_are_those_a_training_run_writes():
    nothing = SimpleNamespace(module=None, setup=None, trainer=None, timer=None)  # a run that built nothing
    assert [*summarize(RUN, nothing), "wall_seconds"] == list(METRICS)  # the wall time is added after
