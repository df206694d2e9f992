"""`scalelab report` on a scaling study's folder: the study section, its plots and held-out runs."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from scalelab import record
from scalelab.analysis import ladder, report
from scalelab.analysis.curves import areas
from scalelab.analysis.findings import Findings
from scalelab.analysis.page import render_page
from scalelab.analysis.scaling_report import (FIGURE_CAPTIONS, Study, curve_fit, find_verdict, ladder_rows,
                                              study_section, verdict_rows, without_verification)
from scalelab.analysis.table import load_table
from scalelab.cli import main
from scalelab.schedule import lr_multiplier

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
LR_A, LR_ALPHA = 40.0, -0.3  # lr* = a C^alpha
CURVATURE = 0.01  # loss x (1 + CURVATURE log(lr / lr*)^2)
DEPTH, HEADS, CONTEXT = 4, 4, 64
WIDTHS, TOKENS = (16, 24, 32, 48), (1e6, 3e6)


# the curves: L = E + A/N^alpha + B/S1^beta - C*S2 (the curve law), times the lr penalty
CURVE_TRUE = {"E": 1.2, "A": 40.0, "alpha": 0.35, "B": 300.0, "beta": 0.4, "C": 3e-7}
WSD = {"name": "wsd", "warmup": 10, "min_lr_ratio": 0.0, "decay_fraction": 0.2, "branches": None}
STEPS = 100
EVALS = (1, 2, 3, 4, *range(5, STEPS + 1, 5))  # steps 1-4: the transient (before 5% of the run)


def true_loss(N, D, C, lr, seed=0):
    base = TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    penalty = 1 + CURVATURE * math.log(lr / (LR_A * C ** LR_ALPHA)) ** 2
    return base * penalty * (1 + 0.002 * math.sin(3.0 * seed + 7.0 * math.log(lr)))


def run_record(width, D, lr, seed=0, role=None, study="ladder", trial=None):
    N = float(record.non_embedding_params(width, DEPTH))
    C = record.flops_per_token(N, DEPTH, CONTEXT, width) * D
    loss = true_loss(N, D, C, lr, seed)
    return {"run_id": f"{study}-{width}-{D:g}-{lr:.6g}-{seed}-{role}", "study": study, "trial": trial,
            "status": "completed", "error": None,
            "config": {"model": {"width": width, "depth": DEPTH, "heads": HEADS, "context": CONTEXT},
                       "train": {"seed": seed}, "trial": {"role": role}},
            "scale": {"N": int(N), "N_total": int(N * 1.1), "D": int(D), "C": C,
                      "flops_per_token": C / D, "model": "gpt"},
            "hparams": {"lr": lr, "batch_size": 32},
            "metrics": {"final_val_loss": loss, "best_val_loss": loss, "initial_loss": 5.5, "steps": 100,
                        "tokens_seen": int(D)}}


def curve_record(width, D, lr, seed=0, role=None, study="curves"):
    """A run with its loss curve under WSD, from `CURVE_TRUE`, its final loss the curve's last."""
    rec = run_record(width, D, lr, seed, role, study)
    N, C = rec["scale"]["N"], rec["scale"]["C"]
    rate = lr_multiplier(OmegaConf.create(WSD), STEPS)
    s1, s2 = areas(np.array([rate(i) for i in range(STEPS)]), D / STEPS)
    P = CURVE_TRUE
    penalty = 1 + CURVATURE * math.log(lr / (LR_A * C ** LR_ALPHA)) ** 2
    law = [(P["E"] + P["A"] * N ** -P["alpha"] + P["B"] * s1[k] ** -P["beta"] - P["C"] * s2[k])
           * penalty * (1 + 0.001 * math.sin(3.0 * seed + k)) for k in EVALS]
    curve = [{"step": k, "tokens": int(k * D / STEPS), "eval_tokens": 4096,
              "val_loss": min(10.0, loss) if k < STEPS / 20 else loss}  # the transient: other dynamics
             for k, loss in zip(EVALS, law)]
    rec["config"]["schedule"] = dict(WSD)
    rec["curve"] = curve
    rec["metrics"].update(final_val_loss=curve[-1]["val_loss"], best_val_loss=min(c["val_loss"] for c in curve))
    return rec


def build_curve_study(folder, widths, target=True):
    """A ladder with loss curves: three lrs around lr* per width (lr* among them), a seed re-run
    of each width's best, and, with `target`, two seeds of the predicted optimum at a larger
    width and budget and an IsoFLOP neighbour (verification runs). The neighbour has the widest
    scale's size, budget and best lr: only its role keeps it out of the fit."""

    def lr_star(width, D):
        N = float(record.non_embedding_params(width, DEPTH))
        return LR_A * (record.flops_per_token(N, DEPTH, CONTEXT, width) * D) ** LR_ALPHA

    D = TOKENS[0]
    for width in widths:
        for t, f in enumerate((0.4, 1.0, 2.5)):
            record.write(folder / f"w{width}" / f"trial_{t}", curve_record(width, D, lr_star(width, D) * f))
        record.write(folder / f"w{width}" / "seed_1",
                     curve_record(width, D, lr_star(width, D), seed=1, role=ladder.SEED))
    if target:
        for seed in (0, 1):
            record.write(folder / "target" / f"optimum_seed{seed}",
                         curve_record(2 * max(widths), 4 * D, lr_star(2 * max(widths), 4 * D), seed, ladder.OPTIMUM,
                                      "curves/target"))
        record.write(folder / "target" / "half_seed0",
                     curve_record(max(widths), D, lr_star(max(widths), D), 2, ladder.HALF, "curves/target"))
    (folder / "verdict.json").write_text(json.dumps({"study": "curves", "scales": []}))
    return folder


def build_study(folder):
    """A ladder of 8 scales searched around the true lr* (the smallest budget's range stops below
    it: an edge), one seed re-run each, the verdict computed as the study computes it, and the
    verification runs at the target."""
    scales = []
    for width in WIDTHS:
        for D in TOKENS:
            N = float(record.non_embedding_params(width, DEPTH))
            C = record.flops_per_token(N, DEPTH, CONTEXT, width) * D
            scales.append((C, width, D))
    scales.sort()
    ranges = {}
    for k, (C, width, D) in enumerate(scales):
        lr_star = LR_A * C ** LR_ALPHA
        low, high = (lr_star / 20, lr_star / 1.6) if k == 0 else (lr_star / 6, lr_star * 6)
        name = f"model.width={width},train.tokens={D:g}"
        ranges[(width, D)] = {"optim.lr": ladder.SearchRange("optim.lr", low, high, f"synthetic range {k}").to_dict()}
        lrs = np.geomspace(low, high, 5)
        for t, lr in enumerate(lrs):
            record.write(folder / name / f"trial_{t}", run_record(width, D, float(lr), trial=t))
        best = min(lrs, key=lambda lr: true_loss(1, 1, C, lr))  # the penalty alone decides
        record.write(folder / name / "seed_1", run_record(width, D, float(best), seed=1, role=ladder.SEED))
    table = load_table(folder, statuses=("completed",), quiet=True)
    cells = ladder.cells(table)
    loss_law = ladder.loss_law(cells, bootstrap=0)
    hp = ladder.hparam_law(table, bootstrap=5)
    target_C = 8 * scales[-1][0]
    prediction = ladder.predict_target(loss_law, hp, target_C, DEPTH, HEADS, CONTEXT)
    noise = ladder.seed_noise(cells)
    for role in (ladder.OPTIMUM, ladder.HALF, ladder.DOUBLE):
        shape = prediction["shapes"][role]
        for seed in (0, 1):
            record.write(folder / "target" / f"{role}_seed{seed}",
                         run_record(shape["width"], shape["D"], prediction["lr"], seed, role, "ladder/target"))
    shape = prediction["shapes"][ladder.OPTIMUM]
    for role, f in ((ladder.LR_LOW, 0.5), (ladder.LR_HIGH, 2.0)):
        record.write(folder / "target" / f"{role}_seed0",
                     run_record(shape["width"], shape["D"], prediction["lr"] * f, 0, role, "ladder/target"))
    table = load_table(folder, statuses=("completed",), quiet=True)
    rows = []
    for C, width, D in scales:
        N = float(record.non_embedding_params(width, DEPTH))
        row = {"name": f"model.width={width},train.tokens={D:g}", "N": N, "D": D, "C": C, "width": width,
               "search_range": ranges[(width, D)]}
        c = cells[(cells["N"] == N) & (cells["D"] == D)].iloc[0]
        row.update(best_lr=c["lr"], best_trial_loss=c["best_trial_loss"], loss=c["loss"],
                   seed_losses=c["seed_losses"], seed_sd=c["seed_sd"], trials=int(c["trials"]))
        rows.append(row)
    result = {"study": "ladder", "scales": rows,
              "laws": {"loss": loss_law.to_dict(), "hparams": hp.to_dict()},
              "noise": {"seed_sd_relative": noise}, "target": prediction,
              "verdict": ladder.verdict(prediction, table, noise)}
    (folder / "verdict.json").write_text(json.dumps(record.sanitize(result), indent=2, allow_nan=False))
    return result


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "ladder"
    return folder, build_study(folder)


def _report(capsys, folder, out):
    rc = main(["report", str(folder), "--out", str(out), "--bootstrap", "0"])
    _, err = capsys.readouterr()
    assert rc == 0, err
    return (out / "index.html").read_text(), json.loads((out / "fits.json").read_text())


@pytest.mark.slow  # draws every figure and writes a W&B run: seconds
def test_scaling_report_shows_ladder_prediction_and_verdict(capsys, tmp_path, study):
    folder, result = study
    v = result["verdict"]
    assert v["complete"] and v["measured_loss"] is not None
    html, fits = _report(capsys, folder, tmp_path / "report")
    for name in ("study_loss", "study_lr"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 10_000, name
    # the study comes first, its numbers as the sweeper logs them
    assert html.index("Scaling study") < html.index("<h2>Plots</h2>")
    assert f"{v['measured_loss']:.4f} ({', '.join(f'{x:.4f}' for x in v['seed_losses'])})" in html
    lo, hi = v["interval"]
    assert f"{v['predicted_loss']:.4f} [{lo:.4f}, {hi:.4f}]" in html
    assert f"{100 * v['relative_error']:+.2f}%" in html
    assert f"{100 * v['lr_regret']:.3f}%" in html
    for n in v["neighbours"].values():
        assert f"{100 * n['gap_relative']:+.2f}% vs the predicted N" in html
    assert html.count("<img") >= 2 + 5
    # one ladder row per scale, with its range and why
    ladder_table = html[html.index("<table class=ladder>"):]
    ladder_table = ladder_table[:ladder_table.index("</table>")]
    assert ladder_table.count("<tr>") == 1 + 8
    assert "synthetic range 7" in ladder_table
    # the smallest budget's best lr is the largest it tried: an edge, listed
    edges = result["laws"]["hparams"]["metrics"]["edges"]
    assert any(e["side"] == "high" and e["quantity"] == "lr" for e in edges)
    assert f"Edge optima ({len(edges)})" in html and "largest value tried" in html
    # the verdict goes into fits.json; the verification runs stay out of every other fit
    assert fits["study"]["verdict"]["measured_loss"] == pytest.approx(v["measured_loss"])
    assert fits["chinchilla"]["n_points"] == len(result["scales"]) == 8
    assert fits["auto"]["n_points"] == 8
    assert "8 verification run(s)" in " ".join(fits["_notes"])
    assert "runs: 48;" in html  # 8 scales x (5 trials + 1 seed run)


def test_verification_runs_held_out_but_seed_runs_kept(study):
    folder, _ = study
    table = load_table(folder, statuses=("completed",), quiet=True)
    kept, held = without_verification(table)
    assert held == 8 and len(kept) == len(table) - 8
    assert set(kept["role"].dropna()) == {ladder.SEED}
    assert kept.attrs["flops"] == table.attrs["flops"]
    # a table of nothing but verification runs has nothing else to fit: kept whole
    only = table[table["role"].isin(ladder.TARGET_ROLES)]
    assert without_verification(only)[1] == 0


def test_no_study_section_without_verdict(tmp_path, study):
    folder, _ = study
    assert find_verdict(folder) == folder / "verdict.json"
    assert find_verdict(folder / "target") is None and find_verdict(tmp_path / "absent") is None
    assert find_verdict(None) is None


def test_study_stopped_early_renders_what_it_has(capsys, tmp_path, study):
    """Stopped after three scales: L(N, D) could not be fitted, so no laws, target or verdict."""
    folder, result = study
    stopped = tmp_path / "stopped"
    for scale in result["scales"][:3]:
        shutil.copytree(folder / scale["name"], stopped / scale["name"])
    error = "L(N, D): the auto law holds out the 1 largest model size(s) and needs two more to fit"
    (stopped / "verdict.json").write_text(json.dumps(record.sanitize(
        {"study": "ladder", "scales": result["scales"][:3], "error": error}), allow_nan=False))
    html, fits = _report(capsys, stopped, tmp_path / "report")
    assert "The study stopped early" in html and "needs two more to fit" in html
    assert "No target was predicted" in html and "no lr law was fitted" in html
    ladder_table = html[html.index("<table class=ladder>"):]
    assert ladder_table[:ladder_table.index("</table>")].count("<tr>") == 1 + 3
    assert f"{result['scales'][0]['loss']:.4f}" in html
    for name in ("study_loss", "study_lr"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 5_000, name
    assert fits["study"]["error"] == error


def test_section_of_a_prediction_without_verification(study):
    """A target predicted but not yet measured: the prediction, no measured loss."""
    folder, result = study
    partial = {k: v for k, v in result.items() if k != "verdict"}
    text = " ".join(cell for row in verdict_rows(partial) for cell in row)
    assert f"{result['target']['loss']:.4f}" in text and "no verification runs" in text
    assert ladder_rows({"scales": []}) == []
    empty = Findings(source="", runs=0, scales=0, notes=[], flops="")
    page = render_page(empty, {}, study_section(Study(folder, {"study": "s", "scales": []})))
    assert "<p>No ladder scale is recorded.</p>" in page and "<p>No target was predicted.</p>" in page


def test_names_from_the_user_reach_the_page_escaped(tmp_path, study):
    """A study, a source and a note are the user's text: markup in them is shown, not run."""
    folder, result = study
    name = '<script>alert("x")</script>'
    found = Findings(source=f"runs/{name}", runs=1, scales=1, notes=[name], flops="C = 6ND")
    page = render_page(found, {}, study_section(Study(folder, {**result, "study": name, "error": name})))
    assert "<script>" not in page and page.count("&lt;script&gt;") == 4
    unreadable = render_page(found, {}, study_section(Study(folder, unreadable=f"cannot read {name}")))
    assert "<script>" not in unreadable and "cannot read &lt;script&gt;" in unreadable


@pytest.fixture(scope="module")
def curve_study(tmp_path_factory):
    return build_curve_study(tmp_path_factory.mktemp("curves") / "ladder", (16, 24, 32, 48))


def test_the_curve_law_is_fitted_on_the_ladder_and_tested_on_the_target(curve_study):
    """Each width's best configuration (its best trial and seed re-run) is fitted; the target's
    runs are not, and the law fitted without them predicts their last point."""
    table = load_table(curve_study, statuses=("completed",), quiet=True)
    fit = curve_fit(curve_study, table)
    assert fit.error is None and fit.law is not None
    assert fit.ladder["run"].nunique() == 8 and not fit.ladder["role"].isin(ladder.TARGET_ROLES).any()
    assert fit.law.metrics_["runs"] == 8 and fit.law.inputs_["N_range"][1] < fit.target["N"].min()
    assert set(fit.target["role"]) == {ladder.OPTIMUM} and fit.target["run"].nunique() == 2
    error = fit.target_error()
    assert error["tokens"] == 4 * TOKENS[0]
    assert error["relative_error"] == pytest.approx(error["measured"] / error["predicted"] - 1)
    assert abs(error["relative_error"]) < 0.005  # the curves follow the law: an extrapolation 4x in N


def test_report_draws_the_curve_fits_and_lists_the_curve_law(capsys, monkeypatch, tmp_path, curve_study):
    # the generic figures (tested with the report's other sources) are most of a report's seconds
    monkeypatch.setattr(report, "draw_figures", lambda table, found, out: {})
    html, fits = _report(capsys, curve_study, tmp_path / "report")
    assert (tmp_path / "report" / "curve_fits.png").stat().st_size > 10_000
    # in the study's section, with its caption; the law with the others, its parameters and fit
    section = html[html.index("Scaling study"):html.index("<h2>Plots</h2>")]
    assert 'alt="curve_fits"' in section and FIGURE_CAPTIONS["curve_fits"].replace("'", "&#39;") in section
    curve = fits["curve"]
    assert curve["form"] == "L = E + A/N^alpha + B/S1^beta - C*S2" and curve["metrics"]["runs"] == 8
    fits_section = html[html.index("<h2>Fits</h2>"):]
    assert f"<h3>curve: <code>{curve['form']}</code></h3>" in fits_section
    for name in ("E", "A", "alpha", "B", "beta", "C"):
        assert f"<td>{name}</td><td>{curve['params'][name]:.6g}</td>" in fits_section
    assert f"points: {curve['n_points']}; rmse_log {curve['metrics']['rmse_log']:.4g}; 8 runs" in fits_section
    assert "curve not fitted" not in html


def test_report_on_too_few_sizes_says_the_curve_law_was_not_fitted(capsys, tmp_path):
    folder = build_curve_study(tmp_path / "one", (24,), target=False)
    html, fits = _report(capsys, folder, tmp_path / "report")
    assert "curve not fitted: the curve law needs at least two scales" in html
    assert "curve" not in fits and "at least two scales" in fits["_errors"]["curve"]
    assert not (tmp_path / "report" / "curve_fits.png").exists() and 'alt="curve_fits"' not in html
    assert (tmp_path / "report" / "study_loss.png").exists()  # the rest of the report goes on
