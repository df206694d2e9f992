"""A run folder is one run: one owner at a time, checked before anything trains, and no result
lost when the folder fails the run (docs/faults.md, "Training runs")."""
import os
import socket

import lightning as L
import pytest

from scalelab import hydra_private
from scalelab.platform import train as train_module
from scalelab.platform.folder_owner import own_folder
from scalelab.platform.run_folder import CHECKPOINT
from scalelab.record import read

not_as_root = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder: chmod stops nothing")


def error_line(out) -> str:
    """The command's one line: the last of stderr, with no traceback before it."""
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr.strip().splitlines()[-1]


def test_a_second_run_in_a_held_folder_is_refused_and_a_dead_holder_holds_nothing(make_cfg, run_cli, tmp_path):
    run = tmp_path / "run"
    with own_folder(run):  # a run of this process holds the folder
        out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 2 and error_line(out) == (
        f"scalelab: error: {run} is in use by another run (pid {os.getpid()} on {socket.gethostname()}); wait "
        "for it to end, or choose another hydra.run.dir")
    assert [p.name for p in run.iterdir()] == [".run_lock"]  # not even Hydra's files: nothing was overwritten

    (run / ".run_lock").write_text("pid 999999999 on a host\n")  # the file a killed run leaves
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0 and read(run)["status"] == "completed"


def test_a_record_path_that_is_a_folder_is_refused_before_training(make_cfg, run_cli, tmp_path):
    (tmp_path / "run" / "run.json").mkdir(parents=True)
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2 and error_line(out) == (
        f"scalelab: error: {tmp_path / 'run' / 'run.json'} is not a file (a folder?): the run could not write its "
        "record there; remove or rename it, or choose another hydra.run.dir")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["run.json"]  # nothing trained, nothing written


def test_a_run_dir_naming_a_file_is_one_line(make_cfg, run_cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={tmp_path / 'notes.txt'}", cwd=tmp_path)
    assert out.returncode == 2 and error_line(out) == (
        f"scalelab: error: {tmp_path / 'notes.txt'} (hydra.run.dir) is a file, or inside one, not a folder; "
        "choose another hydra.run.dir")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@not_as_root
@pytest.mark.parametrize("where", ["folder", "parent"])
def test_a_folder_that_cannot_be_written_is_refused_before_training(make_cfg, run_cli, tmp_path, where):
    (tmp_path / "parent" / "run").mkdir(parents=True)
    run = tmp_path / "parent" / ("run" if where == "folder" else "new")
    read_only = run if where == "folder" else run.parent
    read_only.chmod(0o555)
    try:
        out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    finally:
        read_only.chmod(0o755)
    assert out.returncode == 2
    assert error_line(out) == (
        f"scalelab: error: the run folder {run} is not writable (Permission denied); make it writable, or choose "
        "another hydra.run.dir" if where == "folder" else
        f"scalelab: error: cannot make the run folder {run} (Permission denied); choose another hydra.run.dir "
        "where you can write")


@pytest.mark.parametrize("how", ["record path a folder", pytest.param("read-only folder", marks=not_as_root)])
def test_a_folder_that_fails_at_the_end_does_not_lose_the_record(make_cfg, run_cli, tmp_path, monkeypatch, how):
    run = tmp_path / "run"
    fit = train_module.fit

    def fit_then_break_the_folder(*args):
        fit(*args)
        if how == "read-only folder":
            os.chmod(run, 0o555)
        else:
            (run / "run.json").mkdir()

    monkeypatch.setattr(train_module, "fit", fit_then_break_the_folder)
    try:
        out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    finally:
        os.chmod(run, 0o755)
    line = error_line(out)
    assert out.returncode == 2 and line.startswith(f"scalelab: error: cannot write {run / 'run.json'} (")
    elsewhere = line.split("(completed) is ")[1].split(" instead: ")[0]  # named in the line
    assert read(elsewhere)["status"] == "completed" and line.endswith("move it there once the folder takes files")


@not_as_root
def test_a_folder_made_read_only_while_the_run_trains_stops_it_in_one_line_with_its_record(
        make_cfg, run_cli, tmp_path, monkeypatch):
    run = tmp_path / "run"

    class ReadOnlyAfterTheFirstCheckpoint(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            os.chmod(run, 0o555)
            os.chmod(run / "checkpoints", 0o555)

    callbacks = train_module.callbacks
    monkeypatch.setattr(train_module, "callbacks", lambda *a: [*callbacks(*a), ReadOnlyAfterTheFirstCheckpoint()])
    try:
        out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    finally:
        os.chmod(run, 0o755)
        os.chmod(run / "checkpoints", 0o755)
    line = error_line(out)
    assert out.returncode == 2 and line.startswith(f"scalelab: error: cannot write {run / 'run.json'} (Permission")
    record = read(line.split("(failed) is ")[1].split(" instead: ")[0])
    assert record["error"] == (f"cannot write the checkpoint {run / CHECKPOINT} at step 40 (Permission denied); "
                               f"make {run / 'checkpoints'} writable, then the same command resumes from the last "
                               "checkpoint")
    assert (run / CHECKPOINT).exists()  # the one of step 20, to resume from


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_checkpoint_that_cannot_be_read_is_refused_in_one_line(make_cfg, run_cli, tmp_path, damage):
    run = tmp_path / "run"
    checkpoint = run / CHECKPOINT
    if damage == "truncated":  # a run killed after its last checkpoint, then the file cut short
        assert run_cli(*make_cfg.tiny, "train.keep_checkpoint=true", f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
        (run / "run.json").unlink()
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"not a checkpoint")
    before = checkpoint.read_bytes()
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 2 and error_line(out) == (
        f"scalelab: error: {checkpoint} cannot be read: the checkpoint is truncated or not a checkpoint; add "
        "train.fresh_start=true to discard it and start the run over")
    assert checkpoint.read_bytes() == before and not (run / "run.json").exists()
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={run}", "train.fresh_start=true", cwd=tmp_path)
    assert out.returncode == 0 and read(run)["status"] == "completed"


def test_ctrl_c_while_starting_is_one_line(make_cfg, run_cli, tmp_path, monkeypatch):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "set_up_run", interrupted)  # Ctrl-C while the corpus loads
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 130 and error_line(out) == (
        f"scalelab: error: interrupted (Ctrl-C); {tmp_path / 'run.json'} records the run; the same command starts "
        "it again")
    assert read(tmp_path)["error"] == "interrupted (KeyboardInterrupt)"

    monkeypatch.setattr(hydra_private, "run_app", lambda *a, **k: interrupted(None))  # earlier: composing
    out = run_cli(*make_cfg.tiny, f"hydra.run.dir={tmp_path / 'other'}", cwd=tmp_path)
    assert out.returncode == 130
    assert error_line(out) == "scalelab: error: interrupted (Ctrl-C); the same command starts again"
