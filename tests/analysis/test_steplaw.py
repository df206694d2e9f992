"""The Step Law figure: leave-one-N-out regret on the released runs.

Data: Li et al. (2025), "Predictable Scale: Part I", arXiv 2503.04715, kept in the repository at
benchmarks/data/steplaw_dense_lr_bs_loss.csv (source and licence in benchmarks/data/README.md).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.analysis.laws import HparamsLaw
from scalelab.analysis.table import load_table

STEPLAW = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / \
    "steplaw_dense_lr_bs_loss.csv"


@pytest.fixture(scope="module")
def steplaw():
    return load_table(STEPLAW, ["loss=smooth loss", "batch_size=bs"], context=2048, quiet=True)


def test_table_reads_as_documented(steplaw):
    assert len(steplaw) == 1911
    assert steplaw.groupby(["N", "D"]).ngroups == 17
    assert (steplaw["batch_tokens"] == steplaw["batch_size"] * 2048).all()


@pytest.mark.parametrize("optimum,bound", [("near-best", 0.0015), ("surface", 0.0012)])
def test_leave_one_n_out_regret(steplaw, optimum, bound):
    law = HparamsLaw("steplaw", optimum)
    table = law.leave_one_n_out(steplaw)
    print(f"\n{optimum}:\n" + (table.assign(mean_pct=100 * table.mean_regret,
                                           max_pct=100 * table.max_regret)
                             [["N", "cells", "mean_pct", "max_pct"]].to_string(index=False)))
    assert len(table) == 5
    assert (table["mean_regret"] <= bound).all(), table
    # regret is a real measurement: it is non-negative and not identically zero
    assert (table["mean_regret"] >= 0).all() and table["mean_regret"].sum() > 0


def test_fitted_exponents_are_near_the_released_runs_refit(steplaw):
    """The README notes a refit on the released runs gives about N^-0.77 D^0.20 for lr."""
    law = HparamsLaw("steplaw", "near-best").fit(steplaw, evaluate=False)
    assert abs(law.params_["alpha"] + 0.77) < 0.03
    assert abs(law.params_["beta"] - 0.20) < 0.03
    assert 0.45 < law.params_["gamma"] < 0.7
