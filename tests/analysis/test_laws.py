"""Every law on synthetic data with known parameters; JSON round trips."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import (AutoLaw, ChinchillaLaw, HparamsLaw, IsoflopLaw, PowerLaw,
                                    load_fit)
from scalelab.analysis.laws.chinchilla import golden_section, start_grid
from scalelab.analysis.table import load_table
from scalelab.record import FlopConvention

# An attention term of 5% of 6ND at N = 1e9, falling as N^-1/2.
ATTENTION = FlopConvention("records", k=1581.0, p=-0.5)


def _under(law, flops: FlopConvention):
    """The same fitted law under another FLOP convention, by way of its fit JSON."""
    d = law.to_dict()
    d["inputs"]["flops"] = flops.to_dict()
    return load_fit(d)



def test_start_grid_is_the_published_one():
    g = start_grid("chinchilla")
    assert g.shape == (4500, 5)
    assert set(np.round(g[:, 3], 2)) == {0, 0.5, 1, 1.5, 2}
    assert set(g[:, 0]) == {0, 5, 10, 15, 20, 25}


def test_chinchilla_recovers_exponents_and_intervals_cover_truth(chinchilla_table, chinchilla_fit,
                                                                synth):
    law = chinchilla_fit
    assert abs(law.params_["alpha"] - synth.TRUE["alpha"]) < 0.02
    assert abs(law.params_["beta"] - synth.TRUE["beta"]) < 0.02
    for k in ("E", "A", "B", "alpha", "beta"):
        lo, hi = law.ci_[k]
        assert lo <= synth.TRUE[k] <= hi, (k, law.ci_[k])
    # the optimum is at least as good as the true parameters under the Huber objective
    pred_true = synth.chinchilla_loss(chinchilla_table.N, chinchilla_table.D)
    pred_fit = law.predict(chinchilla_table.N, chinchilla_table.D)
    y = np.log(chinchilla_table.loss)
    hub = lambda r: np.sum(np.where(abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (abs(r) - 5e-4)))  # noqa
    assert hub(np.log(pred_fit) - y) <= hub(np.log(pred_true) - y) + 1e-12


def test_chinchilla_compute_optimal_matches_brute_force(chinchilla_fit):
    law = chinchilla_fit
    C = 1e22
    n_opt, d_opt = law.compute_optimal(C)
    Ns = np.geomspace(1e8, 1e12, 20001)
    n_brute = Ns[np.argmin(law.predict(Ns, C / (6 * Ns)))]
    assert abs(np.log(n_opt / n_brute)) < 1e-3
    assert np.isclose(6 * n_opt * d_opt, C)


def test_compute_optimal_under_a_convention_is_the_true_minimiser(chinchilla_fit):
    law = _under(chinchilla_fit, ATTENTION)
    Ns = np.geomspace(1e8, 1e12, 400001)  # 2.3e-5 apart in log N
    for C in (1e20, 1e22, 1e24):
        n_opt, d_opt = law.compute_optimal(C)
        n_grid = Ns[np.argmin(law.predict(Ns, ATTENTION.D(Ns, C)))]
        assert abs(np.log(n_opt / n_grid)) < 1e-4, C
        assert ATTENTION.C(n_opt, d_opt) == pytest.approx(C, rel=1e-12)
        # not the allocation that counts C as 6ND
        assert abs(np.log(n_opt / chinchilla_fit.compute_optimal(C)[0])) > 1e-3


def test_compute_optimal_under_6nd_is_the_closed_form(chinchilla_fit):
    P = chinchilla_fit.params_
    a, b = P["alpha"], P["beta"]
    C = np.array([1e19, 1e22])
    n, d = chinchilla_fit.compute_optimal(C)
    G = (a * P["A"] / (b * P["B"])) ** (1 / (a + b))
    assert np.allclose(n, G * (C / 6) ** (b / (a + b)), rtol=1e-12)
    assert np.allclose(6 * n * d, C, rtol=1e-12)
    # the numerical search agrees where the convention is all but 6ND
    n_search, _ = _under(chinchilla_fit, FlopConvention("records", 1e-12, 0.0)).compute_optimal(C)
    assert np.allclose(n_search, n, rtol=1e-6)


def test_compute_optimal_interval_searches_all_draws_at_once(chinchilla_fit):
    law = _under(chinchilla_fit, ATTENTION)
    (nlo, nhi), (dlo, dhi) = law.compute_optimal_interval(1e22)
    each = np.array([law.compute_optimal(1e22, P) for P in law.sampled_params()])
    assert np.allclose([nlo, nhi], np.percentile(each[:, 0], [2.5, 97.5]), rtol=1e-7)
    assert np.allclose([dlo, dhi], np.percentile(each[:, 1], [2.5, 97.5]), rtol=1e-7)
    n, d = law.compute_optimal(1e22)
    assert nlo < n < nhi and dlo < d < dhi


def test_golden_section_finds_each_minimum():
    centres = np.array([-3.0, 0.5, 7.25])
    x = golden_section(lambda x: np.cosh(x - centres), np.full(3, -10.0), np.full(3, 10.0))
    assert np.allclose(x, centres, atol=1e-7)


def test_deepseek_law_on_records_counts_C_as_the_records_do(ladder_records, tmp_path):
    table = load_table(ladder_records, quiet=True)
    law = HparamsLaw("deepseek", "surface").fit(table, evaluate=False)
    assert law.params_["alpha"] < -0.1  # along the ladder lr* falls with C
    law.save(tmp_path / "hp.json")
    assert json.loads((tmp_path / "hp.json").read_text())["inputs"]["flops"] == \
        table.attrs["flops"].to_dict()
    back = load_fit(tmp_path / "hp.json")
    assert back.flops_ == table.attrs["flops"] and back.flops_.name == "records"
    row = table.iloc[-1]
    by_nd = np.array(back.predict(N=row.N, D=row.D))
    assert np.allclose(by_nd, back.predict(C=row.C), rtol=1e-9)
    plain = np.array(back.predict(C=6 * row.N * row.D))
    assert plain[0] / by_nd[0] == pytest.approx((6 * row.N * row.D / row.C) ** law.params_["alpha"])
    assert abs(plain[0] / by_nd[0] - 1) > 3e-3
    # a fit file written before conventions were recorded counted C as 6ND
    old = law.to_dict()
    del old["inputs"]["flops"]
    old_law = load_fit(old)
    assert old_law.flops_ == FlopConvention()
    assert np.allclose(old_law.predict(N=row.N, D=row.D), plain, rtol=1e-12)


def test_every_law_records_its_convention(isoflop_table, ladder_records):
    records = load_table(ladder_records, quiet=True)
    flops = records.attrs["flops"].to_dict()
    assert PowerLaw("C", "loss").fit(records).to_dict()["inputs"]["flops"] == flops
    hp = HparamsLaw("steplaw").fit(records, evaluate=False)
    assert hp.to_dict()["inputs"]["flops"] == flops
    # steplaw is in N and D: a query by N and the records' C finds the run's D again
    row = records.iloc[0]
    assert np.allclose(hp.predict(N=row.N, C=row.C), hp.predict(N=row.N, D=row.D), rtol=1e-9)
    iso = IsoflopLaw().fit(isoflop_table)
    assert iso.to_dict()["inputs"]["flops"] == FlopConvention().to_dict()


def test_chinchilla_json_round_trip(chinchilla_fit, tmp_path):
    law = chinchilla_fit
    law.save(tmp_path / "f.json")
    back = load_fit(tmp_path / "f.json")
    assert isinstance(back, ChinchillaLaw)
    d = back.to_dict()
    assert set(d) == {"law", "form", "params", "ci", "n_points", "metrics", "inputs"}
    assert np.isclose(back.predict(1e9, 2e10), law.predict(1e9, 2e10))
    lo, hi = back.predict_interval(1e9, 2e10)
    assert lo < law.predict(1e9, 2e10) < hi


def test_power_law_recovers_parameters():
    rng = np.random.default_rng(3)
    C = np.geomspace(1e17, 1e22, 30)
    y = (1.8 + 2000 * C ** -0.15) * np.exp(rng.normal(0, 0.002, C.size))
    law = PowerLaw("C", "loss").fit(pd.DataFrame({"C": C, "loss": y}), bootstrap=100)
    assert abs(law.params_["alpha"] - 0.15) < 0.02
    assert abs(law.params_["E"] - 1.8) < 0.1
    assert law.ci_["alpha"][0] <= 0.15 <= law.ci_["alpha"][1]
    # E fixed at 0: N_opt(C) = k C^a
    n = 0.1 * C ** 0.5 * np.exp(rng.normal(0, 0.01, C.size))
    law0 = PowerLaw("C", "N", fix_E=True).fit(pd.DataFrame({"C": C, "N": n}))
    assert law0.params_["E"] == 0.0 and abs(-law0.params_["alpha"] - 0.5) < 0.01
    back = load_fit(law0.to_dict())
    assert np.isclose(back.predict(1e23), law0.predict(1e23))


def test_isoflop_recovers_allocation_exponent(isoflop_table, synth):
    law = IsoflopLaw().fit(isoflop_table, bootstrap=50)
    a_true = synth.TRUE["beta"] / (synth.TRUE["alpha"] + synth.TRUE["beta"])
    assert abs(law.params_["a"] - a_true) < 0.03
    assert abs(law.params_["b"] - (1 - a_true)) < 0.03
    assert len(law.metrics_["budgets"]) == 4
    assert isinstance(load_fit(law.to_dict()), IsoflopLaw)


def test_auto_selects_by_extrapolation(isoflop_table):
    law = AutoLaw().fit(isoflop_table)
    table = pd.DataFrame(law.metrics_["selection"])
    assert set(table["form"]) == {"chinchilla", "shared", "no_floor"}
    assert law.metrics_["winner"] == table.loc[table["heldout_rmse_log"].idxmin(), "form"]
    # the data have an irreducible term and different exponents: the floorless form must lose
    assert law.metrics_["winner"] != "no_floor"
    back = load_fit(law.to_dict())
    assert isinstance(back, AutoLaw) and back.variant == law.variant


def test_auto_prefers_floorless_when_there_is_no_floor():
    rng = np.random.default_rng(5)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 120))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 120))
    loss = (300 / N ** 0.3 + 500 / D ** 0.3) * np.exp(rng.normal(0, 0.003, 120))
    law = AutoLaw().fit(pd.DataFrame({"N": N, "D": D, "loss": loss}))
    assert law.metrics_["winner"] in ("no_floor", "shared")


@pytest.mark.parametrize("optimum,tol", [("near-best", 0.06), ("surface", 0.02)])
def test_hparams_steplaw_recovers_known_law(sweep_table, optimum, tol, synth):
    law = HparamsLaw("steplaw", optimum).fit(sweep_table, bootstrap=30)
    for k in ("alpha", "beta", "gamma"):
        assert abs(law.params_[k] - synth.HP_TRUE[k]) < tol, (k, law.params_)
    assert law.inputs_["batch_unit"] == "tokens"
    lono = pd.DataFrame(law.metrics_["leave_one_n_out"])
    assert len(lono) == 4 and (lono["mean_regret"] < 0.01).all()
    back = load_fit(law.to_dict())
    lr, bs = back.predict(N=3e8, D=1e10)
    (lo, hi), (blo, bhi) = back.predict_interval(N=3e8, D=1e10)
    assert lo < lr < hi and blo < bs < bhi


def test_hparams_deepseek_form(sweep_table):
    law = HparamsLaw("deepseek", "surface").fit(sweep_table)
    assert set(law.params_) == {"a", "alpha", "b", "beta"}
    # bs* = b D^gamma; on this grid D and C are correlated, so bs* grows with C
    assert law.params_["beta"] > 0
    lr, bs = law.predict(C=1e20)
    assert np.isfinite(lr) and np.isfinite(bs)


def test_fit_file_of_another_law_is_refused(chinchilla_fit):
    d = chinchilla_fit.to_dict()
    with pytest.raises(AnalysisError, match="law 'chinchilla', not 'hparams'"):
        HparamsLaw.from_dict(d)


@pytest.mark.parametrize("law", [ChinchillaLaw(), HparamsLaw(), PowerLaw(), IsoflopLaw(), AutoLaw()])
def test_empty_table_is_refused(law):
    cols = ["N", "D", "C", "loss", "lr", "batch_size", "batch_tokens"]
    with pytest.raises(AnalysisError, match="empty|needs"):
        law.fit(pd.DataFrame({c: pd.Series(dtype=float) for c in cols}))


def test_one_scale_and_too_few_points_are_refused():
    one = pd.DataFrame({"N": [1e8] * 5, "D": [1e9, 2e9, 4e9, 8e9, 1.6e10],
                        "loss": [3.0, 2.9, 2.8, 2.7, 2.6]})
    with pytest.raises(AnalysisError, match="at least two scales"):
        ChinchillaLaw().fit(one)
    few = pd.DataFrame({"N": [1e8, 2e8, 4e8], "D": [1e9, 2e9, 4e9], "loss": [3.0, 2.9, 2.8]})
    with pytest.raises(AnalysisError, match="5 parameters but the table has only 3 points"):
        ChinchillaLaw().fit(few)


def test_hparams_of_one_batch_size_fit_the_lr_law_alone(sweep_table, synth):
    law = HparamsLaw("steplaw").fit(sweep_table[sweep_table["batch_size"] == 64], bootstrap=10)
    assert set(law.params_) == {"a", "alpha", "beta"} and not law.bs_varied
    for k in ("alpha", "beta"):
        assert abs(law.params_[k] - synth.HP_TRUE[k]) < 0.06, (k, law.params_)
    lono = pd.DataFrame(law.metrics_["leave_one_n_out"])  # the nearest run by lr alone
    assert len(lono) == 4 and (lono["mean_regret"] < 0.01).all()
    back = load_fit(law.to_dict())
    lr, bs = back.predict(N=3e8, D=1e10)
    (lo, hi), bs_interval = back.predict_interval(N=3e8, D=1e10)
    assert lo < lr < hi and np.isnan(bs) and np.isnan(bs_interval).all() and not back.bs_varied


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow, which the CLI keeps off stderr
def test_a_fit_with_a_parameter_that_is_no_finite_number_is_refused():
    C = np.geomspace(1e17, 1e22, 12)
    loss = 1.8 + 2000 * C ** -0.15
    loss[0] = 1e300
    with pytest.raises(AnalysisError, match=r"^the power fit gives A = inf, no finite number: it ran away; check the "
                                            r"loss for a wild value and N, D and C for mixed units"):
        PowerLaw("C", "loss").fit(pd.DataFrame({"C": C, "loss": loss}))
