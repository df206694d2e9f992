"""Optuna samplers and pruners from their `_target_` configs, for the sweeper and its jobs.

The sweeper builds a sampler and a pruner for each study. A job decides by itself whether to
stop, so it needs the same pruner, built from the storage alone: the sweeper leaves the
pruner's config on the study as a user attribute (`PRUNER_ATTR`), and the job reads it back.
"""
from __future__ import annotations

from typing import Any

import optuna
from hydra.utils import instantiate

from scalelab.messages import first_line
from scalelab.sweeps import samplers
from scalelab.sweeps.config import SweepError

PRUNER_ATTR = "scalelab:pruner"
_BASES = {"sampler": optuna.samplers.BaseSampler, "pruner": optuna.pruners.BasePruner}


def normalize(kind: str, cfg: Any) -> dict | None:
    """`cfg` as a `_target_` mapping (a bare class path is accepted), or None."""
    if cfg is None:
        return None
    if isinstance(cfg, str):
        return {"_target_": cfg}
    if not isinstance(cfg, dict) or "_target_" not in cfg:
        raise SweepError(f"{kind} must be null or a mapping with `_target_`, got {cfg!r}")
    return cfg


def build(kind: str, cfg: Any) -> Any:
    """A new `kind` ("sampler" or "pruner") from `cfg`.

    No config means Optuna's default sampler (None, for `create_study`) and no pruning. A grid
    sampler's config is built after `samplers.resolve` has filled in its grid.
    """
    cfg = normalize(kind, cfg)
    if cfg is None:
        return optuna.pruners.NopPruner() if kind == "pruner" else None
    if kind == "sampler":
        samplers.check(cfg)
    try:
        built = instantiate(cfg)
    except Exception as e:  # noqa: BLE001 - any failure of a user's class is bad input
        raise SweepError(f"cannot create {kind} {cfg['_target_']!r}: {first_line(e.__cause__ or e)}") from None
    if not isinstance(built, _BASES[kind]):
        raise SweepError(f"{kind} {cfg['_target_']!r} is not an Optuna {kind}")
    return built


def leave_pruner_config(study: optuna.Study, cfg: Any) -> None:
    """Store the pruner's config on `study` for its jobs (written only when it changed)."""
    cfg = normalize("pruner", cfg)
    if study.user_attrs.get(PRUNER_ATTR) != cfg:
        study.set_user_attr(PRUNER_ATTR, cfg)


def stored_pruner(storage: Any, study_name: str) -> optuna.pruners.BasePruner:
    """The pruner the sweeper left on the study `study_name`."""
    study_id = storage.get_study_id_from_name(study_name)
    return build("pruner", storage.get_study_user_attrs(study_id).get(PRUNER_ATTR))
