"""tests/wandb_file.py reads back a real offline run: what was logged, configured and defined."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import wandb

from tests.wandb_file import BLOCK_SIZE, HEADER, WandbFileError, find_runs, offline_env, read_run

ROWS = [(0, 100, 3.0), (10, 200, 1.5), (20, 300, 2.0)]  # step, tokens, val_loss
BIG = "x" * (2 * BLOCK_SIZE + 1000)  # its record is split over at least three blocks
CLOCK = ("_runtime", "_timestamp")  # times of the run: present, but not known in advance


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The offline-run-* folder of a finished run: config, tags, metric definitions, rows
    logged at explicit steps, summary updates."""
    tmp = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as env:
        for name, value in offline_env(tmp).items():
            env.setenv(name, value)
        run = wandb.init(mode="offline", dir=tmp, project="p", name="n", group="g",
                         job_type="train", tags=["a"], config={"x": 1, "nested": {"y": 2}})
        run.define_metric("tokens")
        run.define_metric("val_loss", step_metric="tokens", summary="min,last")
        for step, tokens, val_loss in ROWS:
            run.log({"tokens": tokens, "val_loss": val_loss}, step=step)
        run.config.update({"lr": 0.1})
        run.summary["best"] = 42
        run.summary.update({"extra": {"k": [1, 2]}, "big": BIG})
        run.finish()
        wandb.teardown()  # stops wandb's service process, which would outlive the run
    [found] = find_runs(tmp)
    return found


def cut(run_dir: Path, tmp_path: Path, size: int) -> Path:
    """A copy of the run's file, cut to its first `size` bytes."""
    data = read_run(run_dir).path.read_bytes()
    copy = tmp_path / "run-cut.wandb"
    copy.write_bytes(data[:size])
    return copy


def test_reads_back_what_the_run_logged(run_dir):
    run = read_run(run_dir)

    assert run_dir.name.startswith("offline-run-") and run_dir.name.endswith(run.run_id)
    assert (run.project, run.name, run.group, run.job_type) == ("p", "n", "g", "train")
    assert run.tags == ["a"]
    assert run.exit_code == 0

    # init's config, then the update; wandb's own `_wandb` key stays
    assert run.config.pop("_wandb") == {}
    assert run.config == {"x": 1, "nested": {"y": 2}, "lr": 0.1}

    assert [{k: v for k, v in row.items() if k not in CLOCK} for row in run.history] == [
        {"_step": step, "tokens": tokens, "val_loss": val_loss} for step, tokens, val_loss in ROWS]
    for row in run.history:
        assert all(isinstance(row[k], float) for k in CLOCK)

    assert run.metric_definitions == {
        "tokens": {"step_metric": None, "step_sync": False, "hidden": False, "summary": [],
                   "goal": None, "glob": False},
        "val_loss": {"step_metric": "tokens", "step_sync": True, "hidden": False,
                     "summary": ["min", "last"], "goal": None, "glob": False},
    }

    # define_metric's summary="min,last" turns the metric's summary into {"min": ..., "last": ...}
    summary = run.summary
    assert "runtime" in summary.pop("_wandb")
    assert {k: v for k, v in summary.items() if k not in CLOCK} == {
        "_step": 20, "tokens": 300, "val_loss": {"min": 1.5, "last": 2.0},
        "best": 42, "extra": {"k": [1, 2]}, "big": BIG}
    assert summary["_timestamp"] == run.history[-1]["_timestamp"]

    kinds = [r.WhichOneof("record_type") for r in run.records]
    assert kinds[:2] == ["header", "run"] and kinds[-1] == "exit"


def test_the_file_is_the_format_it_claims(run_dir):
    """The header, and a record larger than a block, read back whole (the checksums all hold)."""
    path = read_run(run_dir).path
    assert path.read_bytes()[:7] == HEADER == b":W&B\xe1\xbe\x00"
    assert path.stat().st_size > 2 * BLOCK_SIZE
    assert read_run(path).summary["big"] == BIG  # the file, not its folder, reads the same


def test_a_file_cut_short_is_an_error_unless_asked_to_read_what_is_whole(run_dir, tmp_path):
    size = read_run(run_dir).path.stat().st_size

    # inside the last record (exit): every row and the summary are there, the exit is not
    short = cut(run_dir, tmp_path, size - 3)
    with pytest.raises(WandbFileError, match="cut short inside a chunk"):
        read_run(short)
    partial = read_run(short, strict=False)
    assert [row["_step"] for row in partial.history] == [0, 10, 20]
    assert partial.summary["best"] == 42 and partial.exit_code is None

    # at the end of the first block, inside the record split over blocks: it and what follows
    # it are gone - the last row too, since wandb writes a row logged with step= only when the
    # next step starts or the run finishes
    short = cut(run_dir, tmp_path, BLOCK_SIZE)
    with pytest.raises(WandbFileError, match="cut short inside a record split across blocks"):
        read_run(short)
    partial = read_run(short, strict=False)
    assert [row["_step"] for row in partial.history] == [0, 10]
    assert "big" not in partial.summary and partial.exit_code is None


def test_a_damaged_file_is_an_error(run_dir, tmp_path):
    data = bytearray(read_run(run_dir).path.read_bytes())
    damaged = tmp_path / "run-damaged.wandb"

    data[-1] ^= 0xFF  # the last byte of the last record
    damaged.write_bytes(data)
    with pytest.raises(WandbFileError, match="checksum mismatch"):
        read_run(damaged)

    damaged.write_bytes(b"PK\x03\x04" + bytes(data[4:]))
    with pytest.raises(WandbFileError, match="not a wandb run file"):
        read_run(damaged)


def test_find_runs_and_read_run_take_folders(run_dir, tmp_path):
    assert find_runs(tmp_path) == []
    copy = tmp_path / "a" / "wandb" / run_dir.name
    shutil.copytree(run_dir, copy)
    assert find_runs(tmp_path) == [copy]
    assert read_run(copy).run_id == read_run(run_dir).run_id
    with pytest.raises(FileNotFoundError, match="run-\\*.wandb"):
        read_run(tmp_path)
