"""A prediction's interval from every source of its error, and 'no reliable prediction'."""
from __future__ import annotations

import math

import pytest

from scalelab.analysis.uncertainty import combine


def test_the_fit_alone_gives_back_its_own_interval():
    iv = combine(2.0, (2.0 / 1.02, 2.0 * 1.02))
    assert (iv.lo, iv.hi) == pytest.approx((2.0 / 1.02, 2.0 * 1.02)) and iv.reliable


def test_sources_add_in_quadrature_in_log_loss():
    iv = combine(2.0, (2.0 * math.exp(-0.02), 2.0 * math.exp(0.02)), {"other": 2.0 * math.exp(0.01)},
                 seed_sd=0.005, floor=0.01)
    half = math.sqrt(0.02 ** 2 + 0.01 ** 2 + (1.96 * 0.005) ** 2 + 0.01 ** 2)
    assert iv.hi == pytest.approx(2.0 * math.exp(half)) and iv.lo == pytest.approx(2.0 * math.exp(-half))
    assert iv.parts == pytest.approx({"fit": 0.02, "forms": 0.01, "seed": 0.0098, "floor": 0.01})
    assert iv.reliable and iv.holds(2.05) and not iv.holds(2.2)


def test_laws_that_disagree_beyond_the_rest_make_no_reliable_prediction():
    iv = combine(2.0, (1.98, 2.02), {"final chinchilla": 2.3, "final shared": 2.01}, seed_sd=0.002)
    assert not iv.reliable
    assert iv.why.startswith("no reliable prediction") and "final chinchilla: 2.3" in iv.why


def test_a_bootstrap_without_an_interval_is_no_reliable_prediction():
    iv = combine(2.0, (float("nan"), float("nan")))
    assert not iv.reliable and "no interval" in iv.why


def test_a_target_the_law_cannot_vouch_for_is_no_reliable_prediction():
    iv = combine(2.0, (1.9, 2.1), {}, 0.01, 0.02, distrust="the law saw 2 size(s)")
    assert not iv.reliable and iv.why == "no reliable prediction: the law saw 2 size(s)"
    assert combine(2.0, (1.9, 2.1), {}, 0.01, 0.02).reliable
