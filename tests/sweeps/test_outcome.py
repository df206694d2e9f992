"""What Optuna is told for each way a trial can end: one row per case."""
import math

import numpy as np
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.exceptions import TrialPruned
from optuna.trial import TrialState

from scalelab.sweeps.outcome import classify

DONE = JobReturn(status=JobStatus.COMPLETED, _return_value=1.5)
NAN_RETURNED = JobReturn(status=JobStatus.COMPLETED, _return_value=math.nan)
RAISED = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("toy crash at step 2\nmore"))
LEAKY = JobReturn(status=JobStatus.FAILED, _return_value=OSError("no db postgresql://u:hunter2@h/db"))
FAILED_QUIETLY = JobReturn(status=JobStatus.FAILED, _return_value=None)
PRUNED_ITSELF = JobReturn(status=JobStatus.FAILED, _return_value=TrialPruned("pruned at step 3"))
NO_RECORD = "missing record r/run.json"


def returned(value):
    return JobReturn(status=JobStatus.COMPLETED, _return_value=value)

METRICS = {"final_val_loss": 2.0, "initial_loss": 5.0}
MO = ["metrics.final_val_loss", "scale.C"]


def rec(status, metrics=METRICS, **more):
    return {"schema_version": 1, "status": status, "metrics": dict(metrics), "scale": {"C": 3200.0}, **more}


CASES = {
    # name: (job, record, objectives, problem) -> (state, values, words in the reason, status)
    "completed": ((DONE, rec("completed"), [], None), (TrialState.COMPLETE, [2.0], None, "completed")),
    "completed, loss only returned": ((DONE, rec("completed", {"initial_loss": 5.0}), [], None),
                                      (TrialState.COMPLETE, [1.5], None, "completed")),
    "diverged: the initial loss": ((NAN_RETURNED, rec("diverged", {"final_val_loss": None, "initial_loss": 5.0}),
                                    [], None), (TrialState.COMPLETE, [5.0], None, "diverged")),
    "pruned": ((DONE, rec("pruned"), [], None), (TrialState.PRUNED, None, None, "pruned")),
    "failed run": ((DONE, rec("failed", error="CUDA OOM\ntraceback"), [], None),
                   (TrialState.FAIL, None, "CUDA OOM", "failed")),
    "failed run without an error": ((DONE, rec("failed"), [], None), (TrialState.FAIL, None, "run failed", "failed")),
    "job raised, no record": ((RAISED, None, [], "missing record r/run.json"),
                              (TrialState.FAIL, None, "RuntimeError: toy crash at step 2", None)),
    "job raised, record says why": ((RAISED, rec("failed", error="ValueError: bad lr"), [], None),
                                    (TrialState.FAIL, None, "ValueError: bad lr", "failed")),
    "job failed without an exception": ((FAILED_QUIETLY, None, [], None), (TrialState.FAIL, None, "job failed", None)),
    "launcher failed": ((None, None, [], "launcher: RuntimeError: no slots"),
                        (TrialState.FAIL, None, "launcher: RuntimeError: no slots", None)),
    # no record: the return value decides (a plain Hydra app, as with hydra-optuna-sweeper)
    "no record, a float returned": ((DONE, None, [], NO_RECORD), (TrialState.COMPLETE, [1.5], None, None)),
    "no record, an int returned": ((returned(3), None, [], NO_RECORD), (TrialState.COMPLETE, [3.0], None, None)),
    "no record, a numpy scalar returned": ((returned(np.float32(0.25)), None, [], NO_RECORD),
                                           (TrialState.COMPLETE, [0.25], None, None)),
    "no record, nothing returned": ((returned(None), None, [], NO_RECORD),
                                    (TrialState.FAIL, None, "the job returned None: expected a float (missing record",
                                     None)),
    "no record, NaN returned": ((NAN_RETURNED, None, [], NO_RECORD),
                                (TrialState.FAIL, None, "the job returned nan: not finite", None)),
    "no record, a string returned": ((returned("0.5"), None, [], NO_RECORD),
                                     (TrialState.FAIL, None, "returned '0.5': expected a float", None)),
    "no record, a list for one direction": ((returned([1.0, 2.0]), None, [], NO_RECORD),
                                            (TrialState.FAIL, None, "expected a float", None)),
    "no record, job raised TrialPruned": ((PRUNED_ITSELF, None, [], NO_RECORD), (TrialState.PRUNED, None, None, None)),
    "unreadable record": ((DONE, None, [], "unreadable record: RecordError: run record r is truncated"),
                          (TrialState.FAIL, None, "unreadable record", None)),
    "non-finite objective (recorded as null)": ((NAN_RETURNED, rec("completed", {"final_val_loss": None}), [], None),
                                                (TrialState.FAIL, None, "non-finite", "completed")),
    "non-finite objective (NaN)": ((DONE, rec("completed", {"final_val_loss": math.inf}), [], None),
                                   (TrialState.FAIL, None, "metrics.final_val_loss=inf", "completed")),
    "unknown status": ((DONE, rec("exploded"), [], None), (TrialState.FAIL, None, "unknown record status 'exploded'",
                                                           "exploded")),
    "multi-objective": ((DONE, rec("completed"), MO, None), (TrialState.COMPLETE, [2.0, 3200.0], None, "completed")),
    "multi-objective, diverged": ((DONE, rec("diverged"), MO, None),
                                  (TrialState.COMPLETE, [5.0, 3200.0], None, "diverged")),
    "multi-objective, one missing": ((DONE, rec("completed"), ["metrics.final_val_loss", "scale.N"], None),
                                     (TrialState.FAIL, None, "scale.N=None", "completed")),
    "credentials hidden": ((LEAKY, None, [], None), (TrialState.FAIL, None, "u:***@h", None)),
    "credentials hidden in a returned value": ((returned("postgresql://u:hunter2@h/db"), None, [], NO_RECORD),
                                               (TrialState.FAIL, None, "u:***@h", None)),
}

# several directions and no `objectives`: one value per direction from the job's return value
MO_CASES = {
    "a tuple": ((returned((1.0, 2.0)), None, NO_RECORD), (TrialState.COMPLETE, [1.0, 2.0], None, None)),
    "a ListConfig": ((returned(OmegaConf.create([1, 2.5])), None, NO_RECORD),
                     (TrialState.COMPLETE, [1.0, 2.5], None, None)),
    "a numpy array": ((returned(np.array([0.5, 1.5])), None, NO_RECORD),
                      (TrialState.COMPLETE, [0.5, 1.5], None, None)),
    "too few values": ((returned([1.0]), None, NO_RECORD),
                       (TrialState.FAIL, None, "the job returned [1.0]: expected a list of 2 floats, one per direction",
                        None)),
    "a float": ((DONE, None, NO_RECORD), (TrialState.FAIL, None, "expected a list of 2 floats", None)),
    "one NaN": ((returned([1.0, math.nan]), None, NO_RECORD), (TrialState.FAIL, None, "not finite", None)),
    "a record, values returned": ((returned([1.0, 2.0]), rec("completed"), None),
                                  (TrialState.COMPLETE, [1.0, 2.0], None, "completed")),
    "a record that says pruned": ((returned([1.0, 2.0]), rec("pruned"), None), (TrialState.PRUNED, None, None, "pruned")),
}


@pytest.mark.parametrize("inputs, expected", CASES.values(), ids=CASES.keys())
def test_classify(inputs, expected):
    job, record, objectives, problem = inputs
    state, values, words, status = expected
    outcome = classify(job, record, objectives, problem)
    assert outcome.state == state
    assert outcome.values == values
    assert outcome.status == status
    if words is None:
        assert outcome.reason is None
    else:
        assert words in outcome.reason and "\n" not in outcome.reason
        assert "hunter2" not in outcome.reason


@pytest.mark.parametrize("inputs, expected", MO_CASES.values(), ids=MO_CASES.keys())
def test_classify_several_directions(inputs, expected):
    job, record, problem = inputs
    state, values, words, status = expected
    outcome = classify(job, record, [], problem, n_values=2)
    assert (outcome.state, outcome.values, outcome.status) == (state, values, status)
    assert (outcome.reason is None) if words is None else (words in outcome.reason and "\n" not in outcome.reason)
