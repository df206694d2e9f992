"""Every source -> one validated pandas DataFrame with the canonical columns.

Canonical columns: N, D, C, loss, lr, batch_size, batch_tokens, initial_loss, status, run_id,
study, trial, plus one column per other hyperparameter (dotted config path, e.g. `optim.beta2`).
Sources: a folder of run.json records (searched recursively), a CSV or Parquet file, an Optuna
storage URL, or `wandb:ENTITY/PROJECT`. Each source is first flattened into a raw frame with
dotted column names; the record's field paths (`scalelab.record.FIELDS`, for records, W&B and
Optuna rows) or the table's own names, plus the user's `--map FIELD=COLUMN`, pick the canonical
fields out of it.

The table carries its FLOP convention in `table.attrs["flops"]` (a `FlopConvention`): how its
C relates to N and D. Run records count the attention term in C, so a law fitted in terms of C
must turn a query's N, D into C the same way, not by plain 6ND.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote

import numpy as np
import optuna
import pandas as pd

from scalelab import record, wandb_keys
from scalelab.messages import first_line, redact_url
from scalelab.record import FlopConvention, RecordError

from .errors import AnalysisError

NUMERIC = ("N", "D", "C", "loss", "lr", "batch_size", "initial_loss")
SCALE_FIELDS = ("N", "D", "C")
# How published tables write sizes and token counts: "20M", "1.5B", "300G", "2T".
SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
SUFFIXED = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kKMBGT])\s*")
TEXT = "text of "  # + field: a cell's text that is no number, kept to name it among the bad rows
# A completed run's loss this far from the median, in log loss, is named (kept): 5 robust
# standard deviations (1.4826 x the median absolute deviation) and more than a factor 2.
OUTLIER_SDS, OUTLIER_FACTOR = 5.0, 2.0


def parse_map(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`["N=Model Size", "loss=loss"]` -> {"N": "Model Size", "loss": "loss"}."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out = {}
    for item in items:
        if "=" not in item:
            raise AnalysisError(f"--map expects FIELD=COLUMN, got {item!r}")
        field, column = item.split("=", 1)
        out[field.strip()] = column.strip().strip('"').strip("'")
    return out


# --------------------------------------------------------------------------- sources -> raw frame
def record_row(path: Path) -> dict[str, Any]:
    """One run record as a flat row (dotted paths; the loss curve left out), naming its file."""
    row = record.flatten(record.read(path), lists=False)
    row["record"] = str(path)
    return row


def records_frame(folder: Path) -> pd.DataFrame:
    """Every readable record below `folder`; an unreadable one is named on stderr and skipped."""
    paths = record.find(folder)
    if not paths:
        raise AnalysisError(f"no {record.FILE_NAME} found under {folder}")
    rows = []
    for p in paths:
        try:
            rows.append(record_row(p))
        except RecordError as e:
            warn(f"skipped: {e}")
    if not rows:
        raise AnalysisError(f"none of the {len(paths)} {record.FILE_NAME} under {folder} "
                            "could be read")
    return pd.DataFrame(rows)


def optuna_frame(url: str) -> pd.DataFrame:
    """Rows from every study in an Optuna storage; a trial's run.json is preferred when present."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    database = sqlite_file(url)
    if database is not None and not database.exists():
        # Opening it would create an empty database file: refuse before anything opens it.
        raise AnalysisError(f"cannot open Optuna storage {redact_url(url)}: the SQLite database "
                            f"{database} does not exist; name an existing database file")
    try:
        names = optuna.study.get_all_study_names(storage=url)
    except Exception as e:  # noqa: BLE001 - storage libraries raise many types
        raise AnalysisError(f"cannot open Optuna storage {redact_url(url)}: {first_line(e)}") \
            from None
    rows = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=url)
        for t in study.get_trials(deepcopy=False):
            ua = dict(t.user_attrs)
            path = ua.get("record")
            if path and Path(path).is_file():
                try:
                    row = record_row(Path(path))
                except RecordError as e:
                    warn(f"trial {t.number} of study {name}: {e}; using the trial's attributes")
                else:
                    row.setdefault("study", name)
                    row.setdefault("trial", t.number)
                    rows.append(row)
                    continue
            row = {"study": name, "trial": t.number, "run_id": f"{name}/{t.number}"}
            row.update({f"hparams.{k}": v for k, v in t.params.items()})
            for k, v in ua.items():
                if k in ("N", "D", "C", "N_total"):
                    row[f"scale.{k}"] = v
                elif k == "initial_loss":
                    row[f"metrics.{k}"] = v
                elif not isinstance(v, (dict, list)):
                    row[k] = v
            row["metrics.final_val_loss"] = t.value if t.value is not None else np.nan
            state = t.state.name.lower()
            row.setdefault("status", {"complete": "completed", "pruned": "pruned",
                                      "fail": "failed"}.get(state, state))
            rows.append(row)
    if not rows:
        raise AnalysisError(f"no trials in Optuna storage {redact_url(url)}")
    return pd.DataFrame(rows)


def sqlite_file(url: str) -> Path | None:
    """The database file a SQLite storage URL names, read as SQLAlchemy reads it.

    `sqlite:///runs/optuna.db` -> runs/optuna.db, `sqlite:////abs/optuna.db` -> /abs/optuna.db;
    None for other storages, an in-memory database, or SQLite's own `file:` URI form.
    Parsed here rather than by SQLAlchemy, whose import would slow every command's start-up.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return None
    database = unquote(rest.partition("?")[0].partition("/")[2])
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def table_file_frame(path: Path) -> pd.DataFrame:
    """A .csv, .tsv or .parquet file as a frame; a file its reader rejects, as an AnalysisError."""
    suffix = path.suffix.lower()
    parquet = suffix in (".parquet", ".pq")
    tsv = suffix == ".tsv"
    try:
        return pd.read_parquet(path) if parquet else pd.read_csv(path, sep="\t" if tsv else ",")
    except Exception as e:  # noqa: BLE001 - pandas, pyarrow and the codecs raise many types
        expected = "a Parquet file" if parquet else \
            f"UTF-8 text with a header row, {'tab' if tsv else 'comma'}-separated"
        raise AnalysisError(f"cannot read {path} ({first_line(e)}); expected {expected}") \
            from None


def wandb_frame(path: str, api_factory: Callable[[], Any] | None = None) -> pd.DataFrame:
    """Rows from a W&B project through `wandb.Api` (online); `api_factory` lets tests stand in."""
    if api_factory is None:
        # Imported here: only this source needs wandb, which adds over half a second to start-up.
        import wandb

        api_factory = wandb.Api
    rows = [wandb_row(run) for run in api_factory().runs(path)]
    if not rows:
        raise AnalysisError(f"no runs in W&B project {path}")
    return pd.DataFrame(rows)


def wandb_row(run: Any) -> dict[str, Any]:
    """One W&B run as a flat row. A training run scalelab logged (`wandb_keys`) becomes the row
    its record would give; any other run keeps its config and summary names, for `--map`."""
    config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
    summary = {k: v for k, v in dict(run.summary).items() if not str(k).startswith("_")}
    state = {"finished": "completed", "crashed": "failed", "failed": "failed"}.get(run.state, run.state)
    if all(k in config for k in wandb_keys.CONFIG if k != wandb_keys.LADDER_ID) and wandb_keys.LR in config:
        paths = {**record.HPARAMS, **{p: p for p in config["searched"] or []}}
        row = {f"config.{k}": v for k, v in config.items() if k not in wandb_keys.CONFIG}
        row.update({f"scale.{k}": config[k] for k in wandb_keys.SCALE})
        row["scale.model"] = config.get("model.name")
        row.update({f"hparams.{name}": config.get(path) for name, path in paths.items()})
        row.update({f"metrics.{k}": summary.get(k) for k in wandb_keys.SUMMARY if k != "status"})
        row.update({k: config[k] for k in ("study", "ladder", "trial")}, ladder_id=config.get(wandb_keys.LADDER_ID))
        row.update(run_id=run.id, name=run.name, status=summary.get("status", state),
                   tags=",".join(run.tags or []))
        return row
    row = record.flatten(config, lists=False)
    row.update({f"config.{k}": v for k, v in row.items()})  # as a record's config
    for k, v in record.flatten(summary, lists=False).items():
        row[k] = row[f"metrics.{k}"] = row[k.replace("/", ".")] = v
    row.setdefault("run_id", getattr(run, "id", None) or run.name)
    row.setdefault("name", run.name)
    row.setdefault("study", run.group)
    row["tags"] = ",".join(run.tags or [])
    row.setdefault("status", state)
    return row


def raw_frame(source, api_factory=None) -> tuple[pd.DataFrame, str]:
    """(raw frame, kind) for any source; kind picks the default column map."""
    if isinstance(source, pd.DataFrame):
        return source.copy(), "table"
    s = str(source)
    if s.startswith("wandb:"):
        return wandb_frame(s[len("wandb:"):], api_factory), "record"
    if "://" in s:
        return optuna_frame(s), "record"
    p = Path(s)
    if not p.exists():
        raise AnalysisError(f"source {s} does not exist")
    if p.is_dir():
        return records_frame(p), "record"
    if p.name == record.FILE_NAME:
        try:
            return pd.DataFrame([record_row(p)]), "record"
        except RecordError as e:
            raise AnalysisError(str(e)) from None
    if p.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        return table_file_frame(p), "table"
    raise AnalysisError(f"cannot read {s}: expected a folder of run records, .csv, .parquet, "
                        "an Optuna storage URL or wandb:ENTITY/PROJECT")


# --------------------------------------------------------------------------- raw -> canonical
def warn(msg: str) -> None:
    print(f"scalelab: warning: {msg}", file=sys.stderr)


def to_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(numbers, the text of the cells that are none) of a column: "20M" is 2e7 and "1.5B" 1.5e9
    (`SUFFIXES`); any other text is NaN, and its text is returned to name it."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    text = values[numbers.isna() & values.notna()].astype(str)
    for i, cell in text.items():
        match = SUFFIXED.fullmatch(cell)
        if match:
            numbers[i] = float(match[1]) * SUFFIXES[match[2]]
    return numbers, text[numbers[text.index].isna()]


def _canonical(raw: pd.DataFrame, kind: str, mapping: dict[str, str],
               context: float | None) -> pd.DataFrame:
    cols = {}
    for field, column in mapping.items():
        if column not in raw.columns:
            shown = ", ".join(map(str, list(raw.columns)[:30]))
            raise AnalysisError(f"column {column!r} named in --map {field}={column} does not "
                                f"exist; columns are: {shown}")
        cols[field] = raw[column]
    if kind == "record":
        for field, column in record.FIELDS.items():
            if field not in cols and column in raw.columns:
                cols[field] = raw[column]
        for column in raw.columns:  # every other searched value, under its dotted path
            if column.startswith("hparams."):
                name = column[len("hparams."):]
                if name not in cols:
                    cols[name] = raw[column]
        if "record" in raw.columns:
            cols["record"] = raw["record"]
    else:
        for column in raw.columns:
            if column not in cols and column not in mapping.values():
                cols[column] = raw[column]
    df = pd.DataFrame(cols, index=raw.index).reset_index(drop=True)
    # Hyperparameters: lr, batch size, the record's searched values, and any extra mapped field.
    hp = [f for f in ("lr", "batch_size") if f in df.columns]
    if kind == "record":
        hp += [c[len("hparams."):] for c in raw.columns
               if c.startswith("hparams.") and c[len("hparams."):] not in hp]
    hp += [f for f in mapping if f not in NUMERIC and f not in hp and f not in record.FIELDS]
    df.attrs["hparams"] = hp
    for f in NUMERIC + ("context",):
        if f in df.columns:
            df[f], text = to_numbers(df[f])
            if len(text):
                df[TEXT + f] = text
    if context is not None:
        df["context"] = float(context)
    if "batch_size" in df.columns and "context" in df.columns and "batch_tokens" not in df.columns:
        df["batch_tokens"] = df["batch_size"] * df["context"]
    if "status" not in df.columns:
        df["status"] = "completed"
    df["status"] = df["status"].fillna("completed").astype(str)
    return df


def load_table(source, mapping=None, *, statuses: Iterable[str] | None = ("completed",),
               require: Iterable[str] = (), context: float | None = None,
               api_factory=None, quiet: bool = False) -> pd.DataFrame:
    """Read any source into the canonical, validated table.

    `statuses` keeps runs of those statuses (None keeps all); `require` names fields that must
    exist. Rows with a non-finite or non-positive N, D, C (or loss, for completed runs) are
    listed on stderr and dropped; derived columns (D from C, C from N and D) are noted in
    `table.attrs["notes"]`, and the FLOP convention is `table.attrs["flops"]`. `quiet` keeps
    the notes and the list of bad rows off stderr; an unreadable record is always named.
    """
    raw, kind = raw_frame(source, api_factory)
    return table_from_raw(raw, kind, source, mapping, statuses=statuses, require=require,
                          context=context, quiet=quiet)


def table_from_raw(raw: pd.DataFrame, kind: str, source, mapping=None, *,
                   statuses: Iterable[str] | None = ("completed",), require: Iterable[str] = (),
                   context: float | None = None, quiet: bool = False) -> pd.DataFrame:
    """`load_table` on a frame already read by `raw_frame`, so one read can serve two tables."""
    # The label reaches stderr, fit files and reports: a storage URL loses its password.
    label = "DataFrame" if isinstance(source, pd.DataFrame) else redact_url(str(source))
    if raw.empty:
        raise AnalysisError(f"the table from {'the input' if label == 'DataFrame' else label} "
                            "is empty")
    df = _canonical(raw, kind, parse_map(mapping), context)
    hp = list(df.attrs.get("hparams", []))
    notes: list[str] = []
    if statuses is not None:
        keep = set(statuses)
        df = df[df["status"].isin(keep)].reset_index(drop=True)
        if df.empty:
            raise AnalysisError(f"no runs with status {sorted(keep)} in the input")
    for col in ("D", "C"):
        if col not in df.columns:
            df[col] = np.nan
    flops = derive_scale(df, "records" if kind == "record" else "table", notes)
    for col in ("D", "C"):
        if df[col].isna().all():
            del df[col]
    missing = [f for f in require if f not in df.columns]
    if missing:
        raise AnalysisError(f"the input has no column for {', '.join(missing)} "
                            f"(columns: {', '.join(map(str, df.columns[:30]))}); name it with "
                            f"--map FIELD=COLUMN")
    if not quiet:
        warn_outlying_losses(df)
    df = drop_bad_rows(df, quiet=quiet)
    if df.empty:
        raise AnalysisError("the table is empty after dropping bad rows")
    df.attrs["notes"] = notes
    df.attrs["hparams"] = hp
    df.attrs["source"] = label
    df.attrs["flops"] = flops
    if not quiet:
        for n in notes:
            warn(n)
    return df


def derive_scale(df: pd.DataFrame, name: str, notes: list[str]) -> FlopConvention:
    """The table's FLOP convention; a missing D or C is filled in by it (in place, noted).

    Where some rows give N, D and C, the convention is the one their C follows (`name` says
    whose: "records" or "table"; exactly 6ND comes back as plain 6ND). Where none does, nothing
    says how C was counted, and plain 6ND is both the convention and the rule for filling in.
    """
    if "N" not in df.columns:
        return FlopConvention()
    both = df["D"].notna() & df["C"].notna()
    flops = (FlopConvention.from_points(df.loc[both, "N"], df.loc[both, "D"], df.loc[both, "C"],
                                        name=name) if both.any() else FlopConvention())
    rules = (("D", "C", flops.D, "as C/(6N)", "from C", "C but no D"),
             ("C", "D", flops.C, "as 6ND", "from N and D", "N and D but no C"))
    with np.errstate(invalid="ignore", divide="ignore"):  # a bad N gives NaN, dropped later
        for col, given, derive, plain, source, gives in rules:
            fill = df[col].isna() & df[given].notna()
            if fill.any():
                df.loc[fill, col] = derive(df.loc[fill, "N"], df.loc[fill, given])
                how = plain if flops.k == 0 else \
                    f"{source} by {flops.describe()}, the convention of the other runs"
                notes.append(f"{col} derived {how} for {int(fill.sum())} run(s): the input gives "
                             f"{gives}")
    return flops


def flop_convention(table: pd.DataFrame) -> FlopConvention:
    """The convention `load_table` found, else the one the table's own N, D, C follow."""
    flops = table.attrs.get("flops")
    if isinstance(flops, FlopConvention):
        return flops
    if {"N", "D", "C"} <= set(table.columns):
        return FlopConvention.from_points(table["N"], table["D"], table["C"], name="table")
    return FlopConvention()


def _rows(df: pd.DataFrame, reasons: dict[int, str]) -> str:
    """Lines naming rows (at most 20), each with its run and its reason."""
    ids = df["run_id"] if "run_id" in df.columns else pd.Series(df.index.astype(str))
    lines = [f"  row {i} ({ids.iloc[i]}): {why}" for i, why in reasons.items()]
    return "\n".join(lines[:20] + ([f"  ... and {len(lines) - 20} more"] if len(lines) > 20 else []))


def drop_bad_rows(df: pd.DataFrame, quiet: bool = False) -> pd.DataFrame:
    """List and drop rows whose N, D, C or (completed) loss is non-finite or non-positive; a
    cell that was text and no number is named by its text."""
    bad = np.zeros(len(df), dtype=bool)
    reasons = [[] for _ in range(len(df))]
    completed = (df["status"] == "completed").to_numpy()
    for f in SCALE_FIELDS + ("loss",):
        if f not in df.columns:
            continue
        v = df[f].to_numpy(dtype=float)
        text = df[TEXT + f] if TEXT + f in df.columns else pd.Series(np.nan, index=df.index)
        b = ~np.isfinite(v) | (v <= 0)
        if f == "loss":
            b &= completed
        for i in np.flatnonzero(b):
            cell = text.iloc[i]
            reasons[i].append(f"{f}={cell!r}" if isinstance(cell, str) else f"{f}={v[i]}")
        bad |= b
    if bad.any() and not quiet:
        warn(f"{int(bad.sum())} bad row(s) left out (non-finite or non-positive):\n"
             + _rows(df, {i: ", ".join(reasons[i]) for i in np.flatnonzero(bad)}))
    out = df[~bad].drop(columns=[c for c in df.columns if str(c).startswith(TEXT)]).reset_index(drop=True)
    out.attrs["dropped"] = int(bad.sum())
    return out


def warn_outlying_losses(df: pd.DataFrame) -> None:
    """Name the completed runs whose loss lies far from the others' (`OUTLIER_SDS`): a typo or a
    loss in other units, like 1e300, would otherwise pass without a word. They are kept: no bound
    holds for every table (its loss may be a perplexity or bits), and only a person can tell."""
    if "loss" not in df.columns:
        return
    loss = df["loss"].to_numpy(float)
    ok = (df["status"] == "completed").to_numpy() & np.isfinite(loss) & (loss > 0)
    if ok.sum() < 3:
        return
    log = np.log(loss[ok])
    median = np.median(log)
    spread = 1.4826 * np.median(np.abs(log - median))
    far = np.zeros(len(df))
    far[ok] = np.abs(log - median)
    outliers = np.flatnonzero((far > OUTLIER_SDS * spread) & (far > np.log(OUTLIER_FACTOR)))
    if len(outliers):
        warn(f"{len(outliers)} run(s) whose loss lies far from the others' (median {np.exp(median):.4g}; "
             f"more than {OUTLIER_SDS:g} robust standard deviations of log loss and a factor "
             f"{OUTLIER_FACTOR:g} away), kept: check them:\n"
             + _rows(df, {i: f"loss={loss[i]:g}" for i in outliers}))


def hparam_columns(df: pd.DataFrame) -> list[str]:
    """Hyperparameter columns that vary within the table (lr, batch_size, searched values)."""
    hp = df.attrs.get("hparams") or [c for c in ("lr", "batch_size") if c in df.columns]
    return [c for c in hp if c in df.columns and df[c].nunique(dropna=True) > 1]


def best_per_cell(table: pd.DataFrame, cell=("N", "D")) -> pd.DataFrame:
    """The best run of each cell ((N, D) unless named): the loss a tuned run reaches at that scale."""
    idx = table.groupby(list(cell))["loss"].idxmin()
    out = table.loc[idx].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    return out


def has_sweep(table: pd.DataFrame, cell=("N", "D")) -> bool:
    """Whether some cell ((N, D) unless named) holds several runs: a hyperparameter sweep, not a ladder."""
    return bool((table.groupby(list(cell)).size() > 1).any())
