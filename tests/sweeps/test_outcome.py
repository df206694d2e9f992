"""What Optuna is told for each way a trial can end: one row per case."""
import math

import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from scalelab.sweeps.outcome import classify

DONE = JobReturn(status=JobStatus.COMPLETED, _return_value=1.5)
NAN_RETURNED = JobReturn(status=JobStatus.COMPLETED, _return_value=math.nan)
RAISED = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("toy crash at step 2\nmore"))
LEAKY = JobReturn(status=JobStatus.FAILED, _return_value=OSError("no db postgresql://u:hunter2@h/db"))
FAILED_QUIETLY = JobReturn(status=JobStatus.FAILED, _return_value=None)
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
    "missing record": ((DONE, None, [], "missing record r/run.json"), (TrialState.FAIL, None, "missing record", None)),
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
