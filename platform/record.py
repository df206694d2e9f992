"""run.json: the one contract between a training run and the analysis (see DESIGN.md).

Written for every ending (completed, diverged, pruned, failed), atomically: a temporary file in
the same folder, then a rename, so a killed run never leaves half a record.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from scalelab.platform.storage import redact_url

SCHEMA_VERSION = 1
RECORD_NAME = "run.json"
PACKAGES = ("scalelab", "torch", "lightning", "hydra-core", "optuna", "wandb", "numpy")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def redacted(config: dict) -> dict:
    """The config with storage credentials hidden: records and W&B must never hold them."""
    trial = config.get("trial") or {}
    if trial.get("storage"):
        config = {**config, "trial": {**trial, "storage": redact_url(trial["storage"])}}
    return config


def finite_or_none(value):
    """JSON has no NaN: a non-finite metric is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def environment(seed: int, device: str) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_sha": git_sha(), "packages": versions, "device": device, "seed": seed}


def git_sha() -> str | None:
    """The commit of the scalelab source that ran, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def write_record(run_dir: Path, record: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RECORD_NAME
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".run.", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, allow_nan=False, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a record is meant to be read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_record(run_dir: Path) -> dict | None:
    path = Path(run_dir) / RECORD_NAME
    return json.loads(path.read_text()) if path.exists() else None
