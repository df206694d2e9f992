"""Learning-rate multipliers at the boundaries of each schedule, and the rates the optimizer uses."""
import math
from types import SimpleNamespace

import pytest
import torch

from scalelab.platform.errors import ConfigError
from scalelab.platform.model import GPT, GPTShape
from scalelab.platform.module import LanguageModelTask
from scalelab.platform.schedule import check_schedule
from scalelab.schedule import lr_multiplier

TOTAL = 100


def schedule(name, warmup=0.1, min_lr_ratio=0.1, decay_fraction=0.2):
    return SimpleNamespace(name=name, warmup=warmup, min_lr_ratio=min_lr_ratio, decay_fraction=decay_fraction)


@pytest.mark.parametrize("name", ["cosine", "wsd", "constant"])
def test_warmup_rises_linearly_to_the_peak_at_its_last_step(name):
    f = lr_multiplier(schedule(name, warmup=0.1), TOTAL)  # 10 steps
    assert [f(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert f(10) == pytest.approx(1.0)  # the first step after warm-up is at the peak


def test_warmup_as_a_step_count():
    f = lr_multiplier(schedule("constant", warmup=4), TOTAL)
    assert [f(s) for s in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_zero_warmup_starts_at_the_peak():
    assert lr_multiplier(schedule("cosine", warmup=0), TOTAL)(0) == pytest.approx(1.0)


def test_cosine_falls_to_the_floor_at_the_end_and_stays_there():
    f = lr_multiplier(schedule("cosine", warmup=10, min_lr_ratio=0.1), TOTAL)
    assert f(55) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay: the midpoint
    assert f(TOTAL) == pytest.approx(0.1) and f(TOTAL + 50) == pytest.approx(0.1)
    assert f(TOTAL - 1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_wsd_is_stable_until_the_decay_then_linear_to_the_floor():
    f = lr_multiplier(schedule("wsd", warmup=10, min_lr_ratio=0.0, decay_fraction=0.2), TOTAL)
    assert f(10) == f(79) == pytest.approx(1.0)  # stable phase
    assert f(80) == pytest.approx(1.0) and f(90) == pytest.approx(0.5)  # the decay starts at step 80
    assert f(TOTAL) == pytest.approx(0.0)


def test_wsd_decay_never_starts_inside_the_warmup():
    f = lr_multiplier(schedule("wsd", warmup=0.5, min_lr_ratio=0.0, decay_fraction=0.9), TOTAL)
    assert f(49) == pytest.approx(1.0) and f(50) == pytest.approx(1.0) and f(75) == pytest.approx(0.5)


@pytest.mark.parametrize("settings,message", [
    ({"warmup": 3.5}, "must be a whole number of steps"),
    ({"warmup": 101}, "longer than the run"),
])
def test_settings_the_schedule_cannot_follow_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        check_schedule(schedule("wsd", **settings), TOTAL)


def test_the_optimizer_follows_the_multiplier(make_cfg):
    """The rates AdamW uses at each step are the peak rate times the multiplier, times each
    group's scale (1/2 for µP's hidden matrices at twice the base width)."""
    cfg = make_cfg("schedule=wsd", "schedule.warmup=2", "optim.lr=0.01")
    model = GPT(GPTShape(32, 1, 2, 8, 16, parametrization="mup", base_width=16))
    task = LanguageModelTask(model, None, None, cfg, total_steps=10)
    optimizer = task.configure_optimizers()
    opt, sched = optimizer["optimizer"], optimizer["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(10):
        rates.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    f = lr_multiplier(cfg.schedule, 10)
    assert rates == [pytest.approx([0.01 * f(s) * scale for scale in (0.5, 1, 1)]) for s in range(10)]
    assert [r[1] for r in rates[:3]] == pytest.approx([0.005, 0.01, 0.01])
