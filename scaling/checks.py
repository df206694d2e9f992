"""Every problem a scaling study's settings or its ladder show, as a SweepError (one line, exit
2), before any trial."""
from __future__ import annotations

from optuna.distributions import FloatDistribution

from scalelab.platform.branches import check_branch_schedule
from scalelab.platform.errors import ConfigError
from scalelab.scaling.guidance import LR
from scalelab.scaling.pricing import PricedScale, families
from scalelab.scaling.settings import ScalingSettings
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.plan import Plan


def check_settings(plan: Plan, s: ScalingSettings) -> None:
    """What the settings and the job config alone show, before the scales' configs are composed
    (the ranges of `s` itself were checked when it was read)."""
    if not plan.reports:
        raise SweepError("a scaling study trains scalelab's own runs: the job config has no `trial` node")
    lr = plan.space.distributions.get(LR)
    if not isinstance(lr, FloatDistribution) or not lr.log:
        shown = "not searched" if lr is None else f"searched as {type(lr).__name__}"
        raise SweepError(f"a scaling study moves the search range of {LR} to the optimum the laws "
                         f"predict, so {LR} must be searched as tag(log, interval(a, b)); it is {shown}")
    job = plan.job_config
    if s.transfer and job.model.get("parametrization") != "mup":
        raise SweepError("scaling.transfer=true carries each budget's best learning rate to wider models, "
                         "which holds under µP only: add model.parametrization=mup model.base_width=W")
    if job.data.get("vocab_size") is None:  # the study prices its models, which needs the vocabulary
        raise SweepError(f"data.dir={job.data.get('dir')}: no readable meta.json gives the vocabulary; make the "
                         "folder with `scalelab data prepare ... --out DIR`, or set data.vocab_size")
    if s.branches:
        try:
            check_branch_schedule(job.schedule)
        except ConfigError as e:
            raise SweepError(f"scaling.branches=true forks each model size's smaller budgets off its largest "
                             f"run: {e}") from None
    if s.target_N is not None and s.target_C is None:
        raise SweepError("scaling.target_N needs scaling.target_C: the size to verify at a given budget")


def check_ladder(points: list[PricedScale], s: ScalingSettings) -> None:
    """What the ladder's scales show."""
    # `auto` chooses the form of L(N, D) by fitting all but the largest model size: at least
    # 5 scales there (4-parameter forms), over 2 sizes and 3 token budgets (with 2, B/D^beta
    # is any step between them: beta is not identified)
    rest = [p for p in points if p.N < max(q.N for q in points)]
    if len(rest) < 5 or len({p.N for p in rest}) < 2 or len({p.D for p in rest}) < 3:
        raise SweepError(
            f"the ladder has {len({p.N for p in points})} model size(s) and {len({p.D for p in points})} token "
            f"budget(s); the L(N, D) fit holds out the largest size and needs 5 scales over at least 2 sizes "
            "and 3 budgets below it (e.g. model.width=12,16,24 train.tokens=1e5,2e5,4e5)")
    trained = len(families(points, s.branches))
    if trained < s.wide_scales + 1:
        raise SweepError(f"the ladder trains {trained} scales; scaling.wide_scales={s.wide_scales} leaves none "
                         "for the law-guided search")
    largest = max(p.C for p in points)
    if s.target_C is not None and s.target_C <= largest:
        raise SweepError(f"scaling.target_C={s.target_C:g} is not larger than the ladder's largest budget "
                         f"C={largest:.4g}: the prediction must extrapolate")
