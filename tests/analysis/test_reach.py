"""Predictions beyond the fitted range: said, refused past the limit, and intervals only where
they are intervals (`scalelab.analysis.reach`, `scalelab predict`)."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis.laws import ChinchillaLaw, CurveLaw
from scalelab.analysis.reach import LIMIT, beyond, distrust

from tests.analysis.command import run_command as _run


@pytest.fixture
def fit_file(tmp_path, chinchilla_fit):
    path = tmp_path / "loss.json"
    chinchilla_fit.save(path)
    return path


@pytest.mark.parametrize("query, axes", [
    ({"N": 5e8, "D": 1e10}, []),
    ({"N": 2e10, "D": 1e10}, [("N", 2.0)]),
    ({"N": 1e6, "D": 1e13}, [("N", 10.0), ("D", 10.0)]),
])
def test_beyond_names_each_axis_outside_and_its_factor(query, axes):
    inputs = {"N_range": [1e7, 1e10], "D_range": [1e8, 1e12]}
    assert [(b.axis, pytest.approx(b.factor)) for b in beyond(inputs, **query)] == axes


def test_a_prediction_far_beyond_the_fit_is_refused_and_forced_has_no_interval(capsys, fit_file):
    rc, out, err = _run(capsys, "predict", "--fit", str(fit_file), "--C", "1e300")
    assert rc == 2 and out == ""
    assert "fitted range" in err and f"more than {LIMIT:g}x" in err and "--force" in err
    rc, out, err = _run(capsys, "predict", "--fit", str(fit_file), "--C", "1e300", "--force", "--json")
    pred = json.loads(out)
    assert rc == 0 and pred["loss_interval"] is None and pred["N_opt_interval"] is None
    assert pred["unreliable"] and "fitted range" in pred["unreliable"][0]


def test_a_derived_token_count_far_outside_is_refused(capsys, fit_file):
    rc, _, err = _run(capsys, "predict", "--fit", str(fit_file), "--N", "3e8", "--C", "1")
    assert rc == 2 and "D = " in err and "below the fitted range" in err


def test_a_prediction_near_the_fit_says_how_far_beyond_it_is(capsys, fit_file):
    rc, out, _ = _run(capsys, "predict", "--fit", str(fit_file), "--N", "2e10", "--D", "1e11")
    assert rc == 0
    assert "extrapolation:" in out and "N = 2e+10 is" in out and "above the fitted range" in out
    assert "95% interval [" in out  # a bootstrapped fit, within the limit: an interval


def test_no_interval_is_printed_without_a_bootstrap(capsys, tmp_path, chinchilla_table):
    fit = tmp_path / "plain.json"
    ChinchillaLaw().fit(chinchilla_table).save(fit)
    rc, out, _ = _run(capsys, "predict", "--fit", str(fit), "--N", "3e8", "--D", "6e9")
    assert rc == 0 and "interval [" not in out and "no interval: the fit has no bootstrap" in out


def test_two_sizes_give_no_reliable_number_beyond_them(chinchilla_table):
    two = chinchilla_table.assign(N=np.where(chinchilla_table["N"] < 3e8, 1e8, 1e9))
    law = ChinchillaLaw().fit(two)
    assert "saw 2 size(s)" in distrust(law, N=4e9, D=1e10)
    assert distrust(law, N=5e8, D=1e10) == ""  # between them: interpolation


def test_the_curve_law_does_not_vouch_for_the_transient():
    steps = np.arange(1, 401, 20)
    rows = [{"run": f"n{N:g}", "N": N, "step": s, "tokens": 1000.0 * s, "lr": 1e-3,
             "loss": 2 + 30 / N ** 0.3 + 40 / (1000.0 * s) ** 0.3} for N in (1e5, 3e5, 1e6) for s in steps]
    law = CurveLaw().fit(pd.DataFrame(rows))
    start = law.inputs_["D_range"][0]
    assert "transient" in distrust(law, N=4e6, D=0.5 * start)
    assert distrust(law, N=4e6, D=2 * start) == ""


def test_fit_files_are_strict_json(tmp_path, chinchilla_fit):
    law = ChinchillaLaw.from_dict(chinchilla_fit.to_dict())
    law.params_["E"] = float("nan")
    path = tmp_path / "nan.json"
    law.save(path)
    saved = json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"non-JSON {token}"))
    assert saved["params"]["E"] is None


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_an_unwritable_fit_file_is_refused_before_the_fit(capsys, tmp_path, chinchilla_table, where):
    table = tmp_path / "runs.csv"
    chinchilla_table.to_csv(table, index=False)
    blocker = tmp_path / "taken"
    blocker.mkdir() if where == "folder" else blocker.write_text("a file")
    target = blocker if where == "folder" else blocker / "fit.json"
    rc, out, err = _run(capsys, "fit", str(table), "--law", "chinchilla", "--json", str(target))
    assert (rc, out) == (2, "") and err.startswith("scalelab: error: --json") and str(blocker) in err
    assert os.path.isdir(blocker) == (where == "folder")  # left as it was
