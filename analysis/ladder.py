"""A scaling study's analysis: what its finished scales say about the next scale and the target.

A scaling study (`sweeps=ladder`) searches the learning rate at each scale of a ladder, in
ascending compute, re-runs each scale's best trial with more seeds, then trains a predicted
configuration at a larger budget. Everything here is a function of the stored run records (their
`trial.role` says what each run is for), so the sweeper between scales, the sweeper at the end
and `scalelab report` afterwards compute the same numbers from the same runs:

- `cells`: per scale, the loss a tuned run reaches: the median over seeds of the best search
  trial's configuration (the best trial alone is biased low by the choice of the best of
  several; now and then a seed stalls on the early plateau for long, and the median is robust
  to one such run), and the seed-to-seed spread;
- `hparam_law`: lr* (and bs*) = a N^alpha D^beta (Step Law's form), a C^alpha (DeepSeek LLM's)
  or a constant, through each scale's optimum from its trials near the best; the form chosen by
  the regret of its lr at each scale left out, a trend kept unless the constant is better beyond
  noise; an optimum at the edge of the values tried is flagged and left out of the fit;
- `guided_range`: the next scale's search range, centred on the law's prediction at its N and D,
  as wide as its bootstrap interval and never narrower than `floor` either side; moved outward,
  past the edge, when the last scale's optimum sat at one;
- `loss_law`, `target_budget`, `realise`: L(N, D) (the `auto` law), the budget whose
  compute-optimal N is `ratio` x the ladder's largest, and the model of the family nearest to it;
- `verdict`: prediction against measurement at the target.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from scalelab.record import FlopConvention, flops_per_token, non_embedding_params

from .errors import AnalysisError
from .laws import AutoLaw, ChinchillaLaw, CurveLaw, HparamsLaw, Law
from .laws.chinchilla import FORMS
from .laws.hparams import NEAR_BEST
from .reach import distrust
from .uncertainty import Interval, combine

VERDICT_FILE = "verdict.json"  # in the study folder
SEED = "seed"
# a µP ladder's wider scale trained at the rate its budget's smallest width found best
# (`scaling.transfer`): a measured loss, but no learning-rate optimum of its own
TRANSFER = "transfer"
# verification runs at the target budget: the predicted optimum, its IsoFLOP neighbours N/2 and
# 2N, and the learning-rate scan around the predicted lr
OPTIMUM, HALF, DOUBLE, LR_LOW, LR_HIGH = "optimum", "half", "double", "lr_low", "lr_high"
TARGET_ROLES = (OPTIMUM, HALF, DOUBLE, LR_LOW, LR_HIGH)
NOISE_SDS = 2.0  # a difference below twice the seed-to-seed spread is inside noise
CURVE = "curve"  # the curve law's name among the loss candidates
# Chosen by the backtest on the reference runs (`benchmarks/backtest.py`): the law that predicts the
# target's loss (where it can be fitted), and the floor of its interval, about twice its median
# |error| (0.97%) on targets twice as wide as any run it was fitted to (95% half-width, relative).
PREDICTOR = CURVE
FLOOR = 0.02
OPTIMUM_KIND = "weighted"  # each scale's optimum from its trials near the best (`hparam_law`)
APART = 0.1  # least spread of log N, log D (about 10%) that tells the steplaw exponents apart


def roles(table: pd.DataFrame) -> pd.Series:
    """Each run's `trial.role` (None for a search trial)."""
    if "role" not in table.columns:
        return pd.Series([None] * len(table), index=table.index, dtype=object)
    return table["role"].where(table["role"].notna(), None)


def _own_flops(frame: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `source`'s attributes and the FLOP convention of its own rows: the same runs
    give the same fits, whatever else (verification runs) the folder holds by then."""
    frame.attrs = {**source.attrs, "flops": FlopConvention.from_points(frame["N"], frame["D"], frame["C"])}
    return frame


def search_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The search trials of the ladder (no role): where a learning rate was searched."""
    return _own_flops(table[roles(table).isna()].copy(), table)


def target_runs(table: pd.DataFrame) -> pd.DataFrame:
    return table[roles(table).isin(TARGET_ROLES)]


def cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per scale (N, D): C, the best search (or transferred) trial's lr and loss, the
    losses of its configuration over seeds (the trial and its `seed` re-runs), their median
    (`loss`) and sd."""
    role = roles(table)
    rows = []
    for (N, D), cell in table[role.isna() | role.isin((SEED, TRANSFER))].groupby(["N", "D"], sort=True):
        search = cell[roles(cell).isna() | (roles(cell) == TRANSFER)]
        if search.empty:
            continue
        best = search.loc[search["loss"].idxmin()]
        repeats = cell[(roles(cell) == SEED) & np.isclose(cell["lr"], best["lr"])]
        losses = [float(best["loss"]), *repeats["loss"].astype(float)]
        rows.append({"N": float(N), "D": float(D), "C": float(best["C"]), "lr": float(best["lr"]),
                     "best_trial_loss": float(best["loss"]), "seed_losses": losses,
                     "loss": float(np.median(losses)),
                     "seed_sd": float(np.std(losses, ddof=1)) if len(losses) > 1 else float("nan"),
                     "trials": int(len(search))})
    return _own_flops(pd.DataFrame(rows, columns=["N", "D", "C", "lr", "best_trial_loss", "seed_losses", "loss",
                                               "seed_sd", "trials"]), table)


def seed_noise(cell_table: pd.DataFrame, largest: bool = False) -> float:
    """Pooled seed-to-seed standard deviation relative to the loss (NaN without repeats).
    `largest`: over the cells of the largest size that has repeats alone, the size nearest a
    target beyond the ladder: the spread falls with size (the default study's widths 32, 48
    and 64 measured 6.4%, 0.7% and 0.7%), so the smallest sizes would speak for a target unlike them."""
    if "seed_losses" not in cell_table or cell_table.empty:
        return float("nan")
    repeated = cell_table[[len(losses) > 1 for losses in cell_table["seed_losses"]]]
    if largest and len(repeated):
        repeated = repeated[repeated["N"] == repeated["N"].max()]
    rel = [np.var(np.asarray(losses) / np.mean(losses), ddof=1) for losses in repeated["seed_losses"]]
    return float(np.sqrt(np.mean(rel))) if rel else float("nan")


def near_tolerance(table: pd.DataFrame) -> float:
    """How far above a scale's best loss a trial still counts as near the best: Step Law's 0.25%,
    or the seed noise (`NOISE_SDS` x the pooled relative seed sd) where the seed runs measure more."""
    noise = seed_noise(cells(table))
    return max(NEAR_BEST, NOISE_SDS * noise) if math.isfinite(noise) else NEAR_BEST


def optima(table: pd.DataFrame) -> pd.DataFrame:
    """Each searched scale's lr (and batch size) optimum from its trials near the best, with the
    edge flags of `HparamsLaw`'s `weighted` optimum (the law's own points)."""
    return HparamsLaw("constant", OPTIMUM_KIND, near_tol=near_tolerance(table)).optima(search_runs(table))


def hparam_law(table: pd.DataFrame, bootstrap: int = 200, seed: int = 0) -> HparamsLaw:
    """lr* (and bs*) as a law of N and D, fitted to each searched scale's `weighted` optimum: the
    mean in log lr of its trials within `near_tolerance` of its best loss, weighted by how close
    they come (of a few trials, the single best is mostly noise). A scale whose best trial is the
    smallest or largest lr it tried is an edge: its optimum may lie beyond, so it is neither
    fitted nor held out below. A searched batch size follows the chosen form through its own
    optima (`HparamsLaw`); the choice is made on lr.

    The form: `steplaw` (a N^alpha D^beta), `deepseek` (a C^alpha) or `constant` (no trend). Each
    candidate is fitted without one scale (N, D) at a time and scored at the scale left out by the
    regret of the lr it predicts there: the loss, relative to the scale's best, read off the
    scale's own trials by linear interpolation over log lr. Where some prediction falls outside
    the lrs its scale tried, the regret cannot be read and every candidate is scored by the
    squared error in log lr against the scale's optimum instead. The form kept is the first of
    steplaw, deepseek, constant whose mean score exceeds the best candidate's by no more than the
    noise of that comparison: one standard error of the mean of the per-scale score differences
    (the spread of the held-out scores; the seed noise is in them). So a slope through a few
    noisy optima is not given up for a constant better by noise alone, and a constant
    that predicts the scales left out better beyond noise wins. The lean is deliberate: where lr*
    truly does not move, a trend with exponents near zero is kept unless the held-out scales show
    the constant better beyond noise. steplaw is a candidate with 4 or more scales inside their
    range whose N and D vary apart with any one left out (`APART`), deepseek with 3 or more;
    below that the fallback and the reason are recorded in `metrics_["selection"]`, as are every
    candidate's scores, their noise and the held-out predictions."""
    runs = search_runs(table)
    tol = near_tolerance(table)
    points = HparamsLaw("constant", OPTIMUM_KIND, near_tol=tol).optima(runs)
    inside = points[points["lr_edge"].isna()].reset_index(drop=True)
    forms, skipped = _candidates(inside)
    selection: dict[str, Any] = {"near_tolerance": tol, "scales_inside": int(len(inside)),
                                 "not_candidates": skipped}
    if len(forms) == 1:
        form = "constant"
        selection["why"] = "fallback to constant, no trend can be fitted: " + "; ".join(skipped.values())
    else:
        form, scores = _select(forms, inside, runs)
        selection.update(scores)
        selection["why"] = _why(form, forms, scores, skipped)
    law = HparamsLaw(form, OPTIMUM_KIND, near_tol=tol).fit(runs, bootstrap=bootstrap, seed=seed, evaluate=False)
    law.metrics_["selection"] = {"form": form, **selection}
    return law


def _candidates(points: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The forms the inside optima support with any one of them held out, and why not the others.
    steplaw needs N and D to vary apart: the least spread of the scales' (log N, log D) in any
    direction at least `APART` (on a ladder with D tied to N, say D = 20N, the two exponents could
    be split any way)."""
    forms, skipped = [], {}
    k = len(points)
    held = [np.delete(np.arange(k), i) for i in range(k)]
    logs = np.log(points[["N", "D"]].to_numpy(float))
    spread = lambda x: np.linalg.svd(x - x.mean(axis=0), compute_uv=False)[-1] / math.sqrt(len(x))  # noqa: E731
    if k < 4:
        skipped["steplaw"] = f"{k} scales inside their range; steplaw needs 4 (3 parameters and one held out)"
    elif min(spread(logs[h]) for h in held) < APART:
        skipped["steplaw"] = ("N and D of the scales inside their range do not vary apart (one size, one budget, "
                              "or D tied to N): the N and D exponents cannot be told apart")
    else:
        forms.append("steplaw")
    if k < 3:
        skipped["deepseek"] = f"{k} scales inside their range; deepseek needs 3 (2 parameters and one held out)"
    elif not all(points["C"].iloc[h].nunique() >= 2 for h in held):
        skipped["deepseek"] = "the scales inside their range, with one held out, share one budget C"
    else:
        forms.append("deepseek")
    return forms + ["constant"], skipped


def _select(forms: list[str], points: pd.DataFrame, runs: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """The form kept (see `hparam_law`) and the leave-one-scale-out scores behind it."""
    trials = dict(iter(runs.groupby(["N", "D"])))
    held_out, regrets, errors = [], {f: [] for f in forms}, {f: [] for f in forms}
    for i in range(len(points)):
        p = points.iloc[i]
        rest = points.drop(points.index[i]).assign(bs_edge=None)  # the choice is lr's
        row: dict[str, Any] = {"N": float(p.N), "D": float(p.D), "C": float(p.C), "optimum_lr": float(p.lr)}
        for form in forms:
            law = HparamsLaw(form, OPTIMUM_KIND)
            law.params_ = law.fit_points(rest)[0]
            lr = float(law.predict(N=p.N, D=p.D, C=p.C)[0])
            errors[form].append(math.log(lr / p.lr) ** 2)
            regrets[form].append(read_regret(trials[(p.N, p.D)], lr))
            row[form] = {"lr": lr, "log_lr_error": math.log(lr / p.lr), "regret": regrets[form][-1]}
        held_out.append(row)
    readable = all(r is not None for rs in regrets.values() for r in rs)
    per_scale = {f: np.asarray(regrets[f] if readable else errors[f], float) for f in forms}
    means = {f: float(v.mean()) for f, v in per_scale.items()}
    best = min(means, key=means.get)
    noise = {f: float(np.std(per_scale[f] - per_scale[best], ddof=1) / math.sqrt(len(points))) for f in forms}
    form = next(f for f in forms if means[f] - means[best] <= noise[f])
    return form, {"metric": "held-out regret" if readable else "held-out squared log-lr error",
                  "scores": means, "noise": noise, "best_score": best,
                  "rmse_log_lr": {f: float(math.sqrt(np.mean(errors[f]))) for f in forms},
                  "held_out": held_out}


def _why(form: str, forms: list[str], scores: dict[str, Any], skipped: dict[str, str]) -> str:
    """The selection in one sentence."""
    metric, means, noise, best = scores["metric"], scores["scores"], scores["noise"], scores["best_score"]
    if form == best:
        text = f"smallest {metric} ({means[form]:.4g}) of {', '.join(forms)}"
    else:
        text = (f"{metric} within noise of the best ({best}): {means[form]:.4g} against "
                f"{means[best]:.4g}, noise {noise[form]:.2g}")
    passed = forms[:forms.index(form)]
    if passed:
        text += "; " + ", ".join(f"{f} is worse beyond noise ({means[f]:.4g}, noise {noise[f]:.2g})" for f in passed)
    if skipped:
        text += "; " + "; ".join(f"not {f}: {why}" for f, why in skipped.items())
    return text


def read_regret(trials: pd.DataFrame, lr: float) -> Optional[float]:
    """The loss at `lr`, relative to the best of `trials` (one scale's), by linear interpolation over
    log lr of the best loss per lr tried; None outside the lrs tried (it cannot be read there)."""
    envelope = trials.groupby("lr")["loss"].min().sort_index()
    x, y = np.log(envelope.index.to_numpy(float)), envelope.to_numpy(float)
    u = math.log(lr)
    if not x[0] - 1e-9 <= u <= x[-1] + 1e-9:
        return None
    return float(np.interp(u, x, y) / y.min() - 1)


def loss_law(cell_table: pd.DataFrame, bootstrap: int = 200, seed: int = 0) -> AutoLaw:
    """L(N, D) through the tuned loss of each scale, the form chosen by held-out extrapolation."""
    return AutoLaw().fit(cell_table, bootstrap=bootstrap, seed=seed)


def best_curves(curves: pd.DataFrame, cell_table: pd.DataFrame) -> pd.DataFrame:
    """The curve points (`scalelab.analysis.curves`) of each scale's best configuration: its
    best trial and that trial's seed re-runs (the runs of the scale at the best trial's lr)."""
    best = {(float(c.N), float(c.D)): c.lr for c in cell_table.itertuples()}
    rate = np.array([best.get((float(n), float(d)), np.nan) for n, d in zip(curves["N"], curves["D"])])
    return curves[np.isclose(curves["lr_peak"].to_numpy(float), rate)]


def curve_law(curves: pd.DataFrame, cell_table: pd.DataFrame, bootstrap: int = 200, seed: int = 0) -> CurveLaw:
    """The curve law through every point past the transient of each scale's best configuration."""
    return CurveLaw().fit(best_curves(curves, cell_table), bootstrap=bootstrap, seed=seed)


def loss_candidates(loss: AutoLaw, cell_table: pd.DataFrame, curves: pd.DataFrame,
                    bootstrap: int = 200, seed: int = 0) -> tuple[dict[str, Law], dict[str, str]]:
    """Every law of the loss that could predict the target: `loss` (the `auto` choice), the other
    Chinchilla forms through the same cells, and the curve law through the best configurations'
    curves (bootstrapped: it may be the one the study uses). Also, by name, why a law could not
    be fitted."""
    laws: dict[str, Law] = {f"final {loss.variant}": loss}
    failed: dict[str, str] = {}
    for form in FORMS:
        if form != loss.variant:
            try:
                laws[f"final {form}"] = ChinchillaLaw(form).fit(cell_table)
            except AnalysisError as e:
                failed[f"final {form}"] = str(e)
    try:
        laws[CURVE] = curve_law(curves, cell_table, bootstrap=bootstrap, seed=seed)
    except AnalysisError as e:
        failed[CURVE] = str(e)
    return laws, failed


def target_loss(N: float, D: float, laws: dict[str, Law], chosen: str, seed_sd: float, floor: float) -> Interval:
    """The loss of a run of N parameters and D tokens: the `chosen` law's prediction, its
    interval from every source of error (`scalelab.analysis.uncertainty`)."""
    law = laws[chosen]
    others = {name: float(other.predict(N, D)) for name, other in laws.items() if name != chosen}
    return combine(float(law.predict(N, D)), law.predict_interval(N, D), others, seed_sd, floor,
                   distrust(law, N=N, D=D))


def predict_losses(prediction: dict[str, Any], laws: dict[str, Law], seed_sd: float) -> None:
    """Each shape's loss in `prediction` (`predict_target`'s) by the law the backtest chose
    where it could be fitted, with the interval of every source of error; the target's too."""
    chosen = PREDICTOR if PREDICTOR in laws else next(iter(laws))
    for shape in prediction["shapes"].values():
        iv = target_loss(shape["N"], shape["D"], laws, chosen, seed_sd, FLOOR)
        shape.update(loss=iv.loss, loss_interval=[iv.lo, iv.hi], uncertainty=iv.to_dict())
    best = prediction["shapes"][OPTIMUM]
    prediction.update(loss=best["loss"], loss_interval=best["loss_interval"], uncertainty=best["uncertainty"],
                      predictor=chosen)


@dataclass
class SearchRange:
    """One searched hyperparameter's range at one scale, and why it is what it is."""

    name: str  # config path, e.g. optim.lr
    low: float
    high: float
    reason: str
    centre: Optional[float] = None  # the law's prediction (enqueued as the first trial)
    interval: Optional[list[float]] = None  # the law's 95% interval at this scale

    def describe(self) -> str:
        return f"{self.name} in [{self.low:.4g}, {self.high:.4g}] (log): {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guided_range(name: str, law: Optional[HparamsLaw], law_error: Optional[str], C: float,
                 last: Optional[dict], configured: tuple[float, float], floor: float,
                 quantity: str = "lr", N: Optional[float] = None, D: Optional[float] = None) -> SearchRange:
    """The range of hyperparameter `name` at the scale (`N`, `D`) of budget `C` (see the module
    docstring; a `steplaw` law needs N and D). `last` is the previous scale's optimum (`value`,
    `edge`: None, "low" or "high")."""
    edge = last.get("edge") if last else None
    centre = interval = None
    if law is not None:
        lr, bs = law.predict(N=N, D=D, C=C)
        centre = float(lr if quantity == "lr" else bs)
        lr_i, bs_i = law.predict_interval(N=N, D=D, C=C)
        interval = [float(v) for v in (lr_i if quantity == "lr" else bs_i)]
        # as wide as the interval, at least x floor and at most as wide as the configured range
        widest = math.sqrt(configured[1] / configured[0])
        low = max(min(interval[0], centre / floor), centre / widest)
        high = min(max(interval[1], centre * floor), centre * widest)
        edges = sum(e["quantity"] == quantity for e in law.metrics_.get("edges", []))
        reason = (f"law-guided: {quantity}* = {centre:.4g} from {law.form.split('; ')[quantity != 'lr']} fitted to "
                  f"{law.n_points_ - edges} scales ({edges} edge optima left out), 95% interval "
                  f"[{interval[0]:.4g}, {interval[1]:.4g}], at least x{floor:g} and at most x{widest:.3g} "
                  "either side")
    else:
        low, high = configured
        reason = f"configured range: no {quantity} law yet ({law_error})"
    if edge is not None:
        value = float(last["value"])
        # past the edge: a range reaching a factor floor^2 beyond the best value tried
        out_low, out_high = (value / floor, value * floor ** 2) if edge == "high" else (value / floor ** 2, value * floor)
        low, high = min(low, out_low), max(high, out_high)
        if centre is None:
            centre = value * (floor if edge == "high" else 1 / floor)
        reason += (f"; moved outward: the last scale's best {quantity} {value:.4g} was the "
                   f"{'largest' if edge == 'high' else 'smallest'} it tried")
    return SearchRange(name, float(low), float(high), reason, centre, interval)


def target_budget(law: AutoLaw, N_max: float, ratio: float, C_min: float) -> float:
    """The budget C whose compute-optimal N is `ratio` x `N_max` (bisection in log C)."""
    goal = math.log(ratio * N_max)
    lo, hi = math.log(C_min), math.log(C_min) + 60.0
    n_at = lambda logc: math.log(float(law.compute_optimal(math.exp(logc))[0]))  # noqa: E731
    if n_at(hi) < goal:
        raise AnalysisError(f"the fitted law's compute-optimal N stays below {ratio:g} x {N_max:.4g} "
                            f"for every budget up to {math.exp(hi):.3g} FLOPs; set the target budget")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if n_at(mid) < goal else (lo, mid)
    return math.exp(hi)


@dataclass
class Shape:
    """A model of the study's family (fixed depth, heads, context; the width varies) at budget C."""

    width: int
    N: float
    D: float
    C: float

    @classmethod
    def at_width(cls, width: int, C: float, depth: int, context: int) -> "Shape":
        n = float(non_embedding_params(width, depth))
        return cls(width, n, C / flops_per_token(n, depth, context, width), C)

    @staticmethod
    def nearest_width(N: float, depth: int, heads: int) -> int:
        """The width (a multiple of `heads`) whose N is nearest to `N` in log."""
        widths = np.arange(heads, heads * (int(math.sqrt(N) / heads) + 8), heads)
        sizes = np.array([non_embedding_params(int(w), depth) for w in widths], float)
        return int(widths[int(np.argmin(np.abs(np.log(sizes) - math.log(N))))])


def isoflop_shapes(N: float, C: float, depth: int, heads: int, context: int) -> dict[str, Shape]:
    """The family's models nearest to N, N/2 and 2N, all trained for C; the neighbours are
    always a smaller and a larger width than the optimum's."""
    w = Shape.nearest_width(N, depth, heads)
    half = min(Shape.nearest_width(N / 2, depth, heads), w - heads)
    double = max(Shape.nearest_width(2 * N, depth, heads), w + heads)
    if half < heads:
        raise AnalysisError(f"the predicted compute-optimal N={N:.4g} is the family's smallest model "
                            f"(width {w}): it has no smaller IsoFLOP neighbour")
    return {role: Shape.at_width(width, C, depth, context)
            for role, width in ((OPTIMUM, w), (HALF, half), (DOUBLE, double))}


def predict_target(loss: AutoLaw, hp: Optional[HparamsLaw], C: float, depth: int, heads: int,
                   context: int, N: Optional[float] = None) -> dict[str, Any]:
    """The compute-optimal model at C (or the model of size `N`, where given), realised in the
    family (fixed depth, heads and context; the nearest width), its lr and predicted loss with
    95% intervals, and its IsoFLOP neighbours N/2 and 2N."""
    n_opt, d_opt = loss.compute_optimal(C)
    n_int, _ = loss.compute_optimal_interval(C)
    shapes = isoflop_shapes(float(N or n_opt), C, depth, heads, context)
    out: dict[str, Any] = {"C": C, "N_opt": float(n_opt), "D_opt": float(d_opt), "N_opt_interval": n_int,
                           "shapes": {role: asdict(s) for role, s in shapes.items()}}
    for role, s in shapes.items():
        out["shapes"][role].update(loss=float(loss.predict(s.N, s.D)),
                                   loss_interval=loss.predict_interval(s.N, s.D))
    best = out["shapes"][OPTIMUM]
    out.update(N=best["N"], D=best["D"], width=best["width"], loss=best["loss"],
               loss_interval=best["loss_interval"])
    if hp is not None:  # at the realised model's N and D: a steplaw law needs both
        lr, bs = hp.predict(N=best["N"], D=best["D"], C=C)
        lr_i, bs_i = hp.predict_interval(N=best["N"], D=best["D"], C=C)
        out.update(lr=float(lr), lr_interval=lr_i, batch_size=float(bs), batch_size_interval=bs_i)
    return out


def _median(runs: pd.DataFrame, role: str) -> tuple[Optional[float], list[float]]:
    """The median loss of the runs of `role` over seeds (as `cells` takes it), and the losses."""
    losses = runs.loc[roles(runs) == role, "loss"].astype(float).tolist()
    return (float(np.median(losses)) if losses else None), losses


def verdict(prediction: dict[str, Any], table: pd.DataFrame, noise_rel: float) -> dict[str, Any]:
    """Prediction against the measured verification runs: the completed runs with a target role,
    and the lr scan's diverged runs (a rate too high to train is the scan's answer, not a gap)."""
    ended = target_runs(table)
    diverged = ended["status"] == "diverged" if "status" in ended.columns else pd.Series(False, index=ended.index)
    runs = ended[~diverged]
    measured, losses = _median(runs, OPTIMUM)
    out: dict[str, Any] = {"predicted_loss": prediction["loss"], "interval": prediction["loss_interval"],
                           "predictor": prediction.get("predictor"), "uncertainty": prediction.get("uncertainty"),
                           "measured_loss": measured, "seed_losses": losses}
    if measured is None:
        return {**out, "complete": False}
    lo, hi = prediction["loss_interval"]
    target_sd = float(np.std(losses, ddof=1) / measured) if len(losses) > 1 else float("nan")
    noise = [v for v in (noise_rel, target_sd) if math.isfinite(v)]
    margin = NOISE_SDS * max(noise) if noise else 0.0
    out.update(relative_error=measured / prediction["loss"] - 1, inside_interval=bool(lo <= measured <= hi),
               seed_sd_relative=target_sd, noise_relative=margin)
    neighbours = {}
    for role in (HALF, DOUBLE):
        loss, seeds = _median(runs, role)
        shape = prediction["shapes"][role]
        neighbours[role] = {"N": shape["N"], "D": shape["D"], "width": shape["width"], "loss": loss,
                            "seed_losses": seeds, "predicted_loss": shape["loss"],
                            "gap_relative": None if loss is None else loss / measured - 1}
    out["neighbours"] = neighbours
    gaps = [n["gap_relative"] for n in neighbours.values() if n["gap_relative"] is not None]
    # the predicted N holds unless a neighbour is better by more than the noise
    out["beats_neighbours"] = bool(gaps) and all(g >= -margin for g in gaps)
    out["beats_neighbours_strictly"] = bool(gaps) and all(g > margin for g in gaps)
    first = ended[ended["seed"] == ended["seed"].min()]
    scan = [{"role": role, "lr": float(r.lr), "loss": None if stopped else float(r.loss), "diverged": bool(stopped)}
            for role in (LR_LOW, OPTIMUM, LR_HIGH)
            for r, stopped in zip(first[roles(first) == role].itertuples(), diverged[first.index][roles(first) == role])]
    trained = [s["loss"] for s in scan if not s["diverged"]]
    if len(scan) == 3 and not scan[1]["diverged"]:
        out["lr_scan"] = scan
        out["lr_regret"] = scan[1]["loss"] / min(trained) - 1
    out["complete"] = len(scan) == 3 and len(gaps) == 2
    return out


def verdict_lines(v: dict[str, Any]) -> list[str]:
    """The verdict in a few log lines."""
    if v.get("measured_loss") is None:
        return ["verdict: no verification run has finished"]
    pct = lambda x: f"{100 * x:+.2f}%"  # noqa: E731
    lo, hi = v["interval"]
    lines = [f"verdict: predicted loss {v['predicted_loss']:.4f} [{lo:.4f}, {hi:.4f}], measured "
             f"{v['measured_loss']:.4f} (seeds {', '.join(f'{x:.4f}' for x in v['seed_losses'])}): "
             f"{pct(v['relative_error'])}, {'inside' if v['inside_interval'] else 'outside'} the interval"]
    u = v.get("uncertainty")
    if u:
        parts = u["parts"]
        lines.append(f"verdict: the interval's sources (95% half-widths): fit {100 * parts['fit']:.2f}%, spread "
                     f"between the candidate laws {100 * parts['forms']:.2f}%, seed noise {100 * parts['seed']:.2f}%, "
                     f"backtest floor {100 * parts['floor']:.2f}%")
        if not u["reliable"]:
            lines.append(f"verdict: {u['why']}")
    for role, n in v.get("neighbours", {}).items():
        if n["loss"] is not None:
            lines.append(f"verdict: IsoFLOP neighbour {role} (N={n['N']:.4g}) loss {n['loss']:.4f} "
                         f"({pct(n['gap_relative'])} vs the predicted N; noise +-{100 * v['noise_relative']:.2f}%)")
    if "beats_neighbours" in v:
        lines.append(f"verdict: predicted N {'no worse than' if v['beats_neighbours'] else 'beaten by'} "
                     "its neighbours beyond seed noise")
    if "lr_regret" in v:
        lines.append(f"verdict: learning-rate regret {100 * v['lr_regret']:.3f}% against the scan "
                     + ", ".join(f"{s['lr']:.4g}: {'diverged' if s.get('diverged') else format(s['loss'], '.4f')}"
                                 for s in v["lr_scan"]))
    return lines

