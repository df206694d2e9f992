"""The `hydra/sweeper/sampler` config group, and what a sampler needs beyond its `_target_`.

The options and their defaults are hydra-optuna-sweeper's: `tpe`, `random`, `cmaes`, `nsgaii`,
`qmc`, `gp` and `grid` (`hydra/sweeper/sampler=random`, or `override hydra/sweeper/sampler: random`
in a defaults list), plus `motpe`, which is refused since Optuna 4.0 removed MOTPESampler. With no
option chosen the sweeper keeps its own default, TPE with seed 0.

- `grid`: without an explicit `search_space` the grid is built from the discrete params (each
  choice, each range), and a study's budget is at most the number of grid points;
- a sampler whose package is optional (CMA-ES needs `cmaes`) is refused in one line when the
  package is missing, before any trial, instead of failing at its first sample.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from scalelab.sweeps.config import SweepError

GROUP = "hydra/sweeper/sampler"
GRID_TARGET = "optuna.samplers.GridSampler"
# Optuna's samplers that import a package only at their first sample, by class name.
OPTIONAL_PACKAGES = {"CmaEsSampler": ("cmaes",), "GPSampler": ("torch", "scipy"), "QMCSampler": ("scipy",)}
REMOVED = {
    "MOTPESampler": "was removed in Optuna 4.0: use optuna.samplers.TPESampler (hydra/sweeper/sampler=tpe), "
                    "which handles several objectives",
}


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    warn_independent_sampling: Optional[bool] = None


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConf:
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    x0: Optional[Dict[str, Any]] = None
    sigma0: Optional[float] = None
    independent_sampler: Optional[Any] = None
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: Optional[Any] = None
    # Upstream's 2 has had no effect since Optuna 4.4 and only warns; -1 is Optuna's "unset".
    inc_popsize: int = -1
    use_separable_cma: bool = False
    source_trials: Optional[Any] = None


@dataclass
class NSGAIISamplerConf:
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: Optional[int] = None
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    constraints_func: Optional[Any] = None


@dataclass
class QMCSamplerConf:
    _target_: str = "optuna.samplers.QMCSampler"
    seed: Optional[int] = None
    qmc_type: str = "sobol"
    scramble: bool = False
    independent_sampler: Optional[Any] = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class GPSamplerConf:
    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    independent_sampler: Optional[Any] = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    constraints_func: Optional[Any] = None
    warn_independent_sampling: bool = True


@dataclass
class GridSamplerConf:
    _target_: str = GRID_TARGET
    # null: built from the params' choices and ranges (`grid_search_space`)
    search_space: Optional[Dict[str, Any]] = None
    seed: Optional[int] = None


@dataclass
class MOTPESamplerConf:
    _target_: str = "optuna.samplers.MOTPESampler"  # refused by `check`, with what to use instead


OPTIONS = {"tpe": TPESamplerConf, "random": RandomSamplerConf, "cmaes": CmaEsSamplerConf,
           "nsgaii": NSGAIISamplerConf, "qmc": QMCSamplerConf, "gp": GPSamplerConf, "grid": GridSamplerConf,
           "motpe": MOTPESamplerConf}


def _class_name(target: str) -> Optional[str]:
    """The class name of an Optuna sampler target (`optuna.samplers.X` or a submodule's), else None."""
    return target.rsplit(".", 1)[-1] if target.startswith("optuna.") else None


def check(cfg: Optional[Mapping[str, Any]]) -> None:
    """Refuse a sampler Optuna removed, or one whose optional package is not installed."""
    if cfg is None:
        return
    target = str(cfg.get("_target_", ""))
    name = _class_name(target)
    if name in REMOVED:
        raise SweepError(f"sampler {target} {REMOVED[name]}")
    missing = [p for p in OPTIONAL_PACKAGES.get(name or "", ()) if importlib.util.find_spec(p) is None]
    if missing:
        raise SweepError(f"sampler {target} needs the package '{missing[0]}', which is not installed "
                         f"(pip install {missing[0]})")


def is_grid(cfg: Optional[Mapping[str, Any]]) -> bool:
    return cfg is not None and _class_name(str(cfg.get("_target_", ""))) == "GridSampler"


def grid_values(name: str, distribution: BaseDistribution) -> list:
    """Every value of a discrete distribution, in order: a choice's values, a range's points."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution):
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        n = int(math.floor((distribution.high - distribution.low) / distribution.step + 1e-9))
        return [distribution.low + i * distribution.step for i in range(n + 1)]
    raise SweepError(f"grid sampler: params.{name} is a continuous interval; a grid needs choice(...) or "
                     "range(...), or an explicit hydra.sweeper.sampler.search_space")


def grid_search_space(distributions: Mapping[str, BaseDistribution]) -> dict[str, list]:
    """The grid of a search space: every value of each parameter."""
    return {name: grid_values(name, d) for name, d in distributions.items()}


def resolve(cfg: Any, distributions: Mapping[str, BaseDistribution]) -> Any:
    """The sampler config to build studies with: a grid's `search_space` filled in from the params
    where it is not given (and upstream's `_partial_`, which left it to be filled, dropped)."""
    if not is_grid(cfg):
        return cfg
    cfg = {k: v for k, v in cfg.items() if k != "_partial_"}
    if cfg.get("search_space") is None:
        if not distributions:
            raise SweepError("grid sampler: no params to build the grid from (give choice(...) or range(...) "
                             "params, or hydra.sweeper.sampler.search_space)")
        cfg["search_space"] = grid_search_space(distributions)
    missing = [name for name in distributions if name not in cfg["search_space"]]
    if missing:
        raise SweepError(f"grid sampler: search_space has no values for {', '.join(missing)}")
    return cfg


def grid_size(cfg: Any) -> Optional[int]:
    """The number of points of a grid sampler's config (after `resolve`); None for other samplers."""
    if not is_grid(cfg):
        return None
    return math.prod(len(values) for values in cfg["search_space"].values())
