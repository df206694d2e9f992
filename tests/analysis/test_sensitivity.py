"""Importance by scale and Wortsman's learning-rate sensitivity."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scalelab.analysis.sensitivity as sensitivity
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.sensitivity import (STANDIN, importance_by_scale, importance_table,
                                           lr_sensitivity)


def _lr_grid(initial=True):
    rows = []
    lrs = [1e-4, 1e-3, 1e-2, 1e-1]
    for N, width in ((1e8, 1.0), (1e9, 0.5)):  # the larger model is more sensitive here
        for lr, loss in zip(lrs, [3.5, 3.0, 3.2, np.nan]):
            rows.append({"N": N, "D": 1e10, "C": 6e18, "lr": lr, "batch_size": 32,
                         "loss": 3.0 + (loss - 3.0) / width if np.isfinite(loss) else np.nan,
                         "status": "completed" if np.isfinite(loss) else "diverged",
                         "initial_loss": 5.0 if initial else np.nan})
    return pd.DataFrame(rows)


def test_lr_sensitivity_by_definition():
    s = lr_sensitivity(_lr_grid())
    small, big = s.iloc[0], s.iloc[1]
    # mean over lr of min(loss, L0) minus best: (3.5 + 3.0 + 3.2 + 5.0)/4 - 3.0
    assert small["lr_sensitivity"] == pytest.approx((3.5 + 3.0 + 3.2 + 5.0) / 4 - 3.0)
    assert big["lr_sensitivity"] == pytest.approx((4.0 + 3.0 + 3.4 + 5.0) / 4 - 3.0)
    assert (s["initial_loss_source"] == "recorded").all()
    assert small["basin_width_log10"] == 0.0 and small["best_lr"] == 1e-3


def test_worst_finite_loss_stands_in_and_says_so():
    s = lr_sensitivity(_lr_grid(initial=False))
    assert (s["initial_loss_source"] == STANDIN).all()
    assert s.iloc[0]["initial_loss"] == 3.5
    assert s.iloc[0]["lr_sensitivity"] == pytest.approx((3.5 + 3.0 + 3.2 + 3.5) / 4 - 3.0)


def test_basin_width_counts_runs_within_one_percent():
    t = pd.DataFrame({"N": 1e8, "D": 1e9, "C": 6e17, "lr": [1e-4, 1e-3, 1e-2, 1e-1],
                      "loss": [3.02, 3.0, 3.029, 3.5], "status": "completed"})
    assert lr_sensitivity(t).iloc[0]["basin_width_log10"] == pytest.approx(2.0)


def test_importance_finds_the_setting_that_matters(sweep_table):
    rng = np.random.default_rng(0)
    t = sweep_table[(sweep_table["N"] == 1e8) & (sweep_table["D"] <= 8e9)
                    & sweep_table["batch_size"].between(64, 512)].copy()
    t["dropout"] = rng.uniform(0, 0.2, len(t))  # irrelevant by construction
    t.attrs["hparams"] = ["lr", "batch_size", "dropout"]
    long = importance_by_scale(t)
    assert set(long["evaluator"]) == {"ped-anova", "fanova"}
    for ev in ("ped-anova", "fanova"):
        wide = importance_table(long, ev)
        assert len(wide) == t.groupby(["N", "D"]).ngroups
        assert (wide["lr"] > wide["dropout"]).all(), wide


def test_nothing_to_rank_is_an_error():
    t = pd.DataFrame({"N": 1e8, "D": 1e9, "loss": [3.0, 3.1], "lr": [1e-3, 1e-3]})
    with pytest.raises(AnalysisError, match="no hyperparameter varies"):
        importance_by_scale(t)


def test_fanova_without_scikit_learn_is_a_clear_error(sweep_table, monkeypatch):
    real = sensitivity.find_spec
    monkeypatch.setattr(sensitivity, "find_spec",
                        lambda name: None if name == "sklearn" else real(name))
    with pytest.raises(AnalysisError, match="fanova importance needs scikit-learn"):
        importance_by_scale(sweep_table)
    assert len(importance_by_scale(sweep_table[sweep_table["N"] == 1e8].iloc[:200],
                                   evaluators=("ped-anova",)))
