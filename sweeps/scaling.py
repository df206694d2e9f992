"""A ladder run as one scaling study: ladder -> laws -> law-guided search -> predict -> verify.

With `hydra.sweeper.loop.enabled` (the `ladder` preset) the sweeper, instead of running each
scale's study on its own:

1. prices the study before any trial: N, D, C per scale, the trials, the total FLOPs and a wall
   time from each model size's throughput measured here (`scalelab.platform.throughput`);
2. runs the scales in ascending compute. The first `wide_scales` search the configured range;
   each later one searches a range centred on the lr law fitted to the scales before it
   (`scalelab.analysis.ladder.guided_range`), whose prediction is the study's first trial. The
   range and why are the study's user attributes (`search_range`) and each run's
   `trial.search_range`. With `transfer` (µP only), a scale wider than its budget's smallest
   width runs one trial, at that smallest width's best rate. With `branches` (schedule=wsd),
   each model size trains only its largest budget, and every run forks a cooldown branch at each
   smaller budget of that size: those scales' runs, at the same learning rates, for the price of
   their cooldowns. After each study, its best trial runs again with `seeds` more seeds;
3. fits L(N, D) (`auto`) and lr* (and bs*) on every scale, with bootstrap intervals, into
   `fits/loss.json` and `fits/hparams.json` (files `scalelab predict` reads);
4. predicts the compute-optimal model at the target budget, trains it and its IsoFLOP neighbours
   (N/2, 2N) with `verify_seeds` seeds, and the lr scan (predicted lr / lr_scan and x lr_scan),
   then writes `verdict.json` in the sweep folder and logs the verdict.

Everything after the trials is a function of the stored records (`scalelab.analysis.ladder`):
a killed study is rerun with the same command; a finished scale is not run again, a started
one keeps its stored range, and the next range is refitted from what is stored.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from scalelab.analysis import ladder
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.laws import HparamsLaw
from scalelab.analysis.table import load_table
from scalelab.platform.threads import thread_count
from scalelab.record import flops_per_token, non_embedding_params, sanitize, write_atomic
from scalelab.sweeps.config import ScalingLoopConf, SweepError
from scalelab.sweeps.plan import Plan, Scale
from scalelab.sweeps.search_space import SearchSpace, format_value

log = logging.getLogger(__name__)

LR, BATCH = "optim.lr", "train.batch_size"
QUANTITY = {LR: "lr", BATCH: "bs"}
RANGE_ATTR = "search_range"
RUN_OVERHEAD_S = 1.5  # per run, beyond its training steps: set-up, evaluations, record, logger


@dataclass
class Point:
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


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merged(base: list[str], extra: list[str]) -> list[str]:
    """`base` overrides with those of the keys `extra` sets replaced by `extra`."""
    keys = {_key(o) for o in extra}
    return [o for o in base if _key(o) not in keys] + extra


class ScalingLoop:
    """Runs one scaling study through its `sweeper` (see the module docstring)."""

    def __init__(self, sweeper: Any, plan: Plan, storage: Any, heartbeat: Any) -> None:
        self.sweeper, self.plan, self.storage, self.heartbeat = sweeper, plan, storage, heartbeat
        self.loop: ScalingLoopConf = sweeper.settings.loop
        self.study_name = sweeper.settings.study_name
        self.sweep_dir = Path(str(sweeper.config.hydra.sweep.dir)).resolve()
        job = plan.job_config
        self.depth, self.heads, self.context = int(job.model.depth), int(job.model.heads), int(job.model.context)
        self.guided = [name for name in (LR, BATCH) if name in plan.space.distributions]
        self.threads = thread_count(job.trainer.threads)
        self.speed: dict[int, float] = {}  # tokens per second by width

    # ------------------------------------------------------------------ before any trial
    def check_settings(self) -> None:
        """Every problem the settings alone show, as a SweepError (exit 2, no trial), before the
        scales' configs are composed."""
        s = self.loop
        for name, value, ok, allowed in (
                ("wide_scales", s.wide_scales, s.wide_scales >= 2, "at least 2 (the lr law needs two budgets)"),
                ("floor", s.floor, s.floor > 1, "above 1"), ("seeds", s.seeds, s.seeds >= 0, "at least 0"),
                ("target_ratio", s.target_ratio, s.target_ratio > 1, "above 1"),
                ("max_target_ratio", s.max_target_ratio, s.max_target_ratio > 1, "above 1"),
                ("verify_seeds", s.verify_seeds, s.verify_seeds >= 1, "at least 1"),
                ("lr_scan", s.lr_scan, s.lr_scan > 1, "above 1"), ("bootstrap", s.bootstrap, s.bootstrap >= 0, "at least 0"),
                ("target_N", s.target_N, s.target_N is None or s.target_N > 0, "above 0")):
            if not ok:
                raise SweepError(f"loop.{name}={value} must be {allowed}")
        if not self.plan.reports:
            raise SweepError("a scaling study trains scalelab's own runs: the job config has no `trial` node")
        lr = self.plan.space.distributions.get(LR)
        if not isinstance(lr, FloatDistribution) or not lr.log:
            shown = "not searched" if lr is None else f"searched as {type(lr).__name__}"
            raise SweepError(f"a scaling study moves the search range of {LR} to the optimum the laws "
                             f"predict, so {LR} must be searched as tag(log, interval(a, b)); it is {shown}")
        if s.transfer and self.plan.job_config.model.get("parametrization") != "mup":
            raise SweepError("loop.transfer=true carries each budget's best learning rate to wider models, "
                             "which holds under µP only: add model.parametrization=mup model.base_width=W")
        data = self.plan.job_config.data
        if data.get("vocab_size") is None:  # the study prices its models, which needs the vocabulary
            raise SweepError(f"data.dir={data.get('dir')}: no readable meta.json gives the vocabulary; make the "
                             "folder with `scalelab data prepare ... --out DIR`, or set data.vocab_size")
        if s.branches:
            schedule = self.plan.job_config.schedule
            if schedule.name != "wsd" or 0 < schedule.warmup < 1:
                raise SweepError("loop.branches=true forks each model size's smaller budgets off its largest run, "
                                 "which needs schedule=wsd with schedule.warmup a step count (e.g. "
                                 f"schedule.warmup=20); the schedule is {schedule.name} with warmup {schedule.warmup:g}")
        if s.target_N is not None and s.target_C is None:
            raise SweepError("loop.target_N needs loop.target_C: the size to verify at a given budget")

    def check_ladder(self, points: list[Point]) -> None:
        """Every problem the ladder's scales show, as a SweepError (exit 2, no trial)."""
        s = self.loop
        # `auto` chooses the form of L(N, D) by fitting all but the largest model size: at least
        # 5 scales there (4-parameter forms), over 2 sizes and 3 token budgets (with 2, B/D^beta
        # is any step between them: beta is not identified)
        rest = [p for p in points if p.N < max(q.N for q in points)]
        if len(rest) < 5 or len({p.N for p in rest}) < 2 or len({p.D for p in rest}) < 3:
            raise SweepError(
                f"the ladder has {len({p.N for p in points})} model size(s) and {len({p.D for p in points})} token "
                f"budget(s); the L(N, D) fit holds out the largest size and needs 5 scales over at least 2 sizes "
                "and 3 budgets below it (e.g. model.width=12,16,24 train.tokens=1e5,2e5,4e5)")
        trained = len(self.families(points))
        if trained < s.wide_scales + 1:
            raise SweepError(f"the ladder trains {trained} scales; loop.wide_scales={s.wide_scales} leaves none "
                             "for the law-guided search")
        largest = max(p.C for p in points)
        if s.target_C is not None and s.target_C <= largest:
            raise SweepError(f"loop.target_C={s.target_C:g} is not larger than the ladder's largest budget "
                             f"C={largest:.4g}: the prediction must extrapolate")

    def points(self, compose: Any) -> list[Point]:
        """The scales with N, D and C from each one's composed config, in ascending C."""
        out = []
        for scale in self.plan.scales:
            cfg = compose([*self.plan.fixed, *scale.overrides])
            m, t = cfg.model, cfg.train
            n = float(non_embedding_params(int(m.width), int(m.depth)))
            d = float(t.tokens_per_param * n if t.tokens_per_param is not None else t.tokens)
            steps = int(d // (t.batch_size * m.context))
            d = float(steps * t.batch_size * m.context)  # what the run trains: whole steps
            out.append(Point(scale, n, d, d * flops_per_token(n, int(m.depth), int(m.context), int(m.width)),
                             int(m.width)))
        return sorted(out, key=lambda p: p.C)

    def families(self, points: list[Point]) -> list[tuple[Point, list[Point]]]:
        """(the scale trained, the scales its runs branch into) in ascending compute. Without
        `branches` each scale is trained; with it, each model size's largest budget, its smaller
        budgets being branches."""
        if not self.loop.branches:
            return [(p, []) for p in points]
        sizes: dict[float, list[Point]] = {}
        for p in points:
            sizes.setdefault(p.N, []).append(p)
        out = []
        for same in sizes.values():
            largest = max(same, key=lambda p: p.D)
            out.append((largest, sorted((p for p in same if p is not largest), key=lambda p: p.D)))
        return sorted(out, key=lambda family: family[0].C)

    def _cooldown(self, point: Point) -> float:
        """The compute of a branch at `point`'s budget beyond what its trunk trained: its cooldown."""
        return float(self.plan.job_config.schedule.decay_fraction) * point.C

    def _tokens_per_second(self, width: int) -> float:
        """Training throughput of the family's model of this width here, measured once."""
        from scalelab.platform.model import GPTShape  # torch: only a scaling study measures a model
        from scalelab.platform.throughput import tokens_per_second
        if width not in self.speed:
            job = self.plan.job_config
            shape = GPTShape(width, self.depth, self.heads, self.context, int(job.data.vocab_size),
                             init_std=float(job.model.init_std))
            self.speed[width] = tokens_per_second(shape, int(job.train.batch_size), self.threads)
        return self.speed[width]

    def price(self, points: list[Point]) -> None:
        """Measure each model size's throughput and log the study's size, FLOPs and wall time."""
        for p in points:
            p.tokens_per_second = self._tokens_per_second(p.width)
        runs_per_scale = self.plan.n_trials + self.loop.seeds
        lines = [f"scaling study {self.study_name}: {len(points)} scales in ascending compute, "
                 f"{self.plan.n_trials} trials + {self.loop.seeds} seed runs each"]
        flops = seconds = 0.0
        for k, (p, branched) in enumerate(self.families(points)):
            how = "law-guided range" if self.loop.guide and k >= self.loop.wide_scales else "configured range"
            lines.append(f"  {p.scale.name}: N={p.N:.4g} D={p.D:.4g} C={p.C:.4g}  "
                         f"{p.tokens_per_second:,.0f} tokens/s  {runs_per_scale * p.seconds:.0f} s  ({how})")
            flops += runs_per_scale * p.C
            seconds += runs_per_scale * p.seconds
            for b in branched:
                cost = self._cooldown(b) / b.C * (b.seconds - RUN_OVERHEAD_S) + RUN_OVERHEAD_S
                lines.append(f"    branch {b.scale.name}: D={b.D:.4g} C={b.C:.4g}, a cooldown of "
                             f"{self._cooldown(b):.4g} FLOPs per run  {runs_per_scale * cost:.0f} s")
                flops += runs_per_scale * self._cooldown(b)
                seconds += runs_per_scale * cost
        if self.loop.verify:
            n_runs = 3 * self.loop.verify_seeds + 2
            c = self.loop.target_C or self._guess_target(points)
            top = max(points, key=lambda p: p.N)
            # priced at the largest ladder model's FLOPs per second; the fit decides the size
            flops_per_s = top.tokens_per_second * top.C / top.D
            lines.append(f"  target: {n_runs} runs at C={c:.4g} (estimated; the fitted laws choose it), "
                         f"about {n_runs * (c / flops_per_s + RUN_OVERHEAD_S):.0f} s")
            flops += n_runs * c
            seconds += n_runs * (c / flops_per_s + RUN_OVERHEAD_S)
        lines.append(f"  total: {flops:.3g} FLOPs, about {seconds / 60:.1f} min at the measured throughput "
                     f"({self.threads} thread(s) per run)")
        for line in lines:
            log.info(line)

    def _guess_target(self, points: list[Point]) -> float:
        """The target budget before any fit: N = target_ratio x the largest N, trained for the
        ladder's median tokens per parameter."""
        ratios = sorted(p.D / p.N for p in points)
        n = self.loop.target_ratio * max(p.N for p in points)
        return 6.0 * n * n * ratios[len(ratios) // 2]

    # ------------------------------------------------------------------ the ladder
    def run(self, compose: Any) -> list:
        self.check_settings()
        points = self.points(compose)
        self.check_ladder(points)
        self.price(points)
        returns, before = [], []
        for k, (point, branched) in enumerate(self.families(points)):
            returns += self._run_scale(k, point, before, branched)
            before += sorted([point, *branched], key=lambda p: p.C)
        self.finish(points)
        return returns

    def _table(self):
        try:
            return load_table(self.sweep_dir, statuses=("completed",), quiet=True)
        except AnalysisError:
            return None

    def _ranges(self, k: int, point: Point, before: list[Point]) -> dict[str, ladder.SearchRange]:
        """The search range of each guided hyperparameter at scale `k`, from the scales before it."""
        out = {}
        table = self._table()
        if table is not None:
            done = {(p.N, p.D) for p in before}
            table = table[[(n, d) in done for n, d in zip(table["N"], table["D"])]]
        law, error, optima = None, "no scale has finished", None
        if self.loop.guide and k >= self.loop.wide_scales and table is not None and len(table):
            try:
                law = ladder.hparam_law(table, bootstrap=self.loop.bootstrap)
            except AnalysisError as e:
                error = str(e)
            # each scale's optimum and edge flag, whichever form the law has (or none)
            optima = HparamsLaw("constant", "profile").optima(ladder.search_runs(table))
        for name in self.guided:
            dist = self.plan.space.distributions[name]
            configured = (float(dist.low), float(dist.high))
            if not self.loop.guide:
                out[name] = ladder.SearchRange(name, *configured, "configured range (loop.guide=false)")
                continue
            if k < self.loop.wide_scales:
                out[name] = ladder.SearchRange(name, *configured, f"configured range (scale {k + 1} of the "
                                               f"first {self.loop.wide_scales}, searched wide)")
                continue
            last = None
            if optima is not None and len(optima):
                q = QUANTITY[name]
                row = optima.loc[(optima["C"] - before[-1].C).abs().idxmin()]
                last = {"value": float(row[q]), "edge": row[f"{q}_edge"] if isinstance(row[f"{q}_edge"], str) else None}
            out[name] = ladder.guided_range(name, law, error, point.C, last, configured, self.loop.floor,
                                            QUANTITY[name])
        return out

    def _space(self, ranges: dict[str, ladder.SearchRange]) -> SearchSpace:
        dists = dict(self.plan.space.distributions)
        for name, r in ranges.items():
            old = dists[name]
            if isinstance(old, FloatDistribution):
                dists[name] = FloatDistribution(r.low, r.high, log=True)
            elif isinstance(old, IntDistribution):
                dists[name] = IntDistribution(max(1, math.floor(r.low)), max(1, math.ceil(r.high)), log=True)
        return replace(self.plan.space, distributions=dists)

    def _transfer_source(self, point: Point, before: list[Point]) -> Optional[Point]:
        """Under `loop.transfer`, the scale whose best learning rate this one trains: the smallest
        width at the same budget (run before it, its compute being smaller); None: search."""
        narrower = [p for p in before if p.D == point.D and p.width < point.width]
        return min(narrower, key=lambda p: p.width) if self.loop.transfer and narrower else None

    def _transferred(self, source: Point) -> ladder.SearchRange:
        name = source.scale.study_name(self.study_name)
        done = optuna.load_study(study_name=name, storage=self.storage).get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            raise SweepError(f"loop.transfer: study {name} completed no trial, so it has no learning rate to transfer")
        lr = float(min(done, key=lambda t: t.value).params[LR])
        return ladder.SearchRange(LR, lr, lr, f"transferred (µP): the best rate of {name}, the smallest width "
                                              "at this budget", centre=lr)

    def _run_scale(self, k: int, point: Point, before: list[Point], branched: list[Point]) -> list:
        """Scale `k`'s study (of the scales `before` it), its runs forking into `branched`."""
        scale = point.scale
        name = scale.study_name(self.study_name)
        source = self._transfer_source(point, before)
        forks = [f"schedule.branches=[{','.join(f'{b.D:.0f}' for b in branched)}]"] if branched else []
        # a transferred rate is no optimum of this scale's: the lr law leaves it out
        role = [f"trial.role={ladder.TRANSFER}"] if source is not None else []

        def prepare(study: optuna.Study) -> Plan:
            stored = study.user_attrs.get(RANGE_ATTR)
            if stored and study.get_trials(deepcopy=False):  # a started study keeps its range
                ranges = {n: ladder.SearchRange(**r) for n, r in stored.items()}
            else:
                ranges = self._ranges(k, point, before)
                if source is not None:
                    ranges[LR] = self._transferred(source)
                study.set_user_attr(RANGE_ATTR, {n: r.to_dict() for n, r in ranges.items()})
                centre = {n: r.centre for n, r in ranges.items() if r.centre is not None}
                if centre and not study.get_trials(deepcopy=False):
                    study.enqueue_trial({n: self._fit_into(n, v) for n, v in centre.items()}, skip_if_exists=True)
            for r in ranges.values():
                log.info("study %s: %s", name, r.describe())
            return replace(self.plan, space=self._space(ranges), n_trials=1 if source is not None else self.plan.n_trials,
                           fixed=[*self.plan.fixed, *forks, *role, f"trial.search_range={_quoted(study)}"])

        returns = self.sweeper._run_study(self.plan, self.storage, scale, self.heartbeat, prepare=prepare)
        self._seed_runs(point, name, forks)
        return returns

    def _fit_into(self, name: str, value: float) -> Any:
        return int(round(value)) if isinstance(self.plan.space.distributions[name], IntDistribution) else float(value)

    def _seed_runs(self, point: Point, study_name: str, forks: list[str]) -> None:
        """The best trial of the scale again, with `seeds` other seeds (and its branches)."""
        if not self.loop.seeds:
            return
        study = optuna.load_study(study_name=study_name, storage=self.storage)
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not done:
            log.warning("study %s: no completed trial, so no seed runs", study_name)
            return
        best = min(done, key=lambda t: t.value)
        base = self.plan.job_overrides(point.scale, best.params)
        seed0 = int(self.plan.job_config.train.seed)
        jobs = []
        for s in range(1, self.loop.seeds + 1):
            extra = [f"train.seed={seed0 + s}", "trial.role=seed", f"trial.study_name={format_value(study_name)}",
                     f"trial.search_range={_quoted(study)}"]
            jobs.append((f"{point.scale.folder}/seed_{seed0 + s}", merged(base, [*forks, *extra])))
        self.sweeper.launch_runs(jobs)

    # ------------------------------------------------------------------ after the ladder
    def finish(self, points: list[Point]) -> None:
        table = self._table()
        if table is None:
            raise SweepError("no completed run in the study: nothing to fit")
        cells = ladder.cells(table)
        fits_dir = self.sweep_dir / "fits"
        result: dict[str, Any] = {"study": self.study_name, "scales": self._scales_json(points, cells)}
        try:
            loss_law = ladder.loss_law(cells, bootstrap=self.loop.bootstrap)
        except AnalysisError as e:
            log.error("scaling study %s: L(N, D) cannot be fitted: %s", self.study_name, e)
            result["error"] = f"L(N, D): {e}"
            self._write(result)
            return
        loss_law.save(fits_dir / "loss.json")
        hp = None
        try:
            hp = ladder.hparam_law(table, bootstrap=self.loop.bootstrap)
            hp.save(fits_dir / "hparams.json")
        except AnalysisError as e:
            log.warning("scaling study %s: the lr law cannot be fitted (%s); the target uses the largest "
                        "scale's best lr", self.study_name, e)
        for edge in (hp.metrics_.get("edges", []) if hp else []):
            log.warning("scaling study %s: the best %s at N=%.4g D=%.4g (%.4g) is the %s value tried: an edge, "
                        "left out of the law", self.study_name, edge["quantity"], edge["N"], edge["D"],
                        edge["value"], "largest" if edge["side"] == "high" else "smallest")
        largest = max(p.C for p in points)
        try:
            target = self.loop.target_C or ladder.target_budget(loss_law, max(p.N for p in points),
                                                                self.loop.target_ratio, largest)
            if self.loop.verify and target > self.loop.max_target_ratio * largest:  # it would be trained
                raise AnalysisError(
                    f"the fitted law puts N_opt = {self.loop.target_ratio:g} x the largest N at C={target:.3g}, "
                    f"{target / largest:.3g} x the ladder's largest budget (more than loop.max_target_ratio="
                    f"{self.loop.max_target_ratio:g}): {loss_law.form} with {_params(loss_law)}")
        except AnalysisError as e:
            result.update(laws={"loss": loss_law.to_dict(), "hparams": hp.to_dict() if hp else None},
                          error=f"target: {e}")
            self._write(result)
            raise SweepError(f"{e}; choose the budget with hydra.sweeper.loop.target_C=...") from None
        try:
            prediction = ladder.predict_target(loss_law, hp, target, self.depth, self.heads, self.context,
                                               self.loop.target_N)
        except AnalysisError as e:
            result.update(laws={"loss": loss_law.to_dict(), "hparams": hp.to_dict() if hp else None},
                          error=f"target: {e}")
            self._write(result)
            raise SweepError(f"{e}; choose the model size with hydra.sweeper.loop.target_N=...") from None
        if "lr" not in prediction:
            prediction["lr"] = float(cells.loc[cells["C"].idxmax(), "lr"])
            prediction["lr_note"] = "the best lr of the largest scale (no lr law)"
        noise = ladder.seed_noise(cells)
        result.update(laws={"loss": loss_law.to_dict(), "hparams": hp.to_dict() if hp else None},
                      noise={"seed_sd_relative": noise}, target=prediction)
        log.info("scaling study %s: target C=%.4g: N=%.4g (width %d), D=%.4g, lr=%.4g, predicted loss %.4f "
                 "[%.4f, %.4f]", self.study_name, target, prediction["N"], prediction["width"], prediction["D"],
                 prediction["lr"], prediction["loss"], *prediction["loss_interval"])
        if self.loop.verify:
            self._verification_runs(prediction, points)
            table = self._table()
            result["verdict"] = ladder.verdict(prediction, table, noise)
            for line in ladder.verdict_lines(result["verdict"]):
                log.info("scaling study %s: %s", self.study_name, line)
        self._write(result)

    def _verification_runs(self, prediction: dict[str, Any], points: list[Point]) -> None:
        top = max(points, key=lambda p: p.C)
        study = optuna.load_study(study_name=top.scale.study_name(self.study_name), storage=self.storage)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        # the other searched values (weight decay, say) as the largest scale's best trial had them
        best = min(done, key=lambda t: t.value).params if done else {}
        others = [f"{self.plan.space.keys[n]}={format_value(v)}" for n, v in best.items()
                  if n in self.plan.space.distributions and n not in self.guided]
        base = [*self.plan.fixed, *self.plan.space.fixed, *others]
        seed0 = int(self.plan.job_config.train.seed)
        name = f"{self.study_name}/target"
        lr, shapes = prediction["lr"], prediction["shapes"]
        # (role, shape, lr, seed): the prediction and its neighbours with every seed, the scan with one
        runs = [(role, shapes[role], lr, s) for role in (ladder.OPTIMUM, ladder.HALF, ladder.DOUBLE)
                for s in range(seed0, seed0 + self.loop.verify_seeds)]
        runs += [(role, shapes[ladder.OPTIMUM], rate, seed0)
                 for role, rate in ((ladder.LR_LOW, lr / self.loop.lr_scan), (ladder.LR_HIGH, lr * self.loop.lr_scan))]
        jobs = []
        for role, shape, rate, seed in runs:
            extra = [f"model.width={shape['width']}", f"train.tokens={shape['D']:.6g}", "train.tokens_per_param=null",
                     f"{LR}={format_value(float(rate))}", f"train.seed={seed}", f"trial.role={role}",
                     f"trial.study_name={format_value(name)}"]
            if "batch_size" in prediction and BATCH in self.guided:
                extra.append(f"{BATCH}={int(round(prediction['batch_size']))}")
            jobs.append((f"target/{role}_seed{seed}", merged(base, extra)))
        seconds = sum(shape["D"] / self._tokens_per_second(shape["width"]) + RUN_OVERHEAD_S for _, shape, _, _ in runs)
        log.info("scaling study %s: %d verification runs at C=%.4g, about %.0f s at the measured throughput",
                 self.study_name, len(jobs), prediction["C"], seconds)
        self.sweeper.launch_runs(jobs)

    def _scales_json(self, points: list[Point], cells) -> list[dict[str, Any]]:
        rows = []
        for p in points:
            row: dict[str, Any] = {"name": p.scale.name, "N": p.N, "D": p.D, "C": p.C, "width": p.width}
            try:
                study = optuna.load_study(study_name=p.scale.study_name(self.study_name), storage=self.storage)
                row["search_range"] = study.user_attrs.get(RANGE_ATTR)
            except KeyError:
                row["search_range"] = None
            match = cells[(cells["N"] == p.N) & (cells["D"] == p.D)] if len(cells) else cells
            if len(match):
                c = match.iloc[0]
                row.update(best_lr=c["lr"], best_trial_loss=c["best_trial_loss"], loss=c["loss"],
                           seed_losses=c["seed_losses"], seed_sd=c["seed_sd"], trials=int(c["trials"]))
            rows.append(row)
        return rows

    def _write(self, result: dict[str, Any]) -> None:
        path = self.sweep_dir / ladder.VERDICT_FILE
        write_atomic(path, json.dumps(sanitize(result), indent=2, allow_nan=False))
        log.info("scaling study %s: %s", self.study_name, path)


def _params(law: Any) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in law.params_.items())


def _quoted(study: optuna.Study) -> str:
    """The study's search ranges in words, as one override value."""
    ranges = study.user_attrs.get(RANGE_ATTR) or {}
    return format_value("; ".join(ladder.SearchRange(**r).describe() for r in ranges.values()))
