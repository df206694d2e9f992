"""The analysis run's fits table, and the dashboards it defines only for one ladder or study."""
from __future__ import annotations

import math

import pytest

from scalelab.analysis.analysis_run import fits_frame, log_analysis_run, wandb_place
from scalelab.analysis.dashboards import DashboardSpec, build_report, build_workspace
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.findings import analyse
from scalelab.analysis.frontier import GRID, frontier_frame
from scalelab.analysis.laws import PowerLaw
from scalelab.analysis.report import write_report
from scalelab.analysis.table import load_table
from scalelab.wandb_keys import BEST, FITS_COLUMNS, FITS_TABLE, FRONTIER, FRONTIER_TABLE, FRONTIER_X

from tests.wandb_file import find_runs, read_run


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


# ----------------------------------------------------------------- a 3 x 3 ladder, reported twice
SIZES, BUDGETS = (1e7, 4e7, 1.6e8), (2e8, 8e8, 3.2e9)


def ladder(tmp_path, synth, projects=("ladderA",), ladder_id=None):
    """A 3 x 3 ladder of two learning rates per scale, logged to `projects` (in turn); records from
    before ladder ids without `ladder_id`."""
    recs = []
    for i, (N, D, lr) in enumerate((N, D, lr) for N in SIZES for D in BUDGETS for lr in (1e-3, 1e-2)):
        rec = synth.make_record(f"r{i}", N, D, float(synth.chinchilla_loss(N, D)) * (1.0 if lr == 1e-3 else 1.02),
                                lr=lr, study=f"lad/N={N:g},D={D:g}", trial=i, extra_hparams={"optim.lr": lr})
        rec["ladder"] = "lad"
        if ladder_id is not None:
            rec["ladder_id"] = ladder_id
        rec["config"]["logger"] = {"kind": "wandb", "project": projects[i % len(projects)], "entity": None}
        recs.append(rec)
    synth.write_records(tmp_path / "runs", recs)
    return load_table(tmp_path / "runs", quiet=True)


def report_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    for name in ("fits.json", "index.html"):
        (out / name).write_text("{}")
    return out


def test_the_analysis_run_goes_to_the_runs_own_project_unless_told(tmp_path, synth, monkeypatch):
    table = ladder(tmp_path, synth)
    monkeypatch.setenv("WANDB_PROJECT", "elsewhere")
    assert wandb_place(table) == ("ladderA", None)
    assert wandb_place(table, "mine") == ("mine", None)
    table.loc[0, "logger"] = "none"  # a run that logged nothing to W&B has no say
    table.loc[0, "project"] = "other"
    assert wandb_place(table)[0] == "ladderA"


def test_a_ladder_spread_over_two_projects_is_refused_in_one_line(tmp_path, synth):
    table = ladder(tmp_path, synth, projects=("ladderA", "ladderB"))
    with pytest.raises(AnalysisError, match=r"2 W&B projects \(ladderA, ladderB\).*--project") as e:
        write_report(table, tmp_path / "out", use_wandb=True)
    assert "\n" not in str(e.value) and not (tmp_path / "out" / "fits.json").exists()  # before any work
    assert wandb_place(table, "mine")[0] == "mine"  # named explicitly: that one


def test_a_ladder_reported_twice_shows_one_analysis_run_with_its_frontier(tmp_path, synth):
    table = ladder(tmp_path, synth)
    found = analyse(table, bootstrap=20)
    out = report_folder(tmp_path)
    first = log_analysis_run(table, found, {}, out, source_runs=len(table) + 2)
    second = log_analysis_run(table, found, {}, out, source_runs=len(table) + 2)
    spec = DashboardSpec.read(out)
    [left] = find_runs(out)  # the first report's offline run was replaced, not piled up
    run = read_run(left)
    assert run.run_id == spec.analysis_id and run.project == spec.project == "ladderA"
    assert first["wandb_dir"] != second["wandb_dir"]  # two runs, the newer one named
    assert first["dashboards"] == second["dashboards"] == out / "wandb_dashboards.json"
    # the filters take the ladder's training runs and this analysis run alone
    analysis = [p for p in panels_runsets(spec) if "ID" in p]
    assert analysis and all(spec.analysis_id in p for p in analysis)
    assert spec.runs == len(table) + 3 and spec.log_keys == ("optim.lr",)  # every run, and the analysis run
    assert (spec.runs_key, spec.runs_value) == ("ladder", "lad")  # records without a ladder id: by name

    rows = run.history
    law = [r for r in rows if FRONTIER[0] in r]
    assert len(law) == GRID  # noiseless losses: a band of no width, up to rounding
    assert all(r[FRONTIER[1]] <= r[FRONTIER[0]] * (1 + 1e-9) and r[FRONTIER[0]] <= r[FRONTIER[2]] * (1 + 1e-9)
               for r in law)
    assert [r[FRONTIER_X] for r in law] == sorted(r[FRONTIER_X] for r in law)
    best = [(r[FRONTIER_X], r[BEST]) for r in rows if BEST in r]  # each scale's best run, in order of C
    cells = table.loc[table.groupby(["N", "D"])["loss"].idxmin()].sort_values("C")
    assert len(best) == 9 and best == [pytest.approx(p) for p in zip(cells["C"], cells["loss"])]
    assert FRONTIER_TABLE in run.summary and FITS_TABLE in run.summary


def test_a_ladder_with_an_id_is_found_by_it_and_titled_with_both(tmp_path, synth):
    table = ladder(tmp_path, synth, ladder_id="lad-0a1b2c3d")
    log_analysis_run(table, analyse(table, bootstrap=0), {}, report_folder(tmp_path))
    spec = DashboardSpec.read(tmp_path / "out")
    assert (spec.runs_key, spec.runs_value, spec.name) == ("ladder_id", "lad-0a1b2c3d", "scalelab: lad (lad-0a1b2c3d)")
    [run] = [read_run(p) for p in find_runs(tmp_path / "out")]
    assert run.config["ladder_id"] == "lad-0a1b2c3d"  # the filter's key, in the analysis run too


def panels_runsets(spec):
    """Every run-set filter of the built workspace and report, as W&B's filter language."""
    report = build_report(spec)
    return [build_workspace(spec).runset_settings.filters,
            *(rs.filters for b in report.blocks if hasattr(b, "runsets") for rs in b.runsets)]


def test_the_frontier_carries_a_study_target_predicted_and_measured(synth, chinchilla_table):
    table = chinchilla_table.assign(run_id=[f"r{i}" for i in range(len(chinchilla_table))])
    found = analyse(table)
    verdict = {"target": {"C": 1e21, "N": 1e9, "D": 2e10, "loss": 2.1, "loss_interval": [2.0, 2.2]},
               "verdict": {"predicted_loss": 2.1, "interval": [2.0, 2.2], "measured_loss": 2.15}}
    frame = frontier_frame(table, found.laws, verdict)
    target = frame[frame["series"].str.startswith("target")].set_index("series")
    assert target.loc["target predicted", ["C", "loss", "low", "high"]].tolist() == [1e21, 2.1, 2.0, 2.2]
    assert target.loc["target measured", "loss"] == 2.15
    law = frame[frame["series"] == "law (chinchilla)"]
    assert law["C"].max() >= 1e21  # the law reaches the target
    assert frontier_frame(table, found.laws, None)["series"].str.startswith("target").sum() == 0
