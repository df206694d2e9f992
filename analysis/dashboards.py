"""A W&B workspace and a W&B report for one study or one ladder, built with W&B's own library.

The panels read the names `scalelab.wandb_keys` says the runs log; the tests compare the two.
A small `DashboardSpec`, written as JSON beside an offline report, is all `publish` needs later.

Every panel draws every run its filter matches: W&B draws 10 runs (or groups) by default, so the
line plots' limit and the workspace's `max_runs` are the spec's `runs`, counted when the report ran.
The filter takes the ladder's (or study's) training runs and the one analysis run the spec names
by id, the newest: older analysis runs of the same ladder stay out of the panels. A ladder is
found by its `ladder_id` (one per sweep: two sweeps of one name stay apart), or where its runs
predate ids by its name; titles then say "name (id)".

Building is offline; only `publish` talks to W&B. Without an entity the objects are built with
an empty one, which `publish` resolves to the account's default entity before saving.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterator

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from scalelab.messages import first_line
from scalelab.wandb_keys import ANALYSIS_JOB, BEST, FITS_TABLE, FRONTIER, FRONTIER_TABLE, FRONTIER_X, LR, \
    TARGET, TRAIN_JOB

from .errors import AnalysisError

# ------------------------------------------------------------------------------------ the spec
SPEC_FILE = "wandb_dashboards.json"
KIND = "scalelab.wandb_dashboards"  # tells a spec file from any other JSON file
RUNS_KEYS = ("ladder_id", "ladder", "study")
FIELDS = ("project", "entity", "name", "runs_key", "runs_value", "searched", "log_keys", "runs", "analysis_id")
UNRESOLVED_ENTITY = ""  # built offline without an entity; `publish` puts the real one in
TITLE_MAX = 128  # W&B's limit on a report title
DEFAULT_RUNS = 10  # what W&B draws when no limit is set


@dataclasses.dataclass(frozen=True)
class DashboardSpec:
    """Which runs (config `runs_key` == `runs_value`) go where (`entity`/`project`), named `name`;
    `searched` are the config paths the study searched (the parallel coordinates' axes), `log_keys`
    those drawn on log axes; `runs`: how many runs the filter matches (every panel's run limit);
    `analysis_id`: the W&B id of the analysis run whose fits and frontier the panels show."""

    project: str
    entity: str | None
    name: str
    runs_key: str
    runs_value: str
    searched: tuple[str, ...] = ()
    log_keys: tuple[str, ...] = ()
    runs: int = DEFAULT_RUNS
    analysis_id: str | None = None

    @property
    def label(self) -> str:
        """The runs as titles name them: "name (id)" for a ladder id, which is `<name>-<8 hex>`."""
        if self.runs_key == "ladder_id":
            return f"{self.runs_value.rsplit('-', 1)[0]} ({self.runs_value})"
        return self.runs_value

    def __post_init__(self):
        problem = _problem(self)
        if problem:
            raise AnalysisError(f"bad W&B dashboard spec: {problem}")
        object.__setattr__(self, "searched", tuple(self.searched))
        object.__setattr__(self, "log_keys", tuple(self.log_keys))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, **{f: getattr(self, f) for f in FIELDS}, "searched": list(self.searched),
                "log_keys": list(self.log_keys)}

    @classmethod
    def from_dict(cls, data: Any) -> DashboardSpec:
        if not isinstance(data, dict):
            raise AnalysisError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != KIND:
            raise AnalysisError(f"not a W&B dashboard spec (kind {data.get('kind')!r}, "
                                f"expected {KIND!r})")
        fields = {k: v for k, v in data.items() if k != "kind"}
        problems = []
        if missing := sorted(set(FIELDS) - fields.keys()):
            problems.append(f"missing {', '.join(missing)}")
        if unknown := sorted(fields.keys() - set(FIELDS)):
            problems.append(f"unknown {', '.join(unknown)}")
        if problems:
            raise AnalysisError("; ".join(problems))
        return cls(**fields)

    def write(self, folder: str | Path) -> Path:
        """`folder`/SPEC_FILE, beside the offline report it belongs to."""
        path = Path(folder) / SPEC_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path) -> DashboardSpec:
        """A spec file, or the folder holding SPEC_FILE; any problem is one line naming the file."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except OSError as e:
            problem = e.strerror or first_line(e)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, AnalysisError
            problem = first_line(e)
        raise AnalysisError(f"cannot read W&B dashboard spec {path}: {problem}")


def _problem(spec: DashboardSpec) -> str | None:
    for f in ("project", "name", "runs_value"):
        if not isinstance(getattr(spec, f), str) or not getattr(spec, f):
            return f"{f} must be a non-empty string, got {getattr(spec, f)!r}"
    if spec.entity is not None and (not isinstance(spec.entity, str) or not spec.entity):
        return f"entity must be a non-empty string or null, got {spec.entity!r}"
    if spec.runs_key not in RUNS_KEYS:
        return f"runs_key must be one of {', '.join(RUNS_KEYS)}, got {spec.runs_key!r}"
    if len(spec.name) > TITLE_MAX:
        return f"name is {len(spec.name)} characters; W&B allows {TITLE_MAX}"
    for f in ("searched", "log_keys"):
        keys = getattr(spec, f)
        if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) and k for k in keys):
            return f"{f} must be a list of config paths, got {keys!r}"
    if not isinstance(spec.runs, int) or isinstance(spec.runs, bool) or spec.runs < 1:
        return f"runs must be a positive integer, got {spec.runs!r}"
    if spec.analysis_id is not None and (not isinstance(spec.analysis_id, str) or not spec.analysis_id):
        return f"analysis_id must be a non-empty string or null, got {spec.analysis_id!r}"
    return None


# ------------------------------------------------------------------------------------- building
# wandb_workspaces addresses config key `a.b` as a nested dict (`a.value.b`); the runs log flat
# dotted keys, which W&B stores as `a.b.value`. These two write the flat form.
class _Scatter(wr.ScatterPlot):
    def _to_model(self):
        model = super()._to_model()
        for axis in "xyz":
            metric = getattr(self, axis)
            if isinstance(metric, wr.Config):
                setattr(model.config, f"{axis}_axis", f"config:{metric.name}.value")
        return model


class _Column(wr.ParallelCoordinatesPlotColumn):
    def _to_model(self):
        model = super()._to_model()
        if isinstance(self.metric, wr.Config):
            model.accessor = f"config:{self.metric.name}.value"
        return model


def _literal(value: str) -> str:
    """`value` as a string literal of W&B's filter language. Its parser rewrites every `=`, `<`
    and `>` in the expression, quoted or not (`a=b` would become `a==b`), so those are escaped."""
    return repr(value).replace("=", r"\x3d").replace("<", r"\x3c").replace(">", r"\x3e")


def _filter(spec: DashboardSpec, *jobs: str) -> str:
    """The spec's runs of these job types, in W&B's filter language. Of the analysis job, only the
    run the spec names by id (where it names one): a re-run's analysis run replaces the old one.
    One level of `or`, no `and` inside it: W&B's filter format keeps no deeper grouping."""
    def one(job: str) -> str:
        if job == ANALYSIS_JOB and spec.analysis_id:
            return f"Metric('ID') = {_literal(spec.analysis_id)}"
        return f"Metric('JobType') = {_literal(job)}"

    either = " or ".join(map(one, jobs))
    return f"Config({spec.runs_key!r}) = {_literal(spec.runs_value)} and " + (f"({either})" if len(jobs) > 1 else either)


def frontier_plot(spec: DashboardSpec) -> wr.LinePlot:
    """The analysis run's frontier: the fitted L(C) and its band, each scale's best run and the
    target, on log-log axes (history rows on x = training FLOPs, `analysis.frontier`)."""
    marks = {BEST: "points", TARGET[0]: "points", TARGET[1]: "points", FRONTIER[1]: "dotted",
             FRONTIER[2]: "dotted"}
    return wr.LinePlot(
        title=f"fitted frontier L(C), 95% band, best run of each scale: {spec.label}"[:TITLE_MAX],
        x=FRONTIER_X, y=[*FRONTIER, BEST, *TARGET], log_x=True, log_y=True, title_x="training FLOPs C",
        title_y="val_loss", max_runs_to_show=spec.runs,
        line_marks={f"{spec.analysis_id}:{k}": m for k, m in marks.items()} if spec.analysis_id else None)


def _title(text: str, spec: DashboardSpec) -> str:
    """A panel's title, naming its runs: two ladders of one name differ by their ids."""
    return f"{text}: {spec.label}"[:TITLE_MAX]


BEST_VS_FINAL = ("A curve point is measured on part of the held-out set (its `eval_tokens`); "
                 "`final_val_loss` on all of it, so the curve's last point and the summary differ a little. "
                 "`best_val_loss` is the lowest curve point.")


def _panels(spec: DashboardSpec) -> dict[str, list]:
    """The panels by section: built afresh for each workspace or report."""
    # A ladder's curves: per scale, the best trial's loss at each point and the trials' range.
    # One study is one scale: each trial is its own curve.
    by_scale = (dict(groupby=wr.Config("scale"), groupby_aggfunc="min", groupby_rangefunc="minmax")
                if spec.runs_key != "study" else {})
    columns = [_Column(metric=wr.Config(k), log=True if k in ("N", "D", *spec.log_keys) else None)
               for k in dict.fromkeys((*spec.searched, "N", "D"))]
    columns.append(_Column(metric=wr.SummaryMetric("final_val_loss"), log=True))
    return {
        "Loss curves": [
            # tokens on a linear axis: the curve's first point, at tokens = 0, is drawn
            wr.LinePlot(title=_title("val_loss vs tokens (each point on its eval_tokens)", spec), x="tokens",
                        y=["val_loss"], log_y=True, max_runs_to_show=spec.runs, **by_scale),
            # log-log: loss against compute; the point at 0 FLOPs is on the plot above
            wr.LinePlot(title=_title("val_loss vs training FLOPs", spec), x="flops", y=["val_loss"],
                        log_x=True, log_y=True, max_runs_to_show=spec.runs, **by_scale),
        ],
        "Scaling": [
            frontier_plot(spec),
            _Scatter(title=_title("final val_loss vs C, every trial", spec), x=wr.Config("C"),
                     y=wr.SummaryMetric("final_val_loss"), log_x=True, log_y=True),
            _Scatter(title=_title(f"final val_loss vs {LR}", spec), x=wr.Config(LR),
                     y=wr.SummaryMetric("final_val_loss"), log_x=True, log_y=True),
        ],
        "Search": [wr.ParallelCoordinatesPlot(title=_title("searched hyperparameters", spec), columns=columns)],
        "Fitted laws": [wr.WeavePanelSummaryTable(table_name=FITS_TABLE, layout=wr.Layout(w=24, h=10)),
                        wr.WeavePanelSummaryTable(table_name=FRONTIER_TABLE, layout=wr.Layout(w=24, h=10))],
    }


def build_workspace(spec: DashboardSpec) -> ws.Workspace:
    """The workspace: one section per theme over the spec's training runs and analysis run."""
    return ws.Workspace(
        entity=spec.entity or UNRESOLVED_ENTITY, project=spec.project, name=spec.name,
        sections=[ws.Section(name=name, panels=panels, is_open=True)
                  for name, panels in _panels(spec).items()],
        settings=ws.WorkspaceSettings(max_runs=spec.runs),
        # One run set in a workspace: the fits table and the frontier need the analysis run in it too.
        runset_settings=ws.RunsetSettings(filters=_filter(spec, TRAIN_JOB, ANALYSIS_JOB)))


def build_report(spec: DashboardSpec) -> wr.Report:
    """The report: the training runs' panels, then the analysis run's frontier and fitted laws."""
    entity = spec.entity or UNRESOLVED_ENTITY
    panels = _panels(spec)
    fits = [panels["Scaling"].pop(0), *panels.pop("Fitted laws")]  # the frontier is the analysis run's

    def runs(name: str, job: str) -> wr.Runset:
        return wr.Runset(entity=entity, project=spec.project, name=name, filters=_filter(spec, job))

    return wr.Report(
        entity=entity, project=spec.project, title=spec.name,
        description=f"W&B runs with config {spec.runs_key} = {spec.runs_value}",
        blocks=[
            *(block for name, section in panels.items() for block in (
                wr.H2(name), *([wr.P(BEST_VS_FINAL)] if name == "Loss curves" else []),
                wr.PanelGrid(runsets=[runs("training runs", TRAIN_JOB)], panels=section))),
            wr.H2("Fitted laws"),
            wr.PanelGrid(runsets=[runs("analysis", ANALYSIS_JOB)], panels=fits),
        ])


# ------------------------------------------------------------------------------ what they read
def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name))
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _walk(x)


def referenced_keys(obj: ws.Workspace | wr.Report) -> dict[str, set[str]]:
    """The keys a built workspace or report reads, by where they live: `history`, `config`,
    `summary`, `run` (W&B's own run attributes, like JobType) and `table` (a logged table)."""
    keys: dict[str, set[str]] = {s: set() for s in ("history", "config", "summary", "run", "table")}

    def add(metric: Any, plain: str) -> None:
        """A panel's metric; a plain string means `plain`, or a run attribute if W&B has one."""
        if metric is None:
            return
        if isinstance(metric, str):
            section = "run" if metric in expr.FE_METRIC_NAME_MAP else plain
            keys[section].add(metric)
        else:
            section = {wr.Config: "config", wr.SummaryMetric: "summary", wr.Metric: "run"}
            keys[section[type(metric)]].add(metric.name)

    def add_filters(node: Any) -> None:
        if node.key is not None:
            keys[{"config": "config", "summary": "summary"}.get(node.key.section, "run")].add(
                expr.to_frontend_name(node.key.name) if node.key.section == "run" else node.key.name)
        for child in node.filters or []:
            add_filters(child)

    for node in _walk(obj):
        if isinstance(node, wr.LinePlot):
            for metric in (node.x, *node.y):
                add(metric, "history")
            add(node.groupby, "config")
        elif isinstance(node, wr.ScatterPlot):
            for metric in (node.x, node.y, node.z):
                add(metric, "summary")
        elif isinstance(node, wr.ParallelCoordinatesPlotColumn):
            add(node.metric, "summary")
        elif isinstance(node, wr.WeavePanelSummaryTable):
            keys["table"].add(node.table_name)
        elif isinstance(node, (wr.Runset, ws.RunsetSettings)) and node.filters:
            add_filters(expr.expr_to_filters(node.filters))
    return keys


# ----------------------------------------------------------------------------------- publishing
def publish(spec: DashboardSpec) -> dict[str, str]:
    """Save the workspace and the report to W&B (online); their URLs by "workspace", "report"."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        raise AnalysisError(f"WANDB_MODE={mode}: publishing the W&B dashboards needs W&B online; "
                            "unset WANDB_MODE or set it to online")
    # Imported here: only publishing needs wandb, which adds over half a second to start-up.
    import wandb

    where = f"{spec.entity or '(default entity)'}/{spec.project}"
    try:
        entity = spec.entity or wandb.Api().default_entity
        if not entity:
            raise AnalysisError("W&B names no default entity for this account; give one")
        resolved = dataclasses.replace(spec, entity=entity)
        where = f"{entity}/{spec.project}"
        workspace = build_workspace(resolved).save()
        report = build_report(resolved).save()
        return {"workspace": workspace.url, "report": report.url}
    except Exception as e:  # noqa: BLE001 - W&B's API and its HTTP client raise many types
        raise AnalysisError(f"cannot publish the W&B dashboards to {where}: {first_line(e)}") \
            from None
