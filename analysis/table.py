"""Every source -> one validated pandas DataFrame with the canonical columns.

Canonical columns: N, D, C, loss, lr, batch_size, batch_tokens, initial_loss, status, run_id,
study, trial, plus one column per other hyperparameter (dotted config path, e.g. `optim.beta2`).
Sources: a folder of run.json records (searched recursively), a CSV or Parquet file, an Optuna
storage URL, or `wandb:ENTITY/PROJECT`. Each source is first flattened into a raw frame with
dotted column names; a default map per source plus the user's `--map FIELD=COLUMN` picks the
canonical fields out of it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import AnalysisError

FIELDS = ("N", "D", "C", "loss", "lr", "batch_size", "initial_loss")
SCALE_FIELDS = ("N", "D", "C")
SKIP_DIRS = {".hydra", "wandb", "checkpoints"}
RECORD_NAME = "run.json"

# Where each field lives in a flattened run.json (and, with the same names, in wandb/optuna rows).
RECORD_MAP = {
    "N": "scale.N", "D": "scale.D", "C": "scale.C", "loss": "metrics.final_val_loss",
    "initial_loss": "metrics.initial_loss", "lr": "hparams.lr",
    "batch_size": "hparams.batch_size", "context": "config.model.context", "status": "status",
    "run_id": "run_id", "study": "study", "trial": "trial", "N_total": "scale.N_total",
    "model": "scale.model", "best_loss": "metrics.best_val_loss",
}


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {dotted.key: value}; lists (the loss curve) are left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif not isinstance(v, (list, tuple)):
            out[key] = v
    return out


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
def find_records(folder: Path) -> list[Path]:
    """All run.json below `folder`, skipping Hydra, W&B and checkpoint folders."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        if RECORD_NAME in files:
            found.append(Path(root) / RECORD_NAME)
    return sorted(found)


def read_record(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        rec = json.loads(f.read())
    rec.pop("curve", None)
    row = flatten(rec)
    row["record"] = str(path)
    return row


def records_frame(folder: Path) -> pd.DataFrame:
    paths = find_records(folder)
    if not paths:
        raise AnalysisError(f"no {RECORD_NAME} found under {folder}")
    rows = []
    for p in paths:
        try:
            rows.append(read_record(p))
        except (OSError, json.JSONDecodeError) as e:
            warn(f"skipping unreadable record {p}: {e}")
    return pd.DataFrame(rows)


def optuna_frame(url: str) -> pd.DataFrame:
    """Rows from every study in an Optuna storage; a trial's run.json is preferred when present."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        names = optuna.study.get_all_study_names(storage=url)
    except Exception as e:  # noqa: BLE001 - storage libraries raise many types
        raise AnalysisError(f"cannot open Optuna storage {url}: {e}") from e
    rows = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=url)
        for t in study.get_trials(deepcopy=False):
            ua = dict(t.user_attrs)
            rec = ua.get("record")
            if rec and Path(rec).is_file():
                row = read_record(Path(rec))
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
        raise AnalysisError(f"no trials in Optuna storage {url}")
    return pd.DataFrame(rows)


def wandb_frame(path: str, api_factory: Callable[[], Any] | None = None) -> pd.DataFrame:
    """Rows from a W&B project through `wandb.Api` (online); `api_factory` lets tests stand in."""
    if api_factory is None:
        import wandb

        api_factory = wandb.Api
    api = api_factory()
    rows = []
    for run in api.runs(path):
        config = flatten(dict(run.config))
        summary = {k: v for k, v in dict(run.summary).items() if not str(k).startswith("_")}
        row: dict[str, Any] = {}
        # A run logged by scalelab carries its record in the config; otherwise take the names as is.
        row.update(config)
        row.update({f"config.{k}": v for k, v in config.items()})  # as a record's config
        for k, v in flatten(summary).items():
            row[k] = v
            row[f"metrics.{k}"] = v
            row[k.replace("/", ".")] = v
        row.setdefault("run_id", getattr(run, "id", None) or run.name)
        row.setdefault("name", run.name)
        row.setdefault("study", run.group)
        row["tags"] = ",".join(run.tags or [])
        row.setdefault("status", {"finished": "completed", "crashed": "failed",
                                  "failed": "failed"}.get(run.state, run.state))
        rows.append(row)
    if not rows:
        raise AnalysisError(f"no runs in W&B project {path}")
    return pd.DataFrame(rows)


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
    if p.name == RECORD_NAME:
        return pd.DataFrame([read_record(p)]), "record"
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ","), "table"
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p), "table"
    raise AnalysisError(f"cannot read {s}: expected a folder of run records, .csv, .parquet, "
                        "an Optuna storage URL or wandb:ENTITY/PROJECT")


# --------------------------------------------------------------------------- raw -> canonical
def warn(msg: str) -> None:
    print(f"scalelab: warning: {msg}", file=sys.stderr)


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
        for field, column in RECORD_MAP.items():
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
    hp += [f for f in mapping if f not in FIELDS and f not in hp and f not in RECORD_MAP]
    df.attrs["hparams"] = hp
    for f in FIELDS + ("context",):
        if f in df.columns:
            df[f] = pd.to_numeric(df[f], errors="coerce").astype(float)
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
    `table.attrs["notes"]`.
    """
    raw, kind = raw_frame(source, api_factory)
    return table_from_raw(raw, kind, source, mapping, statuses=statuses, require=require,
                          context=context, quiet=quiet)


def table_from_raw(raw: pd.DataFrame, kind: str, source, mapping=None, *,
                   statuses: Iterable[str] | None = ("completed",), require: Iterable[str] = (),
                   context: float | None = None, quiet: bool = False) -> pd.DataFrame:
    """`load_table` on a frame already read by `raw_frame`, so one read can serve two tables."""
    label = "DataFrame" if isinstance(source, pd.DataFrame) else str(source)
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
    if "N" in df.columns:
        fill = df["D"].isna() & df["C"].notna()
        if fill.any():
            df.loc[fill, "D"] = df.loc[fill, "C"] / (6.0 * df.loc[fill, "N"])
            notes.append(f"D derived as C/(6N) for {int(fill.sum())} run(s): the input gives C "
                         "but no D")
        fill = df["C"].isna() & df["D"].notna()
        if fill.any():
            df.loc[fill, "C"] = 6.0 * df.loc[fill, "N"] * df.loc[fill, "D"]
            notes.append(f"C derived as 6ND for {int(fill.sum())} run(s): the input gives N and "
                         "D but no C")
    for col in ("D", "C"):
        if df[col].isna().all():
            del df[col]
    missing = [f for f in require if f not in df.columns]
    if missing:
        raise AnalysisError(f"the input has no column for {', '.join(missing)} "
                            f"(columns: {', '.join(map(str, df.columns[:30]))}); name it with "
                            f"--map FIELD=COLUMN")
    df = drop_bad_rows(df, quiet=quiet)
    if df.empty:
        raise AnalysisError("the table is empty after dropping bad rows")
    df.attrs["notes"] = notes
    df.attrs["hparams"] = hp
    df.attrs["source"] = label
    if not quiet:
        for n in notes:
            warn(n)
    return df


def drop_bad_rows(df: pd.DataFrame, quiet: bool = False) -> pd.DataFrame:
    """List and drop rows whose N, D, C or (completed) loss is non-finite or non-positive."""
    bad = np.zeros(len(df), dtype=bool)
    reasons = [[] for _ in range(len(df))]
    completed = (df["status"] == "completed").to_numpy()
    for f in SCALE_FIELDS + ("loss",):
        if f not in df.columns:
            continue
        v = df[f].to_numpy(dtype=float)
        b = ~np.isfinite(v) | (v <= 0)
        if f == "loss":
            b &= completed
        for i in np.flatnonzero(b):
            reasons[i].append(f"{f}={v[i]}")
        bad |= b
    if bad.any():
        ids = df["run_id"] if "run_id" in df.columns else pd.Series(df.index.astype(str))
        lines = [f"  row {i} ({ids.iloc[i]}): {', '.join(reasons[i])}" for i in np.flatnonzero(bad)]
        shown = lines[:20] + ([f"  ... and {len(lines) - 20} more"] if len(lines) > 20 else [])
        if not quiet:
            warn(f"{int(bad.sum())} bad row(s) left out (non-finite or non-positive):\n"
                 + "\n".join(shown))
    out = df[~bad].reset_index(drop=True)
    out.attrs["dropped"] = int(bad.sum())
    return out


def hparam_columns(df: pd.DataFrame) -> list[str]:
    """Hyperparameter columns that vary within the table (lr, batch_size, searched values)."""
    hp = df.attrs.get("hparams") or [c for c in ("lr", "batch_size") if c in df.columns]
    return [c for c in hp if c in df.columns and df[c].nunique(dropna=True) > 1]
