"""run.json: the one contract between a training run and everything that reads it.

A training run writes one record into its folder whatever its ending (`STATUSES`); the sweeper
reads it to tell Optuna the trial's result, the analysis reads folders of them. This module is
all three sides of that contract and imports neither torch nor the training code:

- the file name, the schema version and the field paths (`FIELDS`, dotted paths into the JSON);
- `write` (atomic: a temporary file in the same folder, then a rename, so a killed run never
  leaves half a record; non-finite numbers become null and credentials `***`, `sanitize`), `read` (schema version checked; a truncated or foreign file is a
  `RecordError` that names it) and `find` (every record below a folder);
- the FLOP convention: training FLOPs per token are 6N (forward 2, backward 4 per non-embedding
  parameter; Kaplan et al. 2020, Hoffmann et al. 2022) plus the attention scores,
  6 * depth * context * width. C = flops_per_token * D. `FlopConvention` turns N, D into C and
  back for a table whose C follows some convention (6ND, or the records' own). In a
  mixture-of-experts model N is the active parameters per token (the router's matrix, every
  token's, included; the routed experts a token does not reach left out), so C counts the FLOPs
  done (Clark et al. 2022 count routed models the same way).

Record fields: schema_version, run_id, study, ladder (the sweep's name, shared by its studies),
ladder_id (one per sweep, `<study_name>-<8 hex>`; null outside a sweep and in older records), trial, status, error, config, overrides, scale {N, N_total, D, C, flops_per_token, model; an MoE
run's also N_active (= N) and sparsity: `MOE_SCALE`},
hparams {lr, batch_size, weight_decay, warmup, schedule, every searched value by config path},
metrics {final_val_loss, best_val_loss, initial_loss, steps, tokens_seen, tokens_per_second (this
process's training steps after its first, over their time), mfu, compile_seconds (with
train.compile: the first step, which compiles), wall_seconds; an MoE run's also `MOE_METRICS`}, curve [{step, tokens, val_loss,
eval_tokens}] (measured on the curve's part of the held-out set: see `platform.data.HeldOut`),
environment {git_sha, packages, device, seed, threads, precision (train.precision resolved)},
started_at, ended_at; branch (a WSD cooldown branch's {parent, fork_step, fork_tokens}, else
null) and, on a run with branches, family {budgets, folders, compute}: see `platform.branches`.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from scalelab.errors import ScalelabError
from scalelab.messages import redact_text

SCHEMA_VERSION = 1
FILE_NAME = "run.json"
STATUSES = ("completed", "diverged", "pruned", "failed")
# Folders a run writes beside its record that never hold another run's record.
SKIP_DIRS = frozenset({".hydra", "wandb", "checkpoints", "csv"})
PACKAGES = ("scalelab", "torch", "lightning", "hydra-core", "optuna", "wandb", "numpy")

# The record's `hparams` beside the searched values, and the config path each is read from.
HPARAMS = {"lr": "optim.lr", "batch_size": "train.batch_size", "weight_decay": "optim.weight_decay",
           "warmup": "schedule.warmup", "schedule": "schedule.name"}
# The record's numbers under `metrics` and under `scale`, each written by every training run
# (null where it has none): with `hparams.*` and `config.*`, what a sweep's `objectives` may name.
METRICS = ("final_val_loss", "best_val_loss", "initial_loss", "steps", "tokens_seen", "tokens_per_second",
           "mfu", "compile_seconds", "wall_seconds")
SCALE = ("N", "N_total", "D", "C", "flops_per_token")
# Written by mixture-of-experts runs only (a dense record is as it was): the active non-embedding
# parameters per token (N itself) and the sparsity, 1 - top_k / experts (the routed experts'
# parameters a token does not use); the routers' auxiliary losses and the experts' smallest and
# largest share of the token-expert assignments, at the last logged training step.
MOE_SCALE = ("N_active", "sparsity")
MOE_METRICS = ("moe_balance_loss", "moe_z_loss", "moe_load_min", "moe_load_max")
# Where each analysed quantity lives in a record.
FIELDS = {
    "N": "scale.N", "N_total": "scale.N_total", "D": "scale.D", "C": "scale.C",
    "flops_per_token": "scale.flops_per_token", "model": "scale.model",
    "loss": "metrics.final_val_loss", "best_loss": "metrics.best_val_loss",
    "initial_loss": "metrics.initial_loss", "lr": "hparams.lr", "batch_size": "hparams.batch_size",
    "context": "config.model.context", "status": "status", "run_id": "run_id", "study": "study",
    "trial": "trial", "seed": "config.train.seed", "role": "config.trial.role", "ladder": "ladder",
    "ladder_id": "ladder_id",
    "width": "config.model.width", "parametrization": "config.model.parametrization",
    "logger": "config.logger.kind", "project": "config.logger.project", "entity": "config.logger.entity",
    "N_active": "scale.N_active", "sparsity": "scale.sparsity", "experts": "config.model.moe.experts",
    "top_k": "config.model.moe.top_k",
}


class RecordError(ScalelabError):
    """A record that cannot be read: truncated, not JSON, or of an unknown schema version (a class of
    its own: a run folder, a sweep and the analysis each go on without such a record)."""


# --------------------------------------------------------------------------- dotted paths
def flatten(tree: Mapping[str, Any] | None, prefix: str = "", lists: bool = True) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; with `lists=False` list values (a curve) are left out."""
    out: dict[str, Any] = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}.", lists))
        elif lists or not isinstance(value, (list, tuple)):
            out[name] = value
    return out


def get(record: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """The value at a dotted path (`metrics.final_val_loss`), or `default` where it is absent."""
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


# --------------------------------------------------------------------------- write, read, find
def sanitize(value: Any) -> Any:
    """`value` as a record may hold it: strict JSON has no NaN or infinity (they become None),
    and no text keeps a credential (a storage URL's password becomes `***`)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: sanitize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(item) for item in value]
    return value


def write_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename: a reader
    (or a process killed meanwhile) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; these files are meant to be read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write(run_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Write `run_dir/run.json` atomically, `sanitize`d: any ending can be recorded."""
    text = json.dumps(sanitize({"schema_version": SCHEMA_VERSION, **record}), indent=1, allow_nan=False, default=str)
    return write_atomic(Path(run_dir) / FILE_NAME, text)


def read(path: str | Path) -> dict[str, Any]:
    """The record at `path` (a run.json, or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        text = path.read_text()
    except OSError as e:
        raise RecordError(f"cannot read run record {path}: {e.strerror or e}") from None
    try:
        record = json.loads(text)
    except ValueError as e:
        raise RecordError(f"run record {path} is truncated or not JSON ({e})") from None
    if not isinstance(record, dict):
        raise RecordError(f"run record {path} is not a JSON object")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"run record {path} has schema version {version!r}; this scalelab reads "
                          f"version {SCHEMA_VERSION}")
    return record


def find(folder: str | Path) -> list[Path]:
    """Every run.json below `folder`, skipping the tool folders a run writes beside its record."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        if FILE_NAME in files:
            found.append(Path(root) / FILE_NAME)
    return sorted(found)


# --------------------------------------------------------------------------- values
def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def environment(seed: int, device: str) -> dict[str, Any]:
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
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# --------------------------------------------------------------------------- FLOPs
def non_embedding_params(width: int, depth: int, mlp_ratio: int = 4, experts: int = 0, top_k: int = 1,
                         expert_width: int | None = None, shared_expert: bool = False, active: bool = True) -> int:
    """N of the GPT family (`scalelab.platform.model`) without building it: per block the
    attention (4 w^2) and MLP (2 mlp_ratio w^2) matrices and two LayerNorms (4 w), plus the
    final LayerNorm (2 w). With `experts` (an MoE, `platform/moe.py`) the MLP is the router
    (w x experts), the shared expert if any and top_k routed experts (`active`, the N of the FLOP
    convention) or all of them (`active=False`), each 2 w expert_width (default mlp_ratio w)."""
    if experts:
        expert = 2 * width * (expert_width or mlp_ratio * width)
        mlp = width * experts + expert * ((top_k if active else experts) + shared_expert)
    else:
        mlp = 2 * mlp_ratio * width * width
    return depth * (4 * width * width + mlp + 4 * width) + 2 * width


def flops_per_token(n_params: float, depth: int, context: int, width: int) -> float:
    """Training FLOPs per token: 6N plus the attention scores (see the module docstring); in an
    MoE, N is the active parameters (`non_embedding_params(..., active=True)`)."""
    return 6.0 * n_params + 6.0 * depth * context * width


@dataclass(frozen=True)
class FlopConvention:
    """C = 6 N D (1 + k N^p): how a table's C relates to its N and D.

    `k = 0` is plain 6ND (Chinchilla's tables; any table that gives C without D, or D without C).
    For scalelab's records, k N^p is the attention term's share of 6N per token,
    depth*context*width/N, fitted in log space to the runs themselves: within a model family of
    fixed depth and context it falls as N^-1/2 exactly, so the fit reproduces the recorded C.
    `max_error` is the largest relative error of the convention on the points it was taken from.
    """

    name: str = "6ND"
    k: float = 0.0
    p: float = 0.0
    max_error: float = 0.0

    def multiplier(self, N):
        return 1.0 + self.k * np.asarray(N, float) ** self.p

    def C(self, N, D):
        """Training FLOPs of N parameters trained on D tokens."""
        return 6.0 * np.asarray(N, float) * np.asarray(D, float) * self.multiplier(N)

    def D(self, N, C):
        """Tokens that N parameters can be trained on with C FLOPs."""
        return np.asarray(C, float) / (6.0 * np.asarray(N, float) * self.multiplier(N))

    def describe(self) -> str:
        """The convention in words, for notes and printouts."""
        if self.k == 0:
            return "C = 6ND"
        whose = ("the attention term, fitted to the run records" if self.name == "records"
                 else f"fitted to the {self.name}'s N, D and C")
        if self.max_error:
            whose += f"; largest error {100 * self.max_error:.2g}%"
        share = f"{self.k:.4g}" if abs(self.p) < 1e-9 else f"{self.k:.4g} N^{self.p:.4g}"
        return f"C = 6ND(1 + {share}) ({whose})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "FlopConvention":
        """A fit file's convention; a file without one followed 6ND."""
        return cls(**{k: d[k] for k in ("name", "k", "p", "max_error") if k in d}) if d else cls()

    @classmethod
    def from_points(cls, N, D, C, name: str = "records") -> "FlopConvention":
        """The convention that reproduces C from N and D at these points."""
        N, D, C = (np.asarray(v, float) for v in (N, D, C))
        ok = np.isfinite(N) & np.isfinite(D) & np.isfinite(C) & (N > 0) & (D > 0) & (C > 0)
        if not ok.any():
            return cls()
        N, D, C = N[ok], D[ok], C[ok]
        share = C / (6.0 * N * D) - 1.0
        if np.all(np.abs(share) < 1e-9):
            return cls()
        if np.all(share > 0) and np.unique(N).size > 1:
            p, log_k = np.polyfit(np.log(N), np.log(share), 1)
            k = float(np.exp(log_k))
        else:  # one model size, or a C below 6ND somewhere: one constant share
            k, p = float(np.median(share)), 0.0
        fitted = cls(name, k, float(p))
        error = float(np.max(np.abs(fitted.C(N, D) / C - 1.0)))
        return cls(name, k, float(p), error)
