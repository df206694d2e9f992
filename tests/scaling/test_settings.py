"""`hydra.sweeper.scaling`: read from the sweeper's node, the deprecated `loop` node folded in,
every value checked against its range."""
from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from scalelab.scaling.settings import ScalingSettings, ScalingSweeperConf, scaling_settings
from scalelab.sweeps.config import SweepError


def test_the_node_reads_into_typed_settings():
    node = OmegaConf.structured(ScalingSweeperConf).scaling
    node.floor, node.target_C = 3, 1e12
    s = scaling_settings(node)
    assert isinstance(s, ScalingSettings) and s.floor == 3 and s.target_C == 1e12 and s.wide_scales == 2


@pytest.mark.parametrize("values, words", [
    ({"wide_scales": 1}, "scaling.wide_scales=1 must be >= 2 (the lr law needs two budgets)"),
    ({"floor": 1.0}, "scaling.floor=1.0 must be > 1"),
    ({"seeds": -1}, "scaling.seeds=-1 must be >= 0"),
    ({"target_C": 0.0}, "scaling.target_C=0.0 must be > 0"),
    ({"target_ratio": 0.5}, "scaling.target_ratio=0.5 must be > 1"),
    ({"max_target_ratio": 1.0}, "scaling.max_target_ratio=1.0 must be > 1"),
    ({"verify_seeds": 0}, "scaling.verify_seeds=0 must be >= 1"),
    ({"lr_scan": float("nan")}, "scaling.lr_scan=nan must be > 1"),
    ({"bootstrap": -5}, "scaling.bootstrap=-5 must be >= 0"),
    ({"target_N": -1.0}, "scaling.target_N=-1.0 must be > 0"),
])
def test_a_value_out_of_its_range_is_named(values, words):
    with pytest.raises(SweepError) as caught:
        scaling_settings(values)
    assert str(caught.value) == words


def test_unset_targets_are_allowed():
    assert scaling_settings({"target_C": None, "target_N": None}).target_C is None


def test_the_old_loop_node_is_read_with_a_deprecation_line_and_wins(caplog):
    node = OmegaConf.structured(ScalingSweeperConf)
    node.loop.floor = 4  # as `hydra.sweeper.loop.floor=4` on the command line
    with caplog.at_level(logging.WARNING):
        s = scaling_settings(node.scaling, node.loop)
    assert s.floor == 4.0 and isinstance(s.floor, float)
    assert "hydra.sweeper.loop is deprecated" in caplog.text and "hydra.sweeper.scaling.floor" in caplog.text


def test_an_untouched_loop_node_says_nothing(caplog):
    node = OmegaConf.structured(ScalingSweeperConf)
    with caplog.at_level(logging.WARNING):
        scaling_settings(node.scaling, node.loop)
    assert "deprecated" not in caplog.text


def test_a_bad_old_value_is_one_line_naming_the_node():
    with pytest.raises(SweepError, match=r"hydra.sweeper.loop: Value 'abc' of type 'str' could not be converted"):
        scaling_settings({}, {"floor": "abc"})
