"""Report a run's validation loss to its Optuna trial, and stop the run when the pruner says so.

The sweeper passes `trial.study_name`, `trial.storage`, `trial.number` into the job config;
the training run adds `TrialCallback(study_name, storage, number)` to the Lightning callbacks.
At every evaluation it calls `trial.report(val_loss, step)`, records a heartbeat (so a killed
sweep can tell live trials from dead ones), and raises `optuna.TrialPruned` when
`trial.should_prune()`. The sweeper, not the job, tells the final state (from run.json).
"""
from __future__ import annotations

import math
from typing import Any


PRUNER_ATTR = "scalelab:pruner"
_STORAGES: dict = {}  # one storage per URL and process: jobs run in-process with the basic launcher


def pruner_from_config(cfg: Any):
    """An Optuna pruner from its `_target_` config; no config means no pruning."""
    import optuna

    if not cfg:
        return optuna.pruners.NopPruner()
    from hydra.utils import instantiate

    return instantiate(cfg)


class TrialReporter:
    """The Lightning-free part: one trial of one study, opened lazily from its storage URL."""

    def __init__(self, study_name: str, storage: str, number: int) -> None:
        self.study_name, self.storage_url, self.number = study_name, storage, int(number)
        self._trial = None
        self._storage = None

    @property
    def trial(self):
        if self._trial is None:
            import optuna

            from scalelab.platform.storage import make_storage

            # Any interval turns Optuna's heartbeat on; the sweeper decides what is stale.
            if self.storage_url not in _STORAGES:
                _STORAGES[self.storage_url] = make_storage(self.storage_url, heartbeat_interval=60)
            self._storage = _STORAGES[self.storage_url]
            # The pruner lives in the sweeper's config; it leaves it on the study for the jobs.
            probe = optuna.load_study(study_name=self.study_name, storage=self._storage,
                                      pruner=optuna.pruners.NopPruner())
            study = optuna.load_study(study_name=self.study_name, storage=self._storage,
                                      pruner=pruner_from_config(probe.user_attrs.get(PRUNER_ATTR)))
            trial_id = self._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
            self._trial = optuna.Trial(study, trial_id)
        return self._trial

    def report(self, value: Any, step: int) -> bool:
        """Report `value` at `step`; return True when the trial should be pruned."""
        from scalelab.platform.storage import record_heartbeat

        trial = self.trial
        record_heartbeat(self._storage, trial._trial_id)
        value = float(value)
        if len(trial.study.directions) > 1:
            return False  # Optuna prunes single-objective studies only
        if not math.isfinite(value):
            return False  # never hand NaN to Optuna; divergence is the run's own verdict
        try:
            trial.report(value, int(step))
        except Exception:  # noqa: BLE001 - e.g. the same step reported twice
            pass
        return bool(trial.should_prune())

    def check(self, value: Any, step: int) -> None:
        """`report` and raise `optuna.TrialPruned` when the pruner says so."""
        import optuna

        if self.report(value, step):
            raise optuna.TrialPruned(f"trial {self.number} pruned at step {step} (val_loss={float(value):.4g})")


def _make_callback_class():
    import lightning.pytorch as pl

    class TrialCallback(pl.Callback):
        """Lightning callback: report `val_loss` after every validation, prune when told."""

        def __init__(self, study_name: str, storage: str, number: int, monitor: str = "val_loss") -> None:
            super().__init__()
            self.reporter = TrialReporter(study_name, storage, number)
            self.monitor = monitor

        def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
            if trainer.sanity_checking:
                return
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                return
            self.reporter.check(float(value), trainer.global_step)

    return TrialCallback


def __getattr__(name: str) -> Any:
    # Lightning (and torch) load only when the callback is used, so that a plain job or a
    # test app can report through `TrialReporter` without paying for the import.
    if name == "TrialCallback":
        cls = _make_callback_class()
        cls.__module__, cls.__qualname__ = __name__, name
        globals()["TrialCallback"] = cls
        return cls
    raise AttributeError(name)
