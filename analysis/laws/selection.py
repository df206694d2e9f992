"""`auto`: choose the form of L(N, D) by how well it extrapolates to the largest scales.

Each candidate form is fitted on all but the `holdout` largest model sizes and scored on them
(RMSE of log loss); the winner is refitted on everything.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..sanity import CAUSES, require_varying
from .base import register
from .chinchilla import FORMS, ChinchillaLaw


@register
class AutoLaw(ChinchillaLaw):
    name: ClassVar[str] = "auto"

    def __init__(self, holdout: int = 1, candidates=tuple(FORMS)) -> None:
        super().__init__("chinchilla")
        self.holdout, self.candidates = holdout, tuple(candidates)

    def _set_options(self, inputs) -> None:
        self.variant = inputs.get("variant", "chinchilla")
        self.holdout = inputs.get("holdout", 1)
        self.candidates = tuple(inputs.get("candidates", FORMS))

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            level: float = 0.95) -> "AutoLaw":
        if len(table) == 0:
            raise AnalysisError("the auto law got an empty table")
        require_varying(table["loss"])  # once, not in each candidate's error
        sizes = np.sort(table["N"].unique())
        if len(sizes) < self.holdout + 2:
            raise AnalysisError(f"the auto law holds out the {self.holdout} largest model size(s) "
                                f"and needs two more to fit; the table has {len(sizes)}")
        held = table["N"].isin(sizes[-self.holdout:])
        train, test = table[~held], table[held]
        scores = []
        for form in self.candidates:
            try:
                law = ChinchillaLaw(form).fit(train)
            except AnalysisError as e:
                scores.append({"form": form, "text": FORMS[form]["text"], "error": str(e)})
                continue
            r = np.log(law.predict(test["N"], test["D"])) - np.log(test["loss"].to_numpy(float))
            scores.append({"form": form, "text": FORMS[form]["text"],
                           "heldout_rmse_log": float(np.sqrt(np.mean(r ** 2))),
                           "heldout_mean_log": float(np.mean(r)),
                           "train_rmse_log": law.metrics_["rmse_log"]})
        ok = [s for s in scores if "heldout_rmse_log" in s]
        if not ok:  # the likely causes of a law of rising loss, said once for every form
            errors = [s["error"] for s in scores]
            hint = f"; {CAUSES}" if any(CAUSES in e for e in errors) else ""
            raise AnalysisError("no candidate form could be fitted: " + "; ".join(
                f"{s['form']}: {e.replace(f'; {CAUSES}', '')}" for s, e in zip(scores, errors)) + hint)
        winner = min(ok, key=lambda s: s["heldout_rmse_log"])["form"]
        self.variant = winner
        super().fit(table, bootstrap=bootstrap, seed=seed, level=level)
        self.metrics_["selection"] = scores
        self.metrics_["winner"] = winner
        self.inputs_.update({"holdout": self.holdout, "candidates": list(self.candidates),
                             "heldout_N": [float(s) for s in sizes[-self.holdout:]]})
        return self
