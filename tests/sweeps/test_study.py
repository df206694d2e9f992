"""The budget of a study: which trials use up `n_trials`."""
import optuna
from optuna.trial import TrialState

from scalelab.sweeps.heartbeat import UNCOUNTED_ATTR
from scalelab.sweeps.storage import make_storage
from scalelab.sweeps.study import INTERRUPTED_REASON, budget_left, fail_interrupted


def test_trials_failed_by_their_process_going_away_do_not_count(tmp_path):
    study = optuna.create_study(study_name="b", storage=make_storage(f"sqlite:///{tmp_path}/s.db"))
    done, failed, interrupted, running = (study.ask() for _ in range(4))
    study.tell(done, 1.0)
    study.tell(failed, state=TrialState.FAIL)  # the trial's own failure: counted
    assert fail_interrupted(study, [interrupted, done]) == [interrupted.number]  # `done` had finished
    trials = study.get_trials()
    assert trials[interrupted.number].state == TrialState.FAIL
    assert trials[interrupted.number].user_attrs["fail_reason"] == INTERRUPTED_REASON
    assert trials[interrupted.number].system_attrs[UNCOUNTED_ATTR] == INTERRUPTED_REASON
    assert UNCOUNTED_ATTR not in trials[done.number].system_attrs
    # done, failed and running count; without the running one when only finished trials count
    assert budget_left(study, 5, grace_period=None) == 2
    assert budget_left(study, 5, grace_period=None, count_running=False) == 3
    assert running.number == 3
