"""Read what an offline wandb run wrote: `<dir>/wandb/offline-run-*/run-<id>.wandb`.

wandb writes the file and syncs it, but has no reader for it in Python. This one is for tests: it
turns the file back into the run's config, history rows, summary and define_metric settings.

A module of the tests package: a test does `from tests.wandb_file import read_run`.

The file, as wandb 0.31 writes it (wandb-core's leveldb package, a copy of LevelDB's log format):

    header   7 bytes: b":W&B", the magic 0xBEE1 as a little-endian uint16, version 0
    blocks   the file, header included, is cut into 32 KiB blocks; a block holds chunks
    chunk    crc32 (uint32 LE) | length (uint16 LE) | type (uint8) | `length` bytes of payload
             the checksum is zlib's CRC-32 (IEEE, as zlib.crc32) of the type byte and the payload,
             not LevelDB's masked CRC-32C; a chunk never crosses a block boundary, and a block
             with fewer than 7 bytes left is padded with zeros
    type     1 FULL: a whole record; 2 FIRST, 3 MIDDLE, 4 LAST: the pieces of a record that did
             not fit in what was left of its block
    record   a serialized `wandb.proto.wandb_internal_pb2.Record`: header, run, config, metric,
             history, summary, exit, ... (`Record.WhichOneof("record_type")`)

A damaged file - cut short, or a checksum that does not match - raises WandbFileError, which
names the file, the byte offset and what is wrong. `strict=False` reads instead up to the last
whole record before the damage: what a run killed while it wrote leaves behind.
"""
from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")  # checksum, payload length, chunk type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

# The summaries define_metric(summary=...) can ask for, in MetricSummary's field order.
_SUMMARY_KINDS = [f.name for f in pb.MetricSummary.DESCRIPTOR.fields]
_GOALS = {pb.MetricRecord.GOAL_MINIMIZE: "minimize", pb.MetricRecord.GOAL_MAXIMIZE: "maximize"}


class WandbFileError(ValueError):
    """The file is not a wandb run file, or it is damaged."""

    def __init__(self, path: Path, offset: int, problem: str):
        super().__init__(f"{path}: byte {offset}: {problem}")
        self.path, self.offset, self.problem = path, offset, problem


@dataclass
class OfflineRun:
    """One run, as its .wandb file tells it. Values are JSON-decoded, and a key wandb sent as a
    path (`nested_key`) becomes nested dicts. Nothing is left out: wandb's own keys (`_wandb` in
    the config and the summary; `_step`, `_runtime`, `_timestamp` in history and summary) stay."""

    path: Path                 # the .wandb file
    run_id: str
    name: str                  # the display name
    project: str
    group: str
    job_type: str
    tags: list[str]
    config: dict[str, Any]     # every key at its latest value: init's config, then each update
    history: list[dict[str, Any]]  # one dict per logged row, `_step` included
    summary: dict[str, Any]    # the final summary: every update and removal, in order
    metric_definitions: dict[str, dict[str, Any]]  # define_metric's name (or glob) -> settings
    exit_code: int | None      # None: the file has no exit record (the run did not finish)
    records: list[pb.Record] = field(repr=False)  # every record, for anything else


def offline_env(folder: Path) -> dict[str, str]:
    """Environment for W&B offline and quiet, with every file it writes (runs, settings, caches,
    logs) below `folder`."""
    return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(folder),
            **{name: str(folder / part) for name, part in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"),
                                                           ("WANDB_DATA_DIR", "data"))}}


def find_runs(root: str | Path) -> list[Path]:
    """Every offline-run-* folder below root, oldest first (the names start with the time)."""
    runs = [p for p in Path(root).rglob("offline-run-*") if p.is_dir()]
    return sorted(runs, key=lambda p: (p.name, str(p)))


def run_file(folder_or_file: str | Path) -> Path:
    """The .wandb file of an offline-run-* folder (or the file itself)."""
    path = Path(folder_or_file)
    if path.is_file():
        return path
    found = sorted(path.glob("run-*.wandb"))
    if len(found) != 1:
        raise FileNotFoundError(f"{path}: expected one run-*.wandb file, found {len(found)}")
    return found[0]


def read_records(folder_or_file: str | Path, *, strict: bool = True) -> list[pb.Record]:
    """Every record of the file, in the order they were written."""
    path = run_file(folder_or_file)
    records = []
    for payload in _payloads(path, path.read_bytes(), strict):
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def read_run(folder_or_file: str | Path, *, strict: bool = True) -> OfflineRun:
    """The run in an offline-run-* folder, or in its .wandb file."""
    path = run_file(folder_or_file)
    records = read_records(path, strict=strict)
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    if not runs:
        raise WandbFileError(path, len(HEADER), "no run record")
    run = runs[0]

    config: dict[str, Any] = {}
    _apply(config, run.config.update, run.config.remove)
    summary: dict[str, Any] = {}
    _apply(summary, run.summary.update, run.summary.remove)  # set when a run resumes
    history, metrics, exit_code = [], {}, None
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "config":
            _apply(config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply(summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply(row, record.history.item, [])
            row.setdefault("_step", record.history.step.num)
            history.append(row)
        elif kind == "metric":
            _define(metrics, record.metric)
        elif kind == "exit":
            exit_code = record.exit.exit_code

    return OfflineRun(
        path=path, run_id=run.run_id, name=run.display_name, project=run.project,
        group=run.run_group, job_type=run.job_type, tags=list(run.tags), config=config,
        history=history, summary=summary,
        metric_definitions={name: _metric_settings(m) for name, m in metrics.items()},
        exit_code=exit_code, records=records)


def _payloads(path: Path, data: bytes, strict: bool) -> Iterator[bytes]:
    """The payload of each whole record: chunks joined, checksums checked."""
    if data[:len(HEADER)] != HEADER:
        raise WandbFileError(path, 0, f"not a wandb run file: it starts {data[:len(HEADER)]!r}, "
                                      f"not {HEADER!r}")
    pos, pieces, start = len(HEADER), None, 0
    try:
        while pos < len(data):
            left = BLOCK_SIZE - pos % BLOCK_SIZE
            if left < CHUNK_HEADER.size:  # the block's zero padding
                if data[pos:pos + left].strip(b"\0"):
                    raise WandbFileError(path, pos, "the end of a block is not zero padding")
                pos += left
                continue
            if pos + CHUNK_HEADER.size > len(data):
                raise WandbFileError(path, pos, "cut short inside a chunk header")
            checksum, length, kind = CHUNK_HEADER.unpack_from(data, pos)
            end = pos + CHUNK_HEADER.size + length
            if length > left - CHUNK_HEADER.size:
                raise WandbFileError(path, pos, f"a chunk of {length} bytes runs past its block")
            if end > len(data):
                raise WandbFileError(path, pos, f"cut short inside a chunk of {length} bytes "
                                                f"({len(data) - pos} bytes left)")
            if zlib.crc32(data[pos + CHUNK_HEADER.size - 1:end]) != checksum:
                raise WandbFileError(path, pos, "checksum mismatch")
            payload = data[pos + CHUNK_HEADER.size:end]
            if kind in (FULL, FIRST):
                if pieces is not None:
                    raise WandbFileError(path, pos, "a record starts inside another one")
                if kind == FULL:
                    yield payload
                else:
                    pieces, start = [payload], pos
            elif kind in (MIDDLE, LAST):
                if pieces is None:
                    raise WandbFileError(path, pos, "the rest of a record that never started")
                pieces.append(payload)
                if kind == LAST:
                    yield b"".join(pieces)
                    pieces = None
            else:
                raise WandbFileError(path, pos, f"unknown chunk type {kind}")
            pos = end
        if pieces is not None:
            raise WandbFileError(path, start, "cut short inside a record split across blocks")
    except WandbFileError:
        if strict:
            raise


def _apply(target: dict, updates, removals) -> None:
    """Set each item's JSON value at its key, or its path of keys; then delete each removal."""
    for item in updates:
        *parents, last = _key_path(item)
        node = target
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = json.loads(item.value_json)
    for item in removals:
        *parents, last = _key_path(item)
        node = target
        for key in parents:
            node = node.get(key)
            if not isinstance(node, dict):
                break
        else:
            node.pop(last, None)


def _key_path(item) -> list[str]:
    return list(item.nested_key) or [item.key]


def _define(metrics: dict[str, pb.MetricRecord], metric: pb.MetricRecord) -> None:
    """A define_metric call: merged into an earlier one for the same name, as wandb does,
    unless it was made with overwrite=True."""
    name = metric.name or metric.glob_name
    merged = pb.MetricRecord()
    if name in metrics and not metric._control.overwrite:
        merged.CopyFrom(metrics[name])
    merged.MergeFrom(metric)
    metrics[name] = merged


def _metric_settings(metric: pb.MetricRecord) -> dict[str, Any]:
    return {
        "step_metric": metric.step_metric or None,
        "step_sync": metric.options.step_sync,
        "hidden": metric.options.hidden,
        "summary": [kind for kind in _SUMMARY_KINDS if getattr(metric.summary, kind)],
        "goal": _GOALS.get(metric.goal),
        "glob": bool(metric.glob_name),
    }
