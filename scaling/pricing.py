"""The ladder priced before any trial: each scale's N, D and C from its composed config, the
model sizes' throughput measured on this machine, and what the whole study costs."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from scalelab.platform.model import GPTShape
from scalelab.platform.throughput import tokens_per_second
from scalelab.record import flops_per_token, non_embedding_params
from scalelab.scaling.settings import ScalingSettings
from scalelab.sweeps.plan import Plan, Scale

log = logging.getLogger(__name__)

RUN_OVERHEAD_S = 1.5  # per run, beyond its training steps: set-up, evaluations, record, logger


@dataclass
class PricedScale:
    """One scale of the ladder: its size, its budget and its measured throughput."""

    scale: Scale
    N: float
    D: float
    C: float
    width: int
    tokens_per_second: float = float("nan")

    @property
    def seconds(self) -> float:
        return self.D / self.tokens_per_second + RUN_OVERHEAD_S


def priced_scales(plan: Plan, compose: Callable[[list[str]], Any]) -> list[PricedScale]:
    """The scales with N, D and C from each one's composed config, in ascending C (throughput
    not yet measured)."""
    out = []
    for scale in plan.scales:
        cfg = compose([*plan.fixed, *scale.overrides])
        m, t = cfg.model, cfg.train
        n = float(non_embedding_params(int(m.width), int(m.depth)))
        d = float(t.tokens_per_param * n if t.tokens_per_param is not None else t.tokens)
        steps = int(d // (t.batch_size * m.context))
        d = float(steps * t.batch_size * m.context)  # what the run trains: whole steps
        out.append(PricedScale(scale, n, d, d * flops_per_token(n, int(m.depth), int(m.context), int(m.width)),
                               int(m.width)))
    return sorted(out, key=lambda p: p.C)


def families(points: list[PricedScale], branches: bool) -> list[tuple[PricedScale, list[PricedScale]]]:
    """(the scale trained, the scales its runs branch into) in ascending compute. Without
    `branches` each scale is trained; with it, each model size's largest budget, its smaller
    budgets being branches."""
    if not branches:
        return [(p, []) for p in points]
    sizes: dict[float, list[PricedScale]] = {}
    for p in points:
        sizes.setdefault(p.N, []).append(p)
    out = []
    for same in sizes.values():
        largest = max(same, key=lambda p: p.D)
        out.append((largest, sorted((p for p in same if p is not largest), key=lambda p: p.D)))
    return sorted(out, key=lambda family: family[0].C)


class Throughput:
    """Training tokens per second of the family's model at each width, measured once here."""

    def __init__(self, job: Any, threads: int) -> None:
        self.job, self.threads = job, threads
        self.by_width: dict[int, float] = {}

    def __call__(self, width: int) -> float:
        if width not in self.by_width:
            m = self.job.model
            shape = GPTShape(width, int(m.depth), int(m.heads), int(m.context), int(self.job.data.vocab_size),
                             init_std=float(m.init_std))
            self.by_width[width] = tokens_per_second(shape, int(self.job.train.batch_size), self.threads)
        return self.by_width[width]


def guess_target(points: list[PricedScale], target_ratio: float) -> float:
    """The target budget before any fit: N = target_ratio x the largest N, trained for the
    ladder's median tokens per parameter."""
    ratios = sorted(p.D / p.N for p in points)
    n = target_ratio * max(p.N for p in points)
    return 6.0 * n * n * ratios[len(ratios) // 2]


def price(points: list[PricedScale], plan: Plan, s: ScalingSettings, speed: Throughput, study_name: str) -> None:
    """Measure each model size's throughput and log the study's size, FLOPs and wall time."""
    for p in points:
        p.tokens_per_second = speed(p.width)
    runs_per_scale = plan.n_trials + s.seeds
    decay = float(plan.job_config.schedule.decay_fraction)  # a branch's compute beyond its trunk's
    lines = [f"scaling study {study_name}: {len(points)} scales in ascending compute, "
             f"{plan.n_trials} trials + {s.seeds} seed runs each"]
    flops = seconds = 0.0
    for k, (p, branched) in enumerate(families(points, s.branches)):
        how = "law-guided range" if s.guide and k >= s.wide_scales else "configured range"
        lines.append(f"  {p.scale.name}: N={p.N:.4g} D={p.D:.4g} C={p.C:.4g}  "
                     f"{p.tokens_per_second:,.0f} tokens/s  {runs_per_scale * p.seconds:.0f} s  ({how})")
        flops += runs_per_scale * p.C
        seconds += runs_per_scale * p.seconds
        for b in branched:
            cooldown = decay * b.C
            cost = decay * (b.seconds - RUN_OVERHEAD_S) + RUN_OVERHEAD_S
            lines.append(f"    branch {b.scale.name}: D={b.D:.4g} C={b.C:.4g}, a cooldown of "
                         f"{cooldown:.4g} FLOPs per run  {runs_per_scale * cost:.0f} s")
            flops += runs_per_scale * cooldown
            seconds += runs_per_scale * cost
    if s.verify:
        n_runs = 3 * s.verify_seeds + 2
        c = s.target_C or guess_target(points, s.target_ratio)
        top = max(points, key=lambda p: p.N)
        # priced at the largest ladder model's FLOPs per second; the fit decides the size
        flops_per_s = top.tokens_per_second * top.C / top.D
        lines.append(f"  target: {n_runs} runs at C={c:.4g} (estimated; the fitted laws choose it), "
                     f"about {n_runs * (c / flops_per_s + RUN_OVERHEAD_S):.0f} s")
        flops += n_runs * c
        seconds += n_runs * (c / flops_per_s + RUN_OVERHEAD_S)
    lines.append(f"  total: {flops:.3g} FLOPs, about {seconds / 60:.1f} min at the measured throughput "
                 f"({speed.threads} thread(s) per run)")
    for line in lines:
        log.info(line)
