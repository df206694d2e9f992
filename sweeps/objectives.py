"""A sweep's `objectives`, dotted paths into each trial's run.json, checked before any trial.

Each must name a number the record holds: a field of its `metrics` or its `scale`
(`scalelab.record.METRICS`, `SCALE`), an `hparams` entry (`scalelab.record.HPARAMS` or a searched
config path) or a `config` path, both holding a number in the job config. In the training run's
own config, a field its runs write as null whatever they do (`metrics.mfu` on a CPU) is refused
too. Either way every trial would FAIL with a missing objective, after training.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from omegaconf import OmegaConf

from scalelab.record import HPARAMS, METRICS, MOE_METRICS, MOE_SCALE, SCALE
from scalelab.sweeps.config import SweepError

SECTIONS = {"metrics": METRICS + MOE_METRICS, "scale": SCALE + MOE_SCALE}
_ABSENT = object()

# Fields a training run writes as null for the whole of its config: path -> (null for cfg?, why).
# mfu divides by the devices' peak FLOP/s, which a CPU has none of (scalelab.platform.mfu).
ALWAYS_NULL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "metrics.mfu": (lambda cfg: cfg.trainer.accelerator == "cpu" and cfg.trainer.peak_flops is None,
                    "a run with trainer.accelerator=cpu has no peak FLOP/s to divide by; train on a GPU "
                    "or set trainer.peak_flops"),
    "metrics.compile_seconds": (lambda cfg: not cfg.train.compile,
                                "only a run with train.compile=true records it"),
}
_DENSE = (lambda cfg: not cfg.model.moe.experts, "only a mixture-of-experts run (model.moe.experts > 0) records it")
ALWAYS_NULL.update({f"metrics.{name}": _DENSE for name in MOE_METRICS} | {f"scale.{name}": _DENSE for name in MOE_SCALE})


def _number_at(job_config: Any, path: str) -> bool:
    value = OmegaConf.select(job_config, path, default=_ABSENT, throw_on_missing=False)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def names_a_number(path: str, job_config: Any, searched: Sequence[str] = ()) -> bool:
    """Whether `path` names a number of the run.json of a job with config `job_config`."""
    section, _, rest = path.partition(".")
    if section in SECTIONS:
        return rest in SECTIONS[section]
    if section == "hparams":
        return (rest in HPARAMS or rest in searched) and _number_at(job_config, HPARAMS.get(rest, rest))
    return section == "config" and _number_at(job_config, rest)


def check_paths(objectives: Sequence[str], job_config: Any, searched: Sequence[str] = (),
                training: bool = False) -> None:
    """Refuse an objective no trial can report; `training`: `job_config` is the training run's."""
    for path in objectives:
        if not names_a_number(path, job_config, searched):
            section = path.partition(".")[0]
            known = (f"{section} has {', '.join(SECTIONS[section])}" if section in SECTIONS else
                     "a path starts with metrics., scale., or hparams. or config. and a number of the job config")
            raise SweepError(f"objectives: {path} names no number in run.json; {known}")
        null, why = ALWAYS_NULL.get(path, (None, ""))
        if training and null is not None and null(job_config):
            raise SweepError(f"objectives: {path} is null in every run of this sweep ({why}), so every trial "
                             "would fail")
