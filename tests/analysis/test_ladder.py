"""A scaling study's analysis on synthetic runs with known optima: profile optima and edges, the
lr law, the law-guided range, the target and the verdict."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import ladder
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import ChinchillaLaw, HparamsLaw
from scalelab.analysis.laws.hparams import profile_optimum
from scalelab.record import FlopConvention, flops_per_token, non_embedding_params

A, ALPHA = 4.0, -0.3  # lr* = A C^ALPHA


def lr_star(C):
    return A * np.asarray(C, float) ** ALPHA


def runs(cells, lrs_per_cell=6, spread=8.0, shift=1.0, curvature=0.05, seed_noise=0.0):
    """Search trials in each (N, D) cell: lrs log-spaced over `spread` around lr* x `shift`,
    loss = L(N, D) + curvature (log lr - log lr*)^2."""
    rng = np.random.default_rng(0)
    rows = []
    for N, D in cells:
        C = 6 * N * D
        best = float(lr_star(C))
        centre = best * shift
        for lr in np.geomspace(centre / spread, centre * spread, lrs_per_cell):
            loss = 1.7 + 20 / N ** 0.35 + 30 / D ** 0.3 + curvature * math.log(lr / best) ** 2
            rows.append({"N": N, "D": D, "C": C, "lr": lr, "batch_size": 16, "loss": loss * (1 + seed_noise * rng.normal()),
                         "role": None, "seed": 0, "status": "completed"})
    table = pd.DataFrame(rows)
    table.attrs["flops"] = FlopConvention()
    return table


CELLS = [(n, d) for n in (3e3, 6e3, 1.2e4, 2.4e4) for d in (2e5, 8e5)]


@pytest.mark.parametrize("values, losses, expected, edge", [
    ([1e-3, 1e-2, 1e-1], [1.0, 0.5, 1.0], 1e-2, None),  # symmetric: the middle
    ([1e-3, 1e-2, 1e-1], [0.5, 0.6, 0.9], 1e-3, "low"),  # best at the smallest tried
    ([1e-3, 1e-2, 1e-1], [0.9, 0.6, 0.5], 1e-1, "high"),
    ([1e-2, 1e-2, 1e-2], [0.9, 0.6, 0.5], 1e-2, None),  # one value: nothing to say about an edge
    ([4e-3, 1e-2, 1e-2, 2.5e-2], [0.8, 0.9, 0.5, 0.8], 1e-2, None),  # the envelope: best loss per value
])
def test_profile_optimum(values, losses, expected, edge):
    value, side = profile_optimum(values, losses)
    assert value == pytest.approx(expected, rel=1e-9) and side == edge


def test_profile_optimum_is_the_parabola_vertex_between_points():
    lrs = np.array([1e-3, 3e-3, 1e-2, 3e-2])
    losses = (np.log(lrs) - math.log(5e-3)) ** 2
    assert profile_optimum(lrs, losses)[0] == pytest.approx(5e-3, rel=1e-9)


def test_lr_law_recovers_known_parameters_and_leaves_edges_out():
    table = runs(CELLS)
    # two cells searched far below their optimum: their best is the largest lr tried
    edged = runs([(5e3, 4e5), (1e4, 4e5)], shift=1 / 20.0)
    law = HparamsLaw("deepseek", "profile").fit(pd.concat([table, edged], ignore_index=True), evaluate=False)
    assert law.params_["alpha"] == pytest.approx(ALPHA, abs=0.02)
    assert law.params_["a"] == pytest.approx(A, rel=0.3)
    edges = law.metrics_["edges"]
    assert {(e["N"], e["side"]) for e in edges} == {(5e3, "high"), (1e4, "high")}


def test_an_lr_law_with_too_few_inside_optima_says_so():
    table = runs(CELLS[:3], shift=1 / 20.0)
    with pytest.raises(AnalysisError, match=r"lr\*: 0 of 3 cells have an optimum inside the range they tried"):
        HparamsLaw("deepseek", "profile").fit(table, evaluate=False)


def test_bootstrap_resamples_within_cells():
    law = ladder.hparam_law(runs(CELLS, seed_noise=0.002), bootstrap=50)
    lo, hi = law.ci_["alpha"]
    # 0.25: weighted near-best optima scatter more than the parabola vertex on a noise-free bowl
    assert lo <= law.params_["alpha"] <= hi and hi - lo < 0.25


def test_guided_range_is_centred_on_the_law_and_bounded():
    law = ladder.hparam_law(runs(CELLS, seed_noise=0.002), bootstrap=50)
    N, D = 5e4, 1.6e6
    C = 6 * N * D
    r = ladder.guided_range("optim.lr", law, None, C, None, (1e-4, 1e0), floor=2.0, N=N, D=D)
    centre = float(law.predict(N=N, D=D, C=C)[0])
    assert r.centre == pytest.approx(centre) and r.centre == pytest.approx(float(lr_star(C)), rel=0.2)
    assert r.low <= centre / 2 and r.high >= centre * 2  # the floor
    assert r.low >= centre / 100 * 0.999 and r.high <= centre * 100 * 1.001  # at most the configured width
    assert "law-guided" in r.reason


def test_guided_range_moves_past_an_edge():
    r = ladder.guided_range("optim.lr", None, "no law", 1e10, {"value": 0.03, "edge": "high"}, (1e-3, 3e-2), 2.0)
    assert r.high == pytest.approx(0.12) and r.low == pytest.approx(1e-3) and r.centre == pytest.approx(0.06)
    assert "moved outward" in r.reason and "largest" in r.reason
    r = ladder.guided_range("optim.lr", None, "no law", 1e10, {"value": 1e-3, "edge": "low"}, (1e-3, 3e-2), 2.0)
    assert r.low == pytest.approx(2.5e-4) and r.centre == pytest.approx(5e-4)


def test_cells_average_the_best_configuration_over_seeds_and_skip_verification_runs():
    table = runs(CELLS[:1])
    best = table.loc[table["loss"].idxmin()]
    repeats = [{**best.to_dict(), "role": "seed", "seed": s, "loss": best["loss"] + d} for s, d in ((1, 0.02), (2, 0.5))]
    target = {**best.to_dict(), "role": "optimum", "N": 9e9, "loss": 0.1}
    full = pd.concat([table, pd.DataFrame([*repeats, target])], ignore_index=True)
    (cell,) = ladder.cells(full).to_dict(orient="records")
    assert cell["loss"] == pytest.approx(best["loss"] + 0.02)  # the median: one stalled seed does not count
    assert cell["seed_losses"] == pytest.approx([best["loss"], best["loss"] + 0.02, best["loss"] + 0.5])
    assert cell["seed_sd"] == pytest.approx(np.std([0, 0.02, 0.5], ddof=1))
    assert cell["trials"] == len(table)


def test_target_budget_puts_the_compute_optimal_n_at_the_ratio():
    law = ChinchillaLaw()
    law.params_ = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
    law.flops_ = FlopConvention()
    C = ladder.target_budget(law, 2.5e4, 4.0, 1e10)
    assert float(law.compute_optimal(C)[0]) == pytest.approx(1e5, rel=1e-6)


def test_isoflop_shapes_are_three_widths_at_one_budget():
    shapes = ladder.isoflop_shapes(1e5, 1e12, depth=2, heads=2, context=64)
    widths = [shapes[r].width for r in ("half", "optimum", "double")]
    assert widths == sorted(set(widths)) and all(w % 2 == 0 for w in widths)
    for s in shapes.values():
        assert s.N == non_embedding_params(s.width, 2)
        assert s.D * flops_per_token(s.N, 2, 64, s.width) == pytest.approx(1e12)
    with pytest.raises(AnalysisError, match="smallest model"):
        ladder.isoflop_shapes(10, 1e9, depth=2, heads=2, context=64)


def _target_table(optimum, half, double, scan):
    rows = [{"role": "optimum", "seed": s, "loss": v, "lr": 0.01} for s, v in enumerate(optimum)]
    rows += [{"role": "half", "seed": s, "loss": v, "lr": 0.01} for s, v in enumerate(half)]
    rows += [{"role": "double", "seed": s, "loss": v, "lr": 0.01} for s, v in enumerate(double)]
    rows += [{"role": "lr_low", "seed": 0, "loss": scan[0], "lr": 0.005},
             {"role": "lr_high", "seed": 0, "loss": scan[1], "lr": 0.02}]
    return pd.DataFrame(rows)


PREDICTION = {"loss": 2.0, "loss_interval": [1.95, 2.05],
              "shapes": {r: {"N": n, "D": 1e6, "width": w, "loss": 2.0} for r, n, w in
                         (("half", 5e4, 32), ("optimum", 1e5, 46), ("double", 2e5, 64))}}


def test_verdict_measures_the_prediction_the_neighbours_and_the_lr_regret():
    v = ladder.verdict(PREDICTION, _target_table([2.01, 2.03], [2.1, 2.1], [2.06, 2.08], [2.04, 2.00]), 0.002)
    assert v["measured_loss"] == pytest.approx(2.02) and v["relative_error"] == pytest.approx(0.01)
    assert v["inside_interval"] and v["complete"]
    assert v["beats_neighbours"] and v["beats_neighbours_strictly"]
    # the scan: 2.04 at lr/2, 2.01 (seed 0) at the prediction, 2.00 at 2 lr
    assert v["lr_regret"] == pytest.approx(2.01 / 2.00 - 1)
    assert ladder.verdict_lines(v)[0].startswith("verdict: predicted loss 2.0000 [1.9500, 2.0500], measured 2.0200")


def test_a_diverged_rate_of_the_scan_is_its_answer_not_a_gap():
    table = _target_table([2.01, 2.03], [2.1, 2.1], [2.06, 2.08], [2.00, 9.7])
    table["status"] = ["diverged" if role == "lr_high" else "completed" for role in table["role"]]
    v = ladder.verdict(PREDICTION, table, 0.002)
    assert v["complete"] and [s["diverged"] for s in v["lr_scan"]] == [False, False, True]
    assert v["lr_regret"] == pytest.approx(2.01 / 2.00 - 1)  # against the rates that trained
    assert ladder.verdict_lines(v)[-1].endswith("0.02: diverged")
    table.loc[table["role"] == "optimum", "status"] = "diverged"  # the predicted rate itself: nothing measured
    assert "lr_regret" not in ladder.verdict(PREDICTION, table, 0.002)


def test_a_neighbour_better_by_more_than_the_noise_beats_the_prediction():
    v = ladder.verdict(PREDICTION, _target_table([2.10, 2.10], [2.0, 2.0], [2.2, 2.2], [2.2, 2.2]), 0.002)
    assert not v["inside_interval"] and not v["beats_neighbours"]
    within_noise = ladder.verdict(PREDICTION, _target_table([2.10, 2.10], [2.09, 2.09], [2.2, 2.2], [2.2, 2.2]), 0.01)
    assert within_noise["beats_neighbours"] and not within_noise["beats_neighbours_strictly"]


def test_the_lr_law_keeps_the_trend_the_held_out_scales_show():
    # lr* = A C^ALPHA: steplaw (which holds it) or deepseek, not the constant
    trend = ladder.hparam_law(runs(CELLS, seed_noise=0.002), bootstrap=0)
    selection = trend.metrics_["selection"]
    assert trend.law_form in ("steplaw", "deepseek")
    assert selection["scores"][trend.law_form] < selection["scores"]["constant"]
    assert selection["rmse_log_lr"][trend.law_form] < selection["rmse_log_lr"]["constant"]
    two = ladder.hparam_law(runs(CELLS[:2]), bootstrap=0)
    assert two.law_form == "constant" and "no trend can be fitted" in two.metrics_["selection"]["why"]
    # each of the two optima lies halfway between two trials equally far from lr*: exactly lr*
    assert float(two.predict(C=1e15)[0]) == pytest.approx(math.sqrt(lr_star(6 * 3e3 * 2e5) * lr_star(6 * 3e3 * 8e5)),
                                                          rel=1e-6)


def test_the_target_s_seed_noise_is_the_largest_repeated_size_s():
    cells = pd.DataFrame({"N": [1e4, 1e4, 4e4, 4e4, 9e4],
                          "seed_losses": [[2.0, 2.4], [2.1], [1.5, 1.51], [1.6, 1.59], [1.4]]})
    pooled, largest = ladder.seed_noise(cells), ladder.seed_noise(cells, largest=True)
    assert largest == pytest.approx(np.sqrt(np.mean([np.var([1.5, 1.51] / np.mean([1.5, 1.51]), ddof=1),
                                                     np.var([1.6, 1.59] / np.mean([1.6, 1.59]), ddof=1)])))
    assert pooled > 10 * largest  # the smallest size's spread would have spoken for the target
    assert math.isnan(ladder.seed_noise(cells.iloc[[1, 4]], largest=True))
