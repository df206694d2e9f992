"""After the ladder: the laws fitted on every scale, the target predicted, trained and judged,
and all of it written to `verdict.json`."""
from __future__ import annotations

import json
import logging
from typing import Any

import optuna

from scalelab.analysis import ladder
from scalelab.analysis.curves import load_curves
from scalelab.analysis.errors import AnalysisError
from scalelab.record import sanitize, write_atomic
from scalelab.scaling.guidance import BATCH, LR, RANGE_ATTR, guided
from scalelab.scaling.pricing import RUN_OVERHEAD_S, PricedScale
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.plan import merged_overrides
from scalelab.sweeps.search_space import format_value
from scalelab.sweeps.study import best_completed

log = logging.getLogger(__name__)


def finish(study: Any, points: list[PricedScale]) -> None:
    """Fit, predict, verify and write the verdict of the scaling study `study` (a `ScalingStudy`)."""
    s, name = study.settings, study.study_name
    table = study.table()
    if table is None:
        raise SweepError("no completed run in the study: nothing to fit")
    cells = ladder.cells(table)
    fits_dir = study.sweep_dir / "fits"
    result: dict[str, Any] = {"study": name, "scales": scales_json(study, points, cells)}
    try:
        loss_law = ladder.loss_law(cells, bootstrap=s.bootstrap)
    except AnalysisError as e:
        log.error("scaling study %s: L(N, D) cannot be fitted: %s", name, e)
        write_verdict(study, {**result, "error": f"L(N, D): {e}"})
        return
    loss_law.save(fits_dir / "loss.json")
    hp = None
    try:
        hp = ladder.hparam_law(table, bootstrap=s.bootstrap)
        hp.save(fits_dir / "hparams.json")
    except AnalysisError as e:
        log.warning("scaling study %s: the lr law cannot be fitted (%s); the target uses the largest "
                    "scale's best lr", name, e)
    for edge in (hp.metrics_.get("edges", []) if hp else []):
        log.warning("scaling study %s: the best %s at N=%.4g D=%.4g (%.4g) is the %s value tried: an edge, "
                    "left out of the law", name, edge["quantity"], edge["N"], edge["D"],
                    edge["value"], "largest" if edge["side"] == "high" else "smallest")
    result["laws"] = {"loss": loss_law.to_dict(), "hparams": hp.to_dict() if hp else None}
    largest = max(p.C for p in points)
    try:
        target = s.target_C or ladder.target_budget(loss_law, max(p.N for p in points), s.target_ratio, largest)
        if s.verify and target > s.max_target_ratio * largest:  # it would be trained
            params = ", ".join(f"{k}={v:.4g}" for k, v in loss_law.params_.items())
            raise AnalysisError(
                f"the fitted law puts N_opt = {s.target_ratio:g} x the largest N at C={target:.3g}, "
                f"{target / largest:.3g} x the ladder's largest budget (more than scaling.max_target_ratio="
                f"{s.max_target_ratio:g}): {loss_law.form} with {params}")
    except AnalysisError as e:
        write_verdict(study, {**result, "error": f"target: {e}"})
        raise SweepError(f"{e}; choose the budget with hydra.sweeper.scaling.target_C=...") from None
    try:
        prediction = ladder.predict_target(loss_law, hp, target, study.depth, study.heads, study.context, s.target_N)
    except AnalysisError as e:
        write_verdict(study, {**result, "error": f"target: {e}"})
        raise SweepError(f"{e}; choose the model size with hydra.sweeper.scaling.target_N=...") from None
    laws, failed = ladder.loss_candidates(loss_law, cells, load_curves(study.sweep_dir), bootstrap=s.bootstrap)
    for law_name, why in failed.items():
        log.warning("scaling study %s: the %s law cannot be fitted: %s", name, law_name, why)
    noise = ladder.seed_noise(cells, largest=True)  # the target's own spread is nearest the largest size's
    ladder.predict_losses(prediction, laws, noise)
    if "lr" not in prediction:
        prediction["lr"] = float(cells.loc[cells["C"].idxmax(), "lr"])
        prediction["lr_note"] = "the best lr of the largest scale (no lr law)"
    result.update(noise={"seed_sd_relative": noise}, target=prediction)
    result["laws"]["candidates"] = {law_name: {"form": law.form, "params": law.params_} for law_name, law in laws.items()}
    log.info("scaling study %s: target C=%.4g: N=%.4g (width %d), D=%.4g, lr=%.4g, predicted loss %.4f "
             "[%.4f, %.4f] (%s law)", name, target, prediction["N"], prediction["width"], prediction["D"],
             prediction["lr"], prediction["loss"], *prediction["loss_interval"], prediction["predictor"])
    if not prediction["uncertainty"]["reliable"]:
        log.warning("scaling study %s: %s", name, prediction["uncertainty"]["why"])
    if s.verify:
        verification_runs(study, prediction, points)
        result["verdict"] = ladder.verdict(prediction, study.table(("completed", "diverged")), noise)
        for line in ladder.verdict_lines(result["verdict"]):
            log.info("scaling study %s: %s", name, line)
    write_verdict(study, result)


def verification_runs(study: Any, prediction: dict[str, Any], points: list[PricedScale]) -> None:
    """The predicted model and its IsoFLOP neighbours (N/2, 2N) with every seed, and the lr scan
    (predicted lr / lr_scan and x lr_scan) with one, at the target budget."""
    s, plan = study.settings, study.plan
    top = max(points, key=lambda p: p.C)
    # the other searched values (weight decay, say) as the largest scale's best trial had them
    best = best_completed(optuna.load_study(study_name=top.scale.study_name(study.study_name), storage=study.storage))
    laws_choose = guided(plan)
    others = [f"{plan.space.keys[n]}={format_value(v)}" for n, v in (best.params if best else {}).items()
              if n in plan.space.distributions and n not in laws_choose]
    base = [*plan.fixed, *plan.space.fixed, *others]
    seed0 = int(plan.job_config.train.seed)
    name = f"{study.study_name}/target"
    lr, shapes = prediction["lr"], prediction["shapes"]
    # (role, shape, lr, seed): the prediction and its neighbours with every seed, the scan with one
    runs = [(role, shapes[role], lr, seed) for role in (ladder.OPTIMUM, ladder.HALF, ladder.DOUBLE)
            for seed in range(seed0, seed0 + s.verify_seeds)]
    runs += [(role, shapes[ladder.OPTIMUM], rate, seed0)
             for role, rate in ((ladder.LR_LOW, lr / s.lr_scan), (ladder.LR_HIGH, lr * s.lr_scan))]
    jobs = []
    for role, shape, rate, seed in runs:
        extra = [f"model.width={shape['width']}", f"train.tokens={shape['D']:.6g}", "train.tokens_per_param=null",
                 f"{LR}={format_value(float(rate))}", f"train.seed={seed}", f"trial.role={role}",
                 f"trial.study_name={format_value(name)}"]
        if "batch_size" in prediction and BATCH in laws_choose:
            extra.append(f"{BATCH}={int(round(prediction['batch_size']))}")
        jobs.append((f"target/{role}_seed{seed}", merged_overrides(base, extra)))
    seconds = sum(shape["D"] / study.speed(shape["width"]) + RUN_OVERHEAD_S for _, shape, _, _ in runs)
    log.info("scaling study %s: %d verification runs at C=%.4g, about %.0f s at the measured throughput",
             study.study_name, len(jobs), prediction["C"], seconds)
    study.sweeper.launch_runs(jobs)


def scales_json(study: Any, points: list[PricedScale], cells) -> list[dict[str, Any]]:
    """Each scale of the verdict: its size, its search range and what its runs measured."""
    rows = []
    for p in points:
        row: dict[str, Any] = {"name": p.scale.name, "N": p.N, "D": p.D, "C": p.C, "width": p.width}
        try:
            stored = optuna.load_study(study_name=p.scale.study_name(study.study_name), storage=study.storage)
            row["search_range"] = stored.user_attrs.get(RANGE_ATTR)
        except KeyError:
            row["search_range"] = None
        match = cells[(cells["N"] == p.N) & (cells["D"] == p.D)] if len(cells) else cells
        if len(match):
            c = match.iloc[0]
            row.update(best_lr=c["lr"], best_trial_loss=c["best_trial_loss"], loss=c["loss"],
                       seed_losses=c["seed_losses"], seed_sd=c["seed_sd"], trials=int(c["trials"]))
        rows.append(row)
    return rows


def write_verdict(study: Any, result: dict[str, Any]) -> None:
    path = study.sweep_dir / ladder.VERDICT_FILE
    write_atomic(path, json.dumps(sanitize(result), indent=2, allow_nan=False))
    log.info("scaling study %s: %s", study.study_name, path)
