"""optimization_results.yaml (upstream's fields) and the `max_failure_rate` line."""
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from scalelab.sweeps.outcome import Outcome
from scalelab.sweeps.results import failure_line, summary, write

OK, FAIL, PRUNED = (Outcome(TrialState.COMPLETE, values=[1.0]), Outcome(TrialState.FAIL, reason="boom"),
                    Outcome(TrialState.PRUNED))


def test_one_direction_best_params_and_value(tmp_path):
    study = optuna.create_study()
    for x, value in [(0.5, 3.0), (0.1, 1.0)]:
        study.enqueue_trial({"x": x, "+w": "a"})
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.suggest_categorical("+w", ["a"])
        study.tell(trial, value)
    path = write(study, tmp_path / "scale")
    assert yaml.safe_load(path.read_text()) == {"name": "optuna", "best_params": {"x": 0.1, "+w": "a"},
                                                "best_value": 1.0}


def test_several_directions_the_pareto_front(tmp_path):
    study = optuna.create_study(directions=["minimize", "maximize"])
    for values in [(1.0, 1.0), (2.0, 3.0), (2.0, 0.0)]:  # the last is dominated
        trial = study.ask()
        trial.suggest_int("k", 0, 9)
        study.tell(trial, values)
    solutions = yaml.safe_load(write(study, tmp_path).read_text())["solutions"]
    assert sorted(s["values"] for s in solutions) == [[1.0, 1.0], [2.0, 3.0]]
    assert all(set(s) == {"params", "values"} for s in solutions)


def test_no_completed_trial_no_file(tmp_path):
    study = optuna.create_study()
    study.tell(study.ask(), state=TrialState.FAIL)
    assert summary(study) is None and write(study, tmp_path) is None
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("told, rate, allow_all_failed, line", [
    ([], 0.0, False, None),
    ([("s", 0, OK), ("s", 1, PRUNED)], 0.0, False, None),
    ([("s", 0, OK), ("s", 1, FAIL)], 0.5, False, None),
    ([("s", 0, OK), ("s/w=2", 3, FAIL), ("s", 2, Outcome(TrialState.FAIL, reason="later"))], 0.5, False,
     "scalelab sweeper: error: 2 of 3 trials failed (67%), more than max_failure_rate 0.5 allows; first, "
     "trial 3 of study s/w=2: boom"),
    ([("s", 0, OK), ("s", 1, FAIL)], 1.0, False, None),  # a preset's rate: a crashed run is data
    # every trial failed: the sweep learned nothing, whatever the rate allows, unless that is asked for
    ([("s", 0, FAIL), ("s", 1, FAIL)], 1.0, False,
     "scalelab sweeper: error: every trial failed (2 of 2); first, trial 0 of study s: boom "
     "(hydra.sweeper.allow_all_failed=true lets a sweep of failures only exit 0)"),
    ([("s", 0, FAIL)], 1.0, True, None),
    ([("s", 0, FAIL)], 0.0, True,  # allow_all_failed lifts that rule alone, not max_failure_rate's
     "scalelab sweeper: error: 1 of 1 trials failed (100%), more than max_failure_rate 0.0 allows; first, "
     "trial 0 of study s: boom"),
])
def test_failure_line(told, rate, allow_all_failed, line):
    assert failure_line(told, rate, allow_all_failed) == line
