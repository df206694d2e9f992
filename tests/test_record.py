"""The run.json contract: atomic write, versioned read, find, and the FLOP convention."""
import json

import numpy as np
import pytest

from scalelab import record


def test_write_then_read_gives_the_record_with_its_schema_version(tmp_path):
    path = record.write(tmp_path / "run", {"run_id": "r1", "metrics": {"final_val_loss": 2.5}})
    assert path.name == record.FILE_NAME and not list(path.parent.glob(".run.*.tmp"))
    r = record.read(tmp_path / "run")
    assert r["schema_version"] == record.SCHEMA_VERSION and record.get(r, "metrics.final_val_loss") == 2.5
    assert record.get(r, "metrics.missing", "absent") == "absent"


def test_non_finite_numbers_are_written_as_null_and_credentials_hidden(tmp_path):
    url = "postgresql://alice:s3cret@db:5432/optuna"
    record.write(tmp_path, {"metrics": {"final_val_loss": float("nan"), "best": np.float32("inf"), "steps": 3},
                            "config": {"optim": {"lr": float("-inf")}, "trial": {"storage": url}},
                            "overrides": [f"trial.storage={url}", "optim.lr=nan"],
                            "curve": [{"val_loss": float("nan")}, {"val_loss": 2.0}]})
    text = (tmp_path / record.FILE_NAME).read_text()
    r = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))
    assert r["metrics"] == {"final_val_loss": None, "best": None, "steps": 3}
    assert r["config"]["optim"]["lr"] is None and r["curve"] == [{"val_loss": None}, {"val_loss": 2.0}]
    assert "s3cret" not in text and r["overrides"] == ["trial.storage=postgresql://alice:***@db:5432/optuna",
                                                       "optim.lr=nan"]


@pytest.mark.parametrize("text,message", [
    ('{"schema_version": 1, "run_id": "r', "truncated or not JSON"),
    ("", "truncated or not JSON"),
    ('{"schema_version": 99}', "schema version 99; this scalelab reads version 1"),
    ("[1, 2]", "is not a JSON object"),
])
def test_a_record_that_cannot_be_read_is_named(tmp_path, text, message):
    (tmp_path / record.FILE_NAME).write_text(text)
    with pytest.raises(record.RecordError, match=message) as info:
        record.read(tmp_path)
    assert str(tmp_path / record.FILE_NAME) in str(info.value)


def test_find_skips_the_folders_a_run_writes_beside_its_record(tmp_path):
    for folder in ("a", "b/c", "a/.hydra", "a/wandb/x", "b/checkpoints"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / record.FILE_NAME).write_text(json.dumps({"schema_version": 1}))
    assert record.find(tmp_path) == [tmp_path / "a" / record.FILE_NAME, tmp_path / "b/c" / record.FILE_NAME]


def test_flatten_gives_dotted_paths_and_can_leave_lists_out():
    tree = {"scale": {"N": 1, "D": 2}, "curve": [1, 2], "status": "completed"}
    assert record.flatten(tree) == {"scale.N": 1, "scale.D": 2, "curve": [1, 2], "status": "completed"}
    assert "curve" not in record.flatten(tree, lists=False)


def test_the_convention_fitted_to_gpt_runs_reproduces_their_flops():
    """A width ladder at fixed depth and context: C = D x (6N + 6 depth context width)."""
    depth, context = 2, 128
    widths = np.array([32, 64, 128, 256])
    N = depth * (12 * widths**2 + 4 * widths) + 2 * widths
    D = np.array([1e6, 2e6, 4e6, 8e6])
    C = D * np.array([record.flops_per_token(n, depth, context, w) for n, w in zip(N, widths)])
    convention = record.FlopConvention.from_points(N, D, C)
    assert convention.max_error < 2e-3 and np.allclose(convention.C(N, D), C, rtol=2e-3)
    assert np.allclose(convention.D(N, C), D, rtol=2e-3)
    assert record.FlopConvention.from_points(N, D, 6 * N * D).k == 0  # plain 6ND is recognised
    assert record.FlopConvention.from_dict(convention.to_dict()) == convention
