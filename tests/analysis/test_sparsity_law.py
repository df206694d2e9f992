"""The sparsity law L(N_active, D, G) of MoE runs: recovery, selection, best sparsity, lr, CLI."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import SparsityLaw, load_fit
from scalelab.analysis.laws.sparsity import lr_against_dense
from scalelab.analysis.report import write_report

from tests.analysis.command import run_command

CHIN = {"E": 1.8, "A": 200.0, "alpha": 0.3, "delta": 0.15, "B": 400.0, "beta": 0.3}
BIL = {"E": 1.8, "A": 0.5, "alpha": 0.3, "delta": 0.15, "c": 0.06, "B": 400.0, "beta": 0.3}
NS, GS, DS = np.geomspace(1e6, 1.6e7, 5), (1, 2, 4, 8), (1e8, 4e8, 1.6e9)
F, EMB = 0.6, 50.0  # N_total = N (1 + F (G - 1)) + EMB N^0.5


def true_loss(form, N, D, G, Ns=NS, Gs=GS):
    N, D, G = (np.asarray(v, float) for v in (N, D, G))
    if form == "chinchilla":
        size = CHIN["A"] / (N ** CHIN["alpha"] * G ** CHIN["delta"])
    else:  # centred at the geometric means of the table's sizes and expansions
        n, g = np.log(N) - np.mean(np.log(Ns)), np.log(G) - np.mean(np.log(Gs))
        size = BIL["A"] * np.exp(-BIL["alpha"] * n - BIL["delta"] * g + BIL["c"] * n * g)
    return CHIN["E"] + size + CHIN["B"] / D ** CHIN["beta"]


def make_table(form="chinchilla", noise=0.003, seed=0, Ns=NS, Gs=GS, Ds=DS):
    rng = np.random.default_rng(seed)
    rows = [{"N": N, "D": D, "C": 6 * N * D, "sparsity": 1 - 1 / G, "N_total": N * (1 + F * (G - 1)) + EMB * N ** 0.5,
             "loss": float(true_loss(form, N, D, G, Ns, Gs)) * np.exp(rng.normal(0, noise))}
            for N in Ns for G in Gs for D in Ds]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fits():
    """The auto law on data made from each form, with a small bootstrap."""
    return {form: SparsityLaw().fit(make_table(form), bootstrap=20, seed=0) for form in ("chinchilla", "bilinear")}


@pytest.mark.parametrize("form", ["chinchilla", "bilinear"])
def test_auto_picks_the_true_form_and_recovers_its_parameters(fits, form):
    law = fits[form]
    assert law.variant == form and law.metrics_["winner"] == form
    assert {s["form"] for s in law.metrics_["selection"]} == {"chinchilla", "bilinear"}
    truth = CHIN if form == "chinchilla" else BIL
    assert set(law.params_) == set(truth)
    for k, tol in {"alpha": 0.03, "delta": 0.015, "beta": 0.03, "c": 0.015}.items():
        if k in truth:
            assert abs(law.params_[k] - truth[k]) < tol, (k, law.params_[k])
    assert law.params_["E"] == pytest.approx(truth["E"], rel=0.06)
    assert set(law.ci_) == set(truth) and law.metrics_["bootstrap"] >= 15
    lo, hi = law.ci_["delta"]
    assert lo < law.params_["delta"] < hi
    assert law.inputs_["G_range"] == [1.0, 8.0] and law.inputs_["expert_share"] == pytest.approx(F)
    assert law.inputs_["embedding"]["p"] == pytest.approx(0.5)


def test_heldout_prediction_at_a_larger_size():
    table = make_table()
    law = SparsityLaw("chinchilla").fit(table[table["N"] < NS[-1]])
    big = table[table["N"] == NS[-1]]
    truth = true_loss("chinchilla", big["N"], big["D"], big["G"] if "G" in big else 1 / (1 - big["sparsity"]))
    pred = law.predict(big["N"], big["D"], 1 / (1 - big["sparsity"]))
    assert np.max(np.abs(pred / truth - 1)) < 0.01


def known_law(**inputs):
    """A chinchilla-form sparsity law of known parameters, without a fit."""
    return load_fit({"law": "sparsity", "form": "", "params": dict(CHIN), "n_points": 60, "inputs": {
        "variant": "chinchilla", "centre": {"N": 1.0, "G": 1.0, "D": 1.0}, "N_range": [1e6, 1.6e7],
        "D_range": [1e8, 1.6e9], "G_range": [1.0, 8.0], "sizes": 5, "expert_share": 0.5, "embedding": None,
        **inputs}})


def brute_force(law, C, G, memory=None):
    """(N, loss) of least loss on a fine log grid of N (under the cap)."""
    N = np.geomspace(1e5, C / 6, 400_001)
    if memory is not None:
        N = N[N * (1 + 0.5 * (G - 1)) <= memory]
    loss = law.predict(N, C / (6 * N), G)
    return N[np.argmin(loss)], loss.min()


def test_best_sparsity_is_the_true_optimum_with_and_without_a_cap():
    law = known_law()
    free = law.best_sparsity(1e17)
    assert free["best_G"] == 64 and [r["G"] for r in free["rows"]] == [1, 2, 4, 8, 16, 32, 64]
    assert any("extrapolation" in n for n in free["notes"])  # G = 64 beyond the fitted 8
    for row in free["rows"]:
        N, loss = brute_force(law, 1e17, row["G"])
        assert row["N_active"] == pytest.approx(N, rel=1e-3) and row["loss"] == pytest.approx(loss, rel=1e-9)
        assert row["D"] == pytest.approx(1e17 / (6 * row["N_active"]))
        assert row["N_total"] == pytest.approx(row["N_active"] * (1 + 0.5 * (row["G"] - 1)))
        assert row["loss_interval"] is None  # no bootstrap, no interval
    capped = law.best_sparsity(1e17, memory=2e6)
    assert capped["best_G"] <= 2
    for row in capped["rows"]:
        if not row["fits"]:  # even the smallest size the law reaches (1e6 / 10) is too big
            assert row["G"] == 64 and row["N_total_min"] > 2e6
            continue
        N, loss = brute_force(law, 1e17, row["G"], 2e6)  # the grid's last point under the cap
        assert row["bound"] == "memory" and row["N_active"] == pytest.approx(2e6 / (1 + 0.5 * (row["G"] - 1)))
        assert row["N_active"] == pytest.approx(N, rel=1e-4) and row["loss"] == pytest.approx(loss, rel=1e-4)
    assert [r["fits"] for r in capped["rows"]][-1] is False


def test_json_round_trip_gives_the_same_predictions(fits, tmp_path):
    for law in fits.values():
        path = tmp_path / f"{law.variant}.json"
        law.save(path)
        json.loads(path.read_text())  # strict JSON
        back = load_fit(path)
        assert isinstance(back, SparsityLaw) and back.variant == law.variant and back.form == law.form
        N, D, G = np.array([2e6, 3e7]), np.array([3e8, 2e9]), np.array([1.0, 16.0])
        assert np.allclose(back.predict(N, D, G), law.predict(N, D, G), rtol=1e-12)
        assert back.predict_interval(3e7, 2e9, 4) == pytest.approx(law.predict_interval(3e7, 2e9, 4))
        a, b = back.best_sparsity(1e17, 3e7), law.best_sparsity(1e17, 3e7)
        assert a["best_G"] == b["best_G"] and a["rows"][0]["loss"] == pytest.approx(b["rows"][0]["loss"])


def test_one_data_size_drops_the_data_term():
    table = make_table(Ds=(4e8,))
    law = SparsityLaw("chinchilla").fit(table)
    assert set(law.params_) == {"E", "A", "alpha", "delta"} and "at D = 4e+08 only" in law.form
    assert any("one data size" in n for n in law.inputs_["notes"])
    assert abs(law.params_["delta"] - CHIN["delta"]) < 0.02
    assert law.predict(4e6, None, 4) == pytest.approx(float(true_loss("chinchilla", 4e6, 4e8, 4)), rel=0.01)
    with pytest.raises(AnalysisError, match="one data size, D = 4e\\+08"):
        law.predict(4e6, 1e9, 4)
    with pytest.raises(AnalysisError, match="one data size"):
        law.best_sparsity(1e17)


def _set(table, **columns):
    return table.assign(**columns)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["sparsity"]), "needs a sparsity column"),
    (lambda t: _set(t, sparsity=0.0), "at least two sparsities; every run is dense"),
    (lambda t: _set(t, sparsity=0.75), "at least two sparsities; every run has sparsity 0.75"),
    (lambda t: _set(t, N=1e6), "at least two active sizes"),
    (lambda t: t.iloc[[0, 1, 3, 4, 13]], "has 6 parameters but the table has only 5 cells"),
    (lambda t: _set(t, loss=np.where(np.arange(len(t)) == 2, -1.0, t["loss"])), "positive, finite N, D and loss"),
    (lambda t: _set(t, sparsity=np.where(np.arange(len(t)) == 2, 1.0, t["sparsity"])), "0 <= sparsity < 1"),
    (lambda t: t.iloc[:0], "empty table"),
])
def test_bad_input_is_named(change, message):
    with pytest.raises(AnalysisError, match=message):
        SparsityLaw("chinchilla").fit(change(make_table()))


def test_bad_options_are_named():
    with pytest.raises(AnalysisError, match="unknown sparsity form 'cubic'"):
        SparsityLaw("cubic")
    with pytest.raises(AnalysisError, match="no memory cap"):
        known_law(expert_share=None).best_sparsity(1e17, memory=1e7)


def lr_trials(ratio=1.5, Ns=(1e6, 2e6, 4e6, 8e6), Gs=(1, 4, 8), D=4e8, seed=0):
    """An lr grid per (N, G) cell: a bowl in log lr around 0.02 (N/1e6)^-0.3, times `ratio` for MoE."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in Ns:
        for G in Gs:
            best = 0.02 * (N / 1e6) ** -0.3 * (ratio if G > 1 else 1.0)
            base = float(true_loss("chinchilla", N, D, G))
            for lr in 2.0 ** np.arange(-12, -2, 0.25):
                loss = base * (1 + 0.01 * np.log(lr / best) ** 2) * np.exp(rng.normal(0, 1e-4))
                rows.append({"N": N, "D": D, "C": 6 * N * D, "sparsity": 1 - 1 / G, "lr": lr, "loss": loss})
    return pd.DataFrame(rows)


def test_moe_cells_best_at_an_edge_of_the_rates_tried_are_counted_not_hidden():
    """A cell whose best is the lowest rate tried only bounds lr*: it is named beside the ratio."""
    low = lr_trials(0.01, Gs=(8,))  # lr* a hundredth of the dense law's: below every rate tried
    out = lr_against_dense(pd.concat([lr_trials(1.5, Gs=(1, 4)), low], ignore_index=True))
    assert out["ratio"] == pytest.approx(1.5, rel=0.05) and [r["G"] for r in out["by_G"]] == [4]
    assert out["statement"].endswith("; 4 MoE cell(s) best at the lowest rate tried (lr* below it))")
    assert [e["G"] for e in out["edges"]] == [8] * 4


def test_lr_against_dense_recovers_a_known_ratio():
    out = lr_against_dense(lr_trials(1.5))
    assert out["ratio"] == pytest.approx(1.5, rel=0.05)
    assert out["dense_law"]["b"] == pytest.approx(-0.3, abs=0.03) and out["dense_cells"] == 4
    assert [r["G"] for r in out["by_G"]] == [4, 8]
    assert all(r["ratio"] == pytest.approx(1.5, rel=0.06) for r in out["by_G"])
    assert re.fullmatch(r"MoE best lr is 1\.[45]\d times the dense law at equal active parameters \(dense scatter "
                        r"±\d+%; the rates tried are 1\.\d+x apart\)", out["statement"])
    assert out["resolution"] == pytest.approx(2 ** 0.25)  # the grid's step
    law = SparsityLaw("chinchilla").fit(lr_trials(1.5))  # one D: fitted to each cell's best run
    assert law.metrics_["lr_against_dense"]["ratio"] == pytest.approx(out["ratio"])
    assert any("best run of each (N, D, G) cell" in n for n in law.inputs_["notes"])
    with pytest.raises(AnalysisError, match="dense cells of at least two sizes"):
        lr_against_dense(lr_trials(Ns=(1e6, 2e6)).query("N == 1e6 or sparsity > 0"))


def test_cli_fit_and_predict(capsys, tmp_path):
    csv, fit = tmp_path / "moe.csv", tmp_path / "fits" / "sparsity.json"
    make_table().to_csv(csv, index=False)
    rc, out, err = run_command(capsys, "fit", str(csv), "--law", "sparsity", "--bootstrap", "10", "--json", str(fit))
    assert rc == 0, err
    assert "<- winner" in out and "delta" in out and "expert share f = 0.6" in out
    assert json.loads(fit.read_text())["law"] == "sparsity"
    rc, out, err = run_command(capsys, "predict", "--fit", str(fit), "--C", "1e17", "--memory", "3e7")
    assert rc == 0, err
    assert "best sparsity at C = 1e+17 under N_total <= 3e+07" in out and "<- best" in out
    best = [line for line in out.splitlines() if "<- best" in line][0]
    assert f"G = {best.split()[0]}" in out
    rc, out, _ = run_command(capsys, "predict", "--fit", str(fit), "--C", "1e17", "--memory", "3e7", "--json")
    pred = json.loads(out)
    assert pred["G"] == pred["best_sparsity"]["best_G"] and pred["N_total"] <= 3e7 * (1 + 1e-9)
    rc, out, _ = run_command(capsys, "predict", "--fit", str(fit), "--N", "4e6", "--D", "4e8", "--sparsity", "0.75",
                             "--json")
    pred = json.loads(out)
    assert pred["G"] == 4 and pred["loss"] == pytest.approx(float(true_loss("chinchilla", 4e6, 4e8, 4)), rel=0.01)
    assert pred["loss_interval"][0] < pred["loss"] < pred["loss_interval"][1]
    rc, _, err = run_command(capsys, "predict", "--fit", str(fit), "--N", "4e6", "--D", "4e8")
    assert rc == 2 and "--sparsity (0 for dense)" in err


def test_the_report_fits_the_sparsity_law_and_the_dense_laws_on_dense_runs_only(tmp_path):
    table = make_table()
    table.attrs["source"] = "synthetic"
    files = write_report(table, tmp_path / "report")
    fits = json.loads(files["fits"].read_text())
    assert fits["sparsity"]["inputs"]["variant"] == "chinchilla"
    dense = table[table["sparsity"] == 0]
    assert fits["chinchilla"]["n_points"] == len(dense)  # one run per (N, D) cell: every dense run
    assert any("fitted to the 15 dense runs" in n for n in fits["_notes"])
    assert files["loss_vs_active"].stat().st_size > 10_000 and "loss_vs_active" in files["index"].read_text()


def test_a_report_of_moe_runs_alone_says_why_the_dense_laws_are_missing(tmp_path):
    table = make_table()
    table = table[table["sparsity"] > 0].reset_index(drop=True)
    table.attrs["source"] = "synthetic"
    fits = json.loads(write_report(table, tmp_path / "report")["fits"].read_text())
    assert "sparsity" in fits and "chinchilla" not in fits
    assert fits["_errors"]["chinchilla"] == "no dense runs: the sparsity law fits the mixture-of-experts runs"


def test_fit_and_report_read_the_law_from_moe_run_records(tmp_path, capsys, synth):
    """Records as MoE runs write them (N_active and sparsity in scale; none in a dense record)."""
    records = []
    for i, row in make_table().iterrows():
        G = 1 / (1 - row["sparsity"])
        rec = synth.make_record(f"r{i}", row["N"], row["D"], row["loss"])
        rec["scale"]["N_total"] = int(row["N_total"])
        rec["config"]["model"]["moe"] = {"experts": 0 if G == 1 else int(round(G)), "top_k": 1}
        if G > 1:
            rec["scale"].update(N_active=int(row["N"]), sparsity=row["sparsity"])
        records.append(rec)
    synth.write_records(tmp_path / "runs", records)
    rc, out, err = run_command(capsys, "fit", str(tmp_path / "runs"), "--law", "sparsity",
                               "--json", str(tmp_path / "fit.json"))
    assert rc == 0, err
    law = load_fit(tmp_path / "fit.json")
    assert law.variant == "chinchilla" and abs(law.params_["delta"] - CHIN["delta"]) < 0.015
    assert law.inputs_["expert_share"] == pytest.approx(F, rel=0.02)  # the embeddings told apart
    assert run_command(capsys, "report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))[0] == 0
    assert (tmp_path / "report/loss_vs_active.png").exists()
