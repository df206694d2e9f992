"""A job reporting to its trial in-process: the stored pruner decides, NaN never reaches Optuna."""
import math

import optuna
import pytest

from scalelab.sweeps.algorithms import leave_pruner_config
from scalelab.sweeps.heartbeat import HEARTBEAT_ATTR
from scalelab.sweeps.reporting import TrialReporter
from scalelab.sweeps.storage import make_storage


def deterministic(is_pruning: bool) -> dict:
    return {"_target_": "optuna.testing.pruners.DeterministicPruner", "is_pruning": is_pruning}


def new_trial(url: str, pruner: dict, directions=("minimize",)):
    """A study as the sweeper leaves it (the pruner's config on the study) and one asked trial."""
    study = optuna.create_study(study_name="s", storage=make_storage(url), directions=list(directions))
    leave_pruner_config(study, pruner)
    return study, study.ask()


@pytest.mark.parametrize("is_pruning", [True, False])
def test_report_returns_the_stored_pruners_decision(tmp_path, is_pruning):
    url = f"sqlite:///{tmp_path}/studies.db"
    study, trial = new_trial(url, deterministic(is_pruning))
    reporter = TrialReporter("s", url, trial.number)
    assert reporter.report(2.5, 10) is is_pruning
    assert reporter.report(math.nan, 20) is False  # skipped, not handed to Optuna
    assert reporter.report(2.0, 30) is is_pruning
    assert study.trials[0].intermediate_values == {10: 2.5, 30: 2.0}


def test_multi_objective_never_prunes(tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    study, trial = new_trial(url, deterministic(True), directions=("minimize", "minimize"))
    assert TrialReporter("s", url, trial.number).report(2.5, 10) is False
    assert study.trials[0].intermediate_values == {}


def test_each_report_is_a_heartbeat(tmp_path):
    url = f"journal:{tmp_path}/studies.log"
    study, trial = new_trial(url, deterministic(False))
    TrialReporter("s", url, trial.number).report(2.5, 10)
    assert HEARTBEAT_ATTR in optuna.load_study(study_name="s", storage=make_storage(url)).trials[0].system_attrs
