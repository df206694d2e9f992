"""The curve law: the schedule's areas, and a fit that recovers a known law from whole curves
and predicts a size 4x beyond its data."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from scalelab.analysis.curves import areas, with_areas
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import load_fit
from scalelab.analysis.laws.curve import CurveLaw
from scalelab.cli import main
from scalelab.schedule import lr_multiplier

TRUE = {"E": 1.2, "A": 40.0, "alpha": 0.35, "B": 300.0, "beta": 0.4, "C": 5e-6}  # a cooldown lowers the loss, as in real runs
WSD = {"name": "wsd", "warmup": 30, "min_lr_ratio": 0.0, "decay_fraction": 0.2}
TOKENS_PER_STEP = 1024


def law_loss(N, s1, s2, P=TRUE):
    return P["E"] + P["A"] * N ** -P["alpha"] + P["B"] * s1 ** -P["beta"] - P["C"] * s2


def schedule_areas(D):
    steps = int(D // TOKENS_PER_STEP)
    rate = lr_multiplier(OmegaConf.create(WSD), steps)
    eta = np.array([rate(i) for i in range(steps)])
    return eta, *areas(eta, TOKENS_PER_STEP)


def curves(sizes, budgets=(1e5, 4e5, 1.6e6), noise=0.002, seed=0):
    """Eleven points of each (N, D) run under WSD, the loss from TRUE with log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for D in budgets:
            eta, s1, s2 = schedule_areas(D)
            for k in np.linspace(0, len(eta), 11).astype(int):
                loss = law_loss(N, max(s1[k], 1.0), s2[k]) * np.exp(rng.normal(0, noise))
                rows.append({"run": f"{N:g}-{D:g}", "N": N, "D": D, "step": k, "tokens": k * TOKENS_PER_STEP,
                             "lr": 1e-2 * eta[min(k, len(eta) - 1)], "loss": loss,
                             "lr_area": s1[k], "anneal_area": s2[k]})
    table = pd.DataFrame(rows)
    table.attrs["schedule"] = WSD
    return table


def test_areas_of_a_constant_rate_are_its_tokens_and_no_annealing():
    s1, s2 = areas(np.ones(100), 64)
    assert s1[-1] == 6400 and s1[37] == 37 * 64 and not s2.any()


def test_the_annealing_area_without_memory_is_how_far_the_rate_fell():
    eta = np.linspace(1, 0, 11)
    _, s2 = areas(eta, 1.0, lam=0.0)
    # m_i = eta_(i-1) - eta_i = 0.1 each step from step 1: S2 after k steps sums k - 1 of them
    assert s2[5] == pytest.approx(0.4) and s2[-1] == pytest.approx(1.0)


def test_a_foreign_table_gets_its_areas_from_the_rate_at_its_rows():
    eta, s1, s2 = schedule_areas(2e5)
    every_step = pd.DataFrame({"run": "r", "N": 1e5, "step": np.arange(len(eta)),
                               "tokens": np.arange(len(eta)) * TOKENS_PER_STEP, "lr": 3e-3 * eta, "loss": 2.0})
    got = with_areas(every_step)
    assert got["lr_area"].to_numpy() == pytest.approx(s1[:-1])
    assert got["anneal_area"].to_numpy() == pytest.approx(s2[:-1], abs=1e-6 * s2.max())


def test_a_curve_table_without_a_rate_is_refused_naming_the_column():
    with pytest.raises(AnalysisError, match="missing: lr"):
        with_areas(pd.DataFrame({"run": ["a"], "N": [1.0], "step": [1], "loss": [2.0]}))


def test_the_fit_recovers_the_law_and_predicts_a_size_4x_beyond_its_data():
    law = CurveLaw(skip=0.0).fit(curves([25e3, 55e3, 99e3]), bootstrap=30)
    for name in ("alpha", "beta"):
        assert law.params_[name] == pytest.approx(TRUE[name], rel=0.1)
    assert law.params_["C"] == pytest.approx(TRUE["C"], rel=0.2)
    eta, s1, s2 = schedule_areas(1.6e6)
    truth = law_loss(394e3, s1[-1], s2[-1])
    assert float(law.predict(394e3, 1.6e6)) == pytest.approx(truth, rel=0.01)
    lo, hi = law.predict_interval(394e3, 1.6e6)
    assert lo < truth < hi and (hi - lo) / truth < 0.05


def test_a_cooldown_lowers_the_predicted_final_loss():
    law = CurveLaw(skip=0.0).fit(curves([25e3, 55e3, 99e3]))
    wsd = float(law.predict(1e5, 1.6e6))
    constant = float(law.predict(1e5, 1.6e6, schedule={**WSD, "name": "constant"}))
    assert wsd < constant


def test_the_fit_file_loads_back_and_predicts_the_same(tmp_path):
    law = CurveLaw().fit(curves([25e3, 55e3, 99e3]))
    law.save(tmp_path / "curve.json")
    again = load_fit(tmp_path / "curve.json")
    assert isinstance(again, CurveLaw) and again.skip == law.skip
    assert float(again.predict(2e5, 8e5)) == pytest.approx(float(law.predict(2e5, 8e5)), rel=1e-12)


def test_the_transient_is_left_out_by_the_skip_rule():
    table = curves([25e3, 55e3])
    kept = CurveLaw(skip=0.1).points(table)
    assert kept["tokens"].min() >= 0.1 * 1.6e6 and len(kept) < len(table)


def test_one_size_is_refused():
    with pytest.raises(AnalysisError, match="at least two scales"):
        CurveLaw().fit(curves([25e3]))


def test_fit_and_predict_from_the_command_line_on_a_foreign_table(capsys, tmp_path):
    """A foreign CSV with its own column names and no areas: `fit --law curve --map`, then `predict`."""
    table = curves([25e3, 55e3, 99e3]).drop(columns=["lr_area", "anneal_area", "D"])
    path = tmp_path / "curves.csv"
    table.rename(columns={"N": "params", "loss": "eval_loss"}).to_csv(path, index=False)
    fit = tmp_path / "curve.json"
    assert main(["fit", str(path), "--law", "curve", "--map", "N=params", "--map", "loss=eval_loss",
                 "--json", str(fit)]) == 0
    assert "curve: L = E + A/N^alpha + B/S1^beta - C*S2" in capsys.readouterr().out
    law = load_fit(fit)
    assert law.params_["alpha"] == pytest.approx(TRUE["alpha"], rel=0.25)
    # a foreign table has no schedule of its own: predicting a final loss needs one
    assert main(["predict", "--fit", str(fit), "--N", "4e5", "--D", "1.6e6"]) == 2
    assert "no single schedule" in capsys.readouterr().err
    assert main(["predict", "--fit", str(fit), "--N", "4e5", "--D", "1.6e6", "--json", "--tokens-per-step", "1024",
                 "--schedule", "name=wsd,warmup=30,decay_fraction=0.2"]) == 0
    eta, s1, s2 = schedule_areas(1.6e6)
    # within 3%: the areas come from eleven rows a run, the rate taken as linear between them
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(law_loss(4e5, s1[-1], s2[-1]), rel=0.03)


def test_predict_a_final_loss_from_a_fit_of_run_records(capsys, tmp_path):
    law = CurveLaw().fit(curves([25e3, 55e3, 99e3]))
    law.save(tmp_path / "curve.json")
    assert main(["predict", "--fit", str(tmp_path / "curve.json"), "--N", "4e5", "--D", "1.6e6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    eta, s1, s2 = schedule_areas(1.6e6)
    assert out["loss"] == pytest.approx(law_loss(4e5, s1[-1], s2[-1]), rel=0.01)


def test_a_loss_that_is_no_positive_number_is_named_not_fitted():
    table = curves([25e3, 55e3])
    table.loc[5, "loss"] = float("nan")
    with pytest.raises(AnalysisError, match=r"1 row\(s\) whose N or loss is not a positive number \(the first: run "):
        CurveLaw().fit(table)


def test_a_constant_loss_is_refused_before_fitting():
    with pytest.raises(AnalysisError, match=r"^the loss does not vary: every row is 2.5; a law needs runs whose loss "
                                            r"differs$"):
        CurveLaw().fit(curves([25e3, 55e3]).assign(loss=2.5))
