"""The analysis run's fits table, and the dashboards it defines only for one ladder or study."""
from __future__ import annotations

import math

from scalelab.analysis.analysis_run import fits_frame, log_analysis_run
from scalelab.analysis.laws import PowerLaw
from scalelab.analysis.findings import analyse
from scalelab.analysis.table import load_table
from scalelab.wandb_keys import FITS_COLUMNS


def test_fits_frame_has_a_row_per_parameter_and_one_per_law_that_could_not_be_fitted(chinchilla_table):
    law = PowerLaw("C", "loss").fit(chinchilla_table, bootstrap=20, seed=0)
    frame = fits_frame({"power": law}, {"chinchilla": "only 3 points"})
    assert list(frame.columns) == list(FITS_COLUMNS)
    fitted = frame[frame["law"] == "power"].set_index("parameter")
    assert set(fitted.index) == set(law.params_)
    for name, value in law.params_.items():
        assert fitted.loc[name, "value"] == value and fitted.loc[name, "n_points"] == law.n_points_
        assert [fitted.loc[name, "ci_low"], fitted.loc[name, "ci_high"]] == list(law.ci_[name])
    assert fitted["quality"].str.startswith("rmse_log ").all() and fitted["error"].isna().all()
    failed = frame[frame["law"] == "chinchilla"].iloc[0]
    assert failed["error"] == "only 3 points" and math.isnan(failed["value"])


def test_runs_of_several_studies_get_the_analysis_run_but_no_dashboards(tmp_path, synth):
    recs = [synth.make_record(f"r{i}", N, D, 3.0 - 0.1 * i, study=("a", "b")[i % 2])
            for i, (N, D) in enumerate([(1e7, 1e9), (2e7, 1e9), (4e7, 2e9), (8e7, 4e9)])]
    synth.write_records(tmp_path / "runs", recs)
    table = load_table(tmp_path / "runs", quiet=True)
    (tmp_path / "out").mkdir()
    for name in ("fits.json", "index.html"):
        (tmp_path / "out" / name).write_text("{}")
    made = log_analysis_run(table, analyse(table), {}, tmp_path / "out")
    assert made["dashboards"] == "none: the runs belong to no single ladder or study"
    assert made["wandb_dir"].parent == tmp_path / "out" / "wandb"
    assert not (tmp_path / "out" / "wandb_dashboards.json").exists()
