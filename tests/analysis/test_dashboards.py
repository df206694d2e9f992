"""The W&B workspace and report: built offline, reading only the names the runs log."""
from __future__ import annotations

import json

import pytest
import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from scalelab.analysis import dashboards as dash
from scalelab.analysis.dashboards import DashboardSpec
from scalelab.analysis.errors import AnalysisError
from scalelab import wandb_keys as keys_logged

SEARCHED = ("optim.lr", "optim.beta2", "train.batch_size")
# A study's name holds `=` and `,` (`<study>/<axis=value,...>`); `<` and quotes test the escaping.
VALUE = "ladder/model.width=8,train.tokens=2e5 <\"q'>"


RUNS = 84  # more than W&B's default of 10 per panel, as a default study has


def spec(runs_key="ladder", value="tiny", entity=None, searched=SEARCHED, analysis_id="an4lysis"):
    return DashboardSpec("scalelab", entity, "tiny ladder", runs_key, value, searched, ("optim.lr",),
                         runs=RUNS, analysis_id=analysis_id)


def panels(obj):
    if isinstance(obj, ws.Workspace):
        return [p for s in obj.sections for p in s.panels]
    return [p for b in obj.blocks if isinstance(b, wr.PanelGrid) for p in b.panels]


def only(items, what):
    assert len(items) == 1, f"{len(items)} {what}"
    return items[0]


BUILDERS = [dash.build_workspace, dash.build_report]


@pytest.mark.parametrize("runs_key", dash.RUNS_KEYS)
@pytest.mark.parametrize("build", BUILDERS)
def test_dashboards_read_only_the_names_the_runs_log(build, runs_key):
    keys = dash.referenced_keys(build(spec(runs_key)))
    frontier = {keys_logged.FRONTIER_X, *keys_logged.FRONTIER, keys_logged.BEST, *keys_logged.TARGET}
    assert keys["history"] == {"tokens", "flops", "val_loss"} | frontier
    assert keys["history"] - frontier <= set(keys_logged.HISTORY)
    assert keys["summary"] == {"final_val_loss"} and keys["summary"] <= set(keys_logged.SUMMARY)
    assert set(SEARCHED) | {runs_key, "N", "D", "C", keys_logged.LR} <= keys["config"]
    assert keys["config"] <= set(keys_logged.CONFIG) | set(SEARCHED) | {keys_logged.LR}
    assert keys["table"] == {keys_logged.FITS_TABLE, keys_logged.FRONTIER_TABLE}
    assert keys["run"] == {"JobType", "ID"}  # the analysis run by its id


def test_referenced_keys_sees_a_name_outside_the_contract():
    workspace = dash.build_workspace(spec())
    workspace.sections[0].panels.append(wr.LinePlot(x="Step", y=["loss"]))
    workspace.sections[0].panels.append(wr.ScatterPlot(x=wr.Config("lr"), y="val/loss"))
    keys = dash.referenced_keys(workspace)
    assert "loss" in keys["history"] and "Step" in keys["run"]
    assert "lr" in keys["config"] and "val/loss" in keys["summary"]


@pytest.mark.parametrize("build", BUILDERS)
def test_the_panels_and_their_axes(build):
    ps = panels(build(spec()))
    lines = [p for p in ps if isinstance(p, wr.LinePlot)]
    curve = only([p for p in lines if p.x == "tokens"], "val_loss vs tokens plots")
    # tokens linear, so that the curve's point at tokens = 0 is drawn; loss on a log axis
    assert curve.y == ["val_loss"] and not curve.log_x and curve.log_y
    assert curve.groupby == wr.Config("scale")  # a ladder: one curve per scale
    flops = only([p for p in lines if p.x == "flops"], "val_loss vs flops plots")
    assert flops.log_x and flops.log_y  # loss against compute: log-log

    law = only([p for p in lines if p.x == keys_logged.FRONTIER_X], "frontier plots")
    assert law.y == [*keys_logged.FRONTIER, keys_logged.BEST, *keys_logged.TARGET] and law.log_x and law.log_y
    assert law.line_marks["an4lysis:" + keys_logged.BEST] == "points"  # each scale's best run, a point

    scatters = [p for p in ps if isinstance(p, wr.ScatterPlot)]
    trials = only([p for p in scatters if p.x == wr.Config("C")], "loss vs C plots")
    assert trials.y == wr.SummaryMetric("final_val_loss") and trials.log_x and trials.log_y
    lr = only([p for p in scatters if p.x == wr.Config(keys_logged.LR)], "loss vs lr plots")
    assert lr.y == wr.SummaryMetric("final_val_loss") and lr.log_x
    assert all(p.z is None for p in scatters)  # a z field may draw a 3D plot

    parallel = only([p for p in ps if isinstance(p, wr.ParallelCoordinatesPlot)], "parallel plots")
    assert [c.metric for c in parallel.columns] == (
        [wr.Config(k) for k in (*SEARCHED, "N", "D")] + [wr.SummaryMetric("final_val_loss")])
    # log axes for the log-searched lr, N, D and the loss; linear for beta2 and the batch size
    assert [bool(c.log) for c in parallel.columns] == [True, False, False, True, True, True]

    tables = [p.table_name for p in ps if isinstance(p, wr.WeavePanelSummaryTable)]
    assert tables == [keys_logged.FITS_TABLE, keys_logged.FRONTIER_TABLE]


@pytest.mark.parametrize("build", BUILDERS)
def test_every_panel_draws_every_run_the_filter_matches(build):
    """W&B draws 10 runs (or groups) per line plot unless told more: the limits are the spec's
    run count, read back from the objects W&B saves."""
    built = build(spec())
    assert all(p.max_runs_to_show == RUNS for p in panels(built) if isinstance(p, wr.LinePlot))
    saved = json.dumps(built._to_model().model_dump(by_alias=True, exclude_none=True))
    assert saved.count(f'"limit": {RUNS}') == 3  # the two curve plots and the frontier
    if isinstance(built, ws.Workspace):
        assert built.settings.max_runs == RUNS and f'"maxRuns": {RUNS}' in saved
        assert ws.Workspace._from_model(built._to_model()).settings.max_runs == RUNS
    assert '"limit": 10' not in saved and '"maxRuns": 10' not in saved


def test_the_report_explains_best_against_final():
    text = " ".join(str(b.text) for b in dash.build_report(spec()).blocks if isinstance(b, wr.P))
    assert "eval_tokens" in text and "final_val_loss" in text and "best_val_loss" in text


@pytest.mark.parametrize("build", BUILDERS)
def test_one_study_draws_each_trial(build):
    curve = [p for p in panels(build(spec("study"))) if isinstance(p, wr.LinePlot)][0]
    assert curve.groupby is None


def test_flat_config_keys_are_addressed_as_w_b_stores_them():
    """The runs log `optim.lr` as one flat key: W&B's path to it is `optim.lr.value`."""
    saved = json.dumps(dash.build_workspace(spec())._to_model().model_dump(by_alias=True))
    for key in SEARCHED:
        assert f"config:{key}.value" in saved
        head, tail = key.split(".", 1)
        assert f"{head}.value.{tail}" not in saved
    assert "config:C.value" in saved and "config:N.value" in saved


def filters(text):
    return {f["key"]["name"]: f for f in expr.filters_tree_to_v2(expr.expr_to_filters(text))["filters"]}


def test_workspace_filter_keeps_the_value_exact_and_takes_only_the_named_analysis_run():
    view = dash.build_workspace(spec("study", VALUE))._to_model()
    top = view.spec.section.run_sets[0].filters["filters"]
    found = {f["key"]["name"]: f for f in top if "key" in f}
    assert found["study"]["value"] == VALUE and found["study"]["key"]["section"] == "config"
    [group] = [f for f in top if "filters" in f]  # training runs, or the analysis run by its id
    assert [(f["key"]["name"], f["value"], f.get("connector")) for f in group["filters"]] == [
        ("jobType", keys_logged.TRAIN_JOB, None), ("name", "an4lysis", "OR")]
    unnamed = dash.build_workspace(spec(analysis_id=None))._to_model()  # a spec of no analysis run
    assert "an4lysis" not in json.dumps(unnamed.model_dump(by_alias=True))


@pytest.mark.parametrize("build", BUILDERS)
def test_two_ladders_of_one_name_get_distinct_filters_and_titles(build):
    one, two = (DashboardSpec("scalelab", None, f"scalelab: ladder ({i})", "ladder_id", i, SEARCHED, runs=RUNS,
                              analysis_id="an4lysis") for i in ("ladder-0a1b2c3d", "ladder-9f8e7d6c"))
    assert one.label == "ladder (ladder-0a1b2c3d)"  # the study name and the id
    runsets = [[f for b in obj.blocks if isinstance(b, wr.PanelGrid) for f in (rs.filters for rs in b.runsets)]
               if isinstance(obj, wr.Report) else [obj.runset_settings.filters] for obj in (build(one), build(two))]
    for spec_, filters_ in zip((one, two), runsets):
        tops = [{t["key"]["name"]: t["value"] for t in expr.filters_tree_to_v2(expr.expr_to_filters(f))["filters"]
                 if "key" in t} for f in filters_]
        assert tops and all(top.get("ladder_id") == spec_.runs_value and "ladder" not in top for top in tops)
    assert not set(runsets[0]) & set(runsets[1])
    titles = [[p.title for p in panels(build(s)) if getattr(p, "title", None)] for s in (one, two)]
    assert titles[0] and all(t.endswith(": ladder (ladder-0a1b2c3d)") for t in titles[0])
    assert all(t.endswith(": ladder (ladder-9f8e7d6c)") for t in titles[1])


def test_report_filters_training_runs_and_the_analysis_run_apart():
    report = dash.build_report(spec("ladder", VALUE))
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids) >= 2
    for grid in grids:
        found = filters(only(grid.runsets, "run sets").filters)
        assert found["ladder"]["value"] == VALUE
        has_table = any(isinstance(p, wr.WeavePanelSummaryTable) for p in grid.panels)
        if has_table:  # the analysis run the spec names, and no older one
            assert found["name"]["value"] == "an4lysis" and "jobType" not in found
        else:
            assert found["jobType"]["value"] == keys_logged.TRAIN_JOB


def test_entity_is_optional_offline_and_used_when_given():
    assert dash.build_workspace(spec()).entity == dash.UNRESOLVED_ENTITY
    assert dash.build_report(spec()).entity == dash.UNRESOLVED_ENTITY
    report = dash.build_report(spec(entity="team"))
    assert report.entity == "team" and dash.build_workspace(spec(entity="team")).entity == "team"
    assert {rs.entity for b in report.blocks if isinstance(b, wr.PanelGrid) for rs in b.runsets} \
        == {"team"}
    assert {rs.project for b in report.blocks if isinstance(b, wr.PanelGrid) for rs in b.runsets} \
        == {"scalelab"}


# ------------------------------------------------------------------------------------- the spec
def test_spec_round_trips_through_its_file(tmp_path):
    s = spec("study", VALUE, entity="team")
    path = s.write(tmp_path / "report")
    assert path == tmp_path / "report" / dash.SPEC_FILE
    assert DashboardSpec.read(path) == s == DashboardSpec.read(path.parent)
    assert DashboardSpec.read(spec().write(tmp_path)).entity is None
    assert json.loads(path.read_text())["searched"] == list(SEARCHED)


GOOD = spec().to_dict()


@pytest.mark.parametrize("text, problem", [
    ("{", "Expecting"),
    ("[]", "expected a JSON object"),
    (json.dumps({"laws": {"chinchilla": {}}}), "not a W&B dashboard spec"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "runs_value"}), "missing runs_value"),
    (json.dumps({**GOOD, "colour": "red"}), "unknown colour"),
    (json.dumps({**GOOD, "runs_key": "group"}), "runs_key must be one of"),
    (json.dumps({**GOOD, "searched": "optim.lr"}), "searched must be a list"),
    (json.dumps({**GOOD, "runs": 0}), "runs must be a positive integer"),
    (json.dumps({**GOOD, "analysis_id": ""}), "analysis_id must be"),
    (json.dumps({**GOOD, "project": 3}), "project must be a non-empty string"),
    (b"\xff\xfe", "decode"),
])
def test_a_bad_or_foreign_spec_file_is_one_line_naming_it(tmp_path, text, problem):
    path = tmp_path / dash.SPEC_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(AnalysisError, match=problem) as e:
        DashboardSpec.read(tmp_path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_missing_spec_file_names_it(tmp_path):
    with pytest.raises(AnalysisError, match="No such file") as e:
        DashboardSpec.read(tmp_path)
    assert str(tmp_path / dash.SPEC_FILE) in str(e.value)


def test_a_bad_spec_is_refused_when_made():
    with pytest.raises(AnalysisError, match="runs_key"):
        spec("scale")
    with pytest.raises(AnalysisError, match="name"):
        DashboardSpec("p", None, "x" * 200, "ladder", "v", ())
    with pytest.raises(AnalysisError, match="log_keys"):
        DashboardSpec("p", None, "x", "ladder", "v", (), "optim.lr")


# ----------------------------------------------------------------------------------- publishing
def test_publish_refuses_offline_before_reaching_w_b(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(AnalysisError, match="WANDB_MODE=offline"):
        dash.publish(spec())


def test_publish_saves_both_under_the_default_entity(monkeypatch):
    """W&B itself stood in for: the account's default entity goes into both objects."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb, "Api", lambda: type("Api", (), {"default_entity": "me"})())
    saved = []
    for cls in (ws.Workspace, wr.Report):
        monkeypatch.setattr(cls, "save", lambda self: saved.append(self) or self)
        monkeypatch.setattr(cls, "url", property(lambda self: f"{type(self).__name__}:{self.entity}"))
    assert dash.publish(spec()) == {"workspace": "Workspace:me", "report": "Report:me"}
    assert [type(o) for o in saved] == [ws.Workspace, wr.Report]
    assert {rs.entity for b in saved[1].blocks if isinstance(b, wr.PanelGrid) for rs in b.runsets} \
        == {"me"}
