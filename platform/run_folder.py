"""A run folder is one run: it keeps its id, and remembers the config that started it.

Running a command again with the same `hydra.run.dir` continues what the folder holds:

- a checkpoint (the run was killed or preempted) is resumed, but only with the settings that
  started the run: resuming other weights under new settings would record a run that never
  happened, so a changed setting is refused with the keys that differ;
- a finished run (`completed`, `diverged`, `pruned`) is not trained again: `open_run_folder`
  returns its record, and a changed setting is refused the same way;
- anything else (a fresh folder, a run that failed before its first checkpoint) starts over.

`train.fresh_start=true` discards the folder's earlier run (checkpoint, record, id, remembered
config) and starts a new one there. Settings that change only where results go or how the run
is watched (`IGNORED`) may differ.

A folder written by an earlier version of scalelab lacks the settings added since: each counts
as its default, which is how that run trained; a setting this version no longer has is no
difference either. `train.precision=auto` compares as the precision it means on this machine, so
a run started with an explicit `32-true` resumes under `auto` on a CPU. A setting that differs
only because its default changed is named as such, with the override that keeps the old value.

A checkpoint that cannot be read is refused before the run is set up (`checkpoint.check_readable`).
One run at a time works in a folder, and only one that can write there (`folder_owner`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scalelab import record as rec
from scalelab.conf.schema import RunConfig
from scalelab.platform.checkpoint import check_readable
from scalelab.platform.errors import ConfigError

RUN_ID_FILE = ".run_id"
CONFIG_FILE = ".run_config.json"
CHECKPOINT = Path("checkpoints") / "last.ckpt"
FINISHED = ("completed", "diverged", "pruned")
# Settings that do not change what is trained.
IGNORED = ("logger.", "trial.", "train.keep_checkpoint", "train.fresh_start", "train.progress_seconds",
           "trainer.threads", "trainer.peak_flops")
DEFAULTS = rec.flatten(OmegaConf.to_container(OmegaConf.structured(RunConfig), enum_to_str=True))


def run_id_for(run_dir: Path) -> str:
    """A run folder keeps its id across restarts, so a resumed run is the same run everywhere."""
    path = run_dir / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    run_id = rec.new_run_id()
    if rank_zero_only.rank == 0:  # the record and the W&B run are rank 0's: its id is the run's
        run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id)
    return run_id


def differences(started: dict, now: dict, precision: str, keep: str = "resume it") -> list[str]:
    """The settings of `now` that differ from `started`'s, `IGNORED` aside, each as `key: old -> new`:
    a setting `started` lacks counts as its default, one `now` lacks (gone from this version)
    cannot differ, and `train.precision=auto` is `precision`. Where `now` holds a key's default,
    the difference says so, with the override that keeps the folder's run (`keep`: "resume it")."""
    old, new = {**DEFAULTS, **rec.flatten(started)}, rec.flatten(now)
    at_default = {k for k, v in new.items() if k in DEFAULTS and v == DEFAULTS[k]}  # `auto` as such
    for side in (old, new):
        if side.get("train.precision") == "auto":
            side["train.precision"] = precision
    out = []
    for k in sorted(k for k in new if not k.startswith(IGNORED) and old.get(k) != new[k]):
        if k in at_default:  # a default changed since (or the folder's run set the key): name the way back
            out.append(f"{k}: the folder's run used {old[k]}, the default is now {new[k]}; "
                       f"pass {k}={override(old[k])} to {keep}")
        else:
            out.append(f"{k}: {old.get(k)} -> {new[k]}")
    return out


def override(value: Any) -> str:
    """`value` as a command-line override writes it."""
    if isinstance(value, (list, tuple)):
        return f"[{','.join(override(v) for v in value)}]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _finished_record(run_dir: Path) -> Optional[dict]:
    try:
        record = rec.read(run_dir)
    except rec.RecordError:  # no record, or one a crash cut short: nothing finished here
        return None
    return record if record.get("status") in FINISHED else None


def open_run_folder(run_dir: Path, config: dict, precision: str, fresh_start: bool = False) -> Optional[dict]:
    """Check that `config` may run in `run_dir` (see the module docstring), `precision` being
    what `train.precision` resolves to here; the finished record when there is nothing left to
    do. Raises ConfigError when the settings differ."""
    if fresh_start:
        if rank_zero_only.rank == 0:
            shutil.rmtree(run_dir / CHECKPOINT.parent, ignore_errors=True)
            for name in (rec.FILE_NAME, RUN_ID_FILE, CONFIG_FILE):
                (run_dir / name).unlink(missing_ok=True)
        return None  # every process starts over, whatever another still sees of the earlier run
    finished = _finished_record(run_dir)
    config_file = run_dir / CONFIG_FILE
    checkpoint = run_dir / CHECKPOINT
    if (finished or checkpoint.exists()) and config_file.exists():
        changed = differences(json.loads(config_file.read_text()), config, precision,
                              "reuse it" if finished else "resume it")
        if changed:
            what = "a finished run" if finished else "an unfinished run (its checkpoint)"
            raise ConfigError(f"{run_dir} holds {what} started with other settings ({'; '.join(changed)}); "
                              "choose another hydra.run.dir, or add train.fresh_start=true to discard it")
    if not finished and checkpoint.exists():
        check_readable(checkpoint)
    return finished


def resolved(cfg: DictConfig) -> dict:
    """The run's config as its record and its folder keep it: resolved, plain, credentials hidden."""
    return rec.sanitize(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def remember_config(run_dir: Path, config: dict) -> None:
    """Keep the config that starts the run in its folder (atomically: a resume reads it)."""
    if rank_zero_only.rank != 0:
        return
    rec.write_atomic(run_dir / CONFIG_FILE, json.dumps(rec.sanitize(config), indent=1, default=str))

