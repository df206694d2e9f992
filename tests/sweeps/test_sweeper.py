"""The sweeper end to end on a toy Hydra app (seconds each): budget, results, ladder, bad input,
killed and interrupted sweeps, what jobs see of the command line."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import optuna
import pytest

from scalelab.sweeps.heartbeat import STALE_REASON, UNCOUNTED_ATTR

from tests.sweeps.sweep_helpers import load_study, run, start, states, toy_cmd

pytestmark = pytest.mark.slow  # every test here runs sweeps in subprocesses

LR = "+hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-1))"


def test_study_of_n_trials_ends_with_n_finished(tmp_path):
    workdir = tmp_path
    # n_jobs=2: batches of two, which Hydra's basic launcher runs one after another
    run(toy_cmd("hydra.sweeper.study_name=s", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", LR,
                "x=interval(0, 1)"), workdir)
    study = load_study(workdir, "s")
    assert states(study) == {"COMPLETE": 4}
    for t in study.trials:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir == (workdir / f"runs/sweeps/s/trial_{t.number}").resolve()
        record = json.loads(Path(t.user_attrs["record"]).read_text())
        assert record["trial"] == t.number and record["study"] == "s"
        assert t.value == pytest.approx(record["metrics"]["final_val_loss"])
        assert set(t.params) == {"lr", "x"}
        assert record["searched"] == ["lr", "x"]  # from `trial.searched`, which the toy config declares
        assert record["parallel_trials"] == "1"  # so the job takes all the cores
    # the same command again: the budget is counted in the storage, nothing new runs
    run(toy_cmd("hydra.sweeper.study_name=s", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", LR,
                "x=interval(0, 1)"), workdir)
    assert len(load_study(workdir, "s").trials) == 4


def test_bad_results_do_not_stop_the_sweep(tmp_path):
    workdir = tmp_path
    # one study per mode (a ladder), one trial each; failures expected (the presets' setting)
    proc = run(toy_cmd("hydra.sweeper.study_name=m", "hydra.sweeper.n_trials=1", LR,
                       "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.ladder=[mode]",
                       "mode=ok,nanloss,diverge,crash,fail,norecord"), workdir)
    by_mode = {}
    for mode in ["ok", "nanloss", "diverge", "crash", "fail", "norecord"]:
        (t,) = load_study(workdir, f"m/mode={mode}").trials
        by_mode[mode] = t
    assert by_mode["ok"].state.name == "COMPLETE"
    assert by_mode["nanloss"].state.name == "FAIL" and "non-finite" in by_mode["nanloss"].user_attrs["fail_reason"]
    div = by_mode["diverge"]
    assert div.state.name == "COMPLETE" and div.value == 5.0 and div.user_attrs["status"] == "diverged"
    assert by_mode["crash"].state.name == "FAIL"
    assert "toy crash" in by_mode["crash"].user_attrs["fail_reason"]
    assert by_mode["fail"].state.name == "FAIL" and "toy failure" in by_mode["fail"].user_attrs["fail_reason"]
    assert by_mode["norecord"].state.name == "FAIL"
    assert "missing record" in by_mode["norecord"].user_attrs["fail_reason"]
    assert proc.returncode == 0


def test_ladder_one_study_per_scale(tmp_path):
    workdir = tmp_path
    proc = run(toy_cmd("hydra.sweeper.study_name=lad", "hydra.sweeper.n_trials=2", LR,
                       "hydra.sweeper.ladder=[width,steps]", "width=16,32", "steps=range(2,4)"), workdir)
    assert "scalelab sweeper: 4 studies (width x steps) x 2 trials" in proc.stdout + proc.stderr
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(
        f"sqlite:///{workdir}/runs/sweeps/studies.db"))
    assert names == ["lad/width=16,steps=2", "lad/width=16,steps=3",
                     "lad/width=32,steps=2", "lad/width=32,steps=3"]
    for name in names:
        study = load_study(workdir, name)
        assert states(study) == {"COMPLETE": 2}
        for t in study.trials:
            rec = json.loads(Path(t.user_attrs["record"]).read_text())
            assert rec["scale"]["N"] == int(name.split("width=")[1].split(",")[0])
    assert (workdir / "runs/sweeps/lad/width=32,steps=3/trial_1/run.json").exists()
    # each scale samples its own points (one seed everywhere would replay the same learning rates)
    firsts = {load_study(workdir, name).trials[0].params["lr"] for name in names}
    assert len(firsts) == len(names)


def test_a_continued_study_samples_the_same_points_in_two_folders_and_none_it_holds(tmp_path):
    # a study that holds trials (here: from a first command with a smaller budget) is reseeded
    # from its seed and those trials, not from OS entropy: the same command line, the same points
    points = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for n_trials in (2, 4):
            run(toy_cmd("hydra.sweeper.study_name=c", f"hydra.sweeper.n_trials={n_trials}", LR, "steps=2",
                        "+hydra.sweeper.sampler.n_startup_trials=10"), tmp_path / folder)
        points.append([t.params["lr"] for t in load_study(tmp_path / folder, "c").trials])
    assert points[0] == points[1] and len(points[0]) == 4
    assert len(set(points[0])) == 4  # the continuation did not sample the first points again


def test_pruning_marks_trials_pruned(tmp_path):
    workdir = tmp_path
    run(toy_cmd("hydra.sweeper.study_name=p", "hydra.sweeper.n_trials=8", LR, "steps=6",
                "+hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
                "+hydra.sweeper.pruner.n_startup_trials=2", "+hydra.sweeper.pruner.n_warmup_steps=1"), workdir)
    study = load_study(workdir, "p")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, states(study)
    assert states(study).get("COMPLETE", 0) + len(pruned) == 8
    for t in pruned:
        assert json.loads(Path(t.user_attrs["record"]).read_text())["status"] == "pruned"
        assert t.intermediate_values and max(t.intermediate_values) < 6


def test_multi_objective(tmp_path):
    workdir = tmp_path
    run(toy_cmd("hydra.sweeper.study_name=mo", "hydra.sweeper.n_trials=3", LR, "hydra.sweeper.ladder=[width]",
                "width=16,32",
                "hydra.sweeper.directions=[minimize,minimize]",
                "hydra.sweeper.objectives=[metrics.final_val_loss,scale.C]"), workdir)
    t = load_study(workdir, "mo/width=32").trials[0]
    assert len(t.values) == 2 and t.values[1] == 3200.0


def test_journal_storage(tmp_path):
    workdir = tmp_path
    url = f"journal:{workdir}/shared/studies.log"
    run(toy_cmd("hydra.sweeper.study_name=j", "hydra.sweeper.n_trials=3", LR,
                f"hydra.sweeper.storage='{url}'"), workdir)
    assert states(load_study(workdir, "j", storage=url)) == {"COMPLETE": 3}


def test_two_workers_share_one_sqlite_study(tmp_path):
    workdir = tmp_path
    cmd = toy_cmd("hydra.sweeper.study_name=w", "hydra.sweeper.n_trials=8", LR, "sleep=0.05")
    procs = [start(cmd, workdir) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    study = load_study(workdir, "w")
    finished = [t for t in study.trials if t.state.is_finished()]
    # the budget is counted in the storage; a race may overshoot by the trials still running
    assert 8 <= len(finished) <= 8 + 1, states(study)
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    dirs = [t.user_attrs["run_dir"] for t in study.trials]
    assert len(set(dirs)) == len(dirs)
    # both processes did some of the work
    assert all("COMPLETE" in o for o in outs), outs


def _kill_when(proc, runs: Path, records: int, then: float) -> dict:
    """SIGKILL the sweep `then` seconds after `records` trials have written their record; the
    records' modification times."""
    deadline = time.time() + 60
    while time.time() < deadline and len(list(runs.glob("trial_*/run.json"))) < records:
        time.sleep(0.05)
    time.sleep(then)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {str(p.relative_to(runs)): p.stat().st_mtime for p in runs.glob("trial_*/run.json")}


def _uncounted(study) -> list:
    return [t for t in study.trials if t.state.name == "FAIL" and t.system_attrs.get(UNCOUNTED_ATTR)]


def test_kill_and_resume(tmp_path):
    workdir = tmp_path
    cmd = toy_cmd("hydra.sweeper.study_name=r", "hydra.sweeper.n_trials=5", LR, "sleep=0.25", "steps=4",
                  "hydra.sweeper.grace_period=2")
    runs = workdir / "runs/sweeps/r"
    before = _kill_when(start(cmd, workdir), runs, records=2, then=0.5)  # inside the third trial
    assert len(before) >= 2
    out = run(cmd, workdir)  # at once: the killed trial still looks alive for the grace period
    study = load_study(workdir, "r")
    s = states(study)
    # the killed trial is failed as stale and does not count: five trials still ran to their end
    assert s == {"COMPLETE": 5, "FAIL": 1}, s
    (stale,) = _uncounted(study)
    assert stale.user_attrs["fail_reason"] == STALE_REASON == stale.system_attrs[UNCOUNTED_ATTR]
    # earlier records untouched, every trial in its own folder
    for name, mtime in before.items():
        assert (runs / name).stat().st_mtime == mtime
    assert len({t.user_attrs["run_dir"] for t in study.trials}) == 6
    assert out.returncode == 0


def test_rerun_at_once_waits_for_the_killed_trial_and_runs_its_place(tmp_path):
    # killed in its last trial, the sweep's budget looks spent to a rerun: the trial is RUNNING
    cmd = toy_cmd("hydra.sweeper.study_name=k", "hydra.sweeper.n_trials=2", LR, "sleep=0.25",
                  "hydra.sweeper.grace_period=3")
    _kill_when(start(cmd, tmp_path), tmp_path / "runs/sweeps/k", records=1, then=0.6)
    assert states(load_study(tmp_path, "k")) == {"COMPLETE": 1, "RUNNING": 1}
    run(cmd, tmp_path)
    study = load_study(tmp_path, "k")
    assert states(study) == {"COMPLETE": 2, "FAIL": 1}, states(study)
    assert [t.number for t in _uncounted(study)] == [1]


@pytest.mark.parametrize("sig, on_interrupt", [(signal.SIGINT, "raise"), (signal.SIGTERM, "raise"),
                                               (signal.SIGINT, "exit")], ids=["SIGINT", "SIGTERM", "SIGINT-exit"])
def test_interrupted_sweep_fails_its_trials_uncounted_and_says_so(tmp_path, sig, on_interrupt):
    cmd = toy_cmd("hydra.sweeper.study_name=i", "hydra.sweeper.n_trials=2", LR, "sleep=0.25",
                  f"on_interrupt={on_interrupt}")
    proc = start(cmd, tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "runs/sweeps/i/trial_0").exists():
        time.sleep(0.05)
    time.sleep(0.5)  # inside trial 0
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out[-3000:]
    assert ("scalelab sweeper: interrupted; trial(s) 0 of study i marked FAIL (interrupted); "
            "rerun the same command to continue") in out.splitlines(), out[-3000:]
    assert "Traceback" not in out
    (trial,) = load_study(tmp_path, "i").trials
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == "interrupted"
    assert trial.system_attrs[UNCOUNTED_ATTR] == "interrupted"
    if sig == signal.SIGINT and on_interrupt == "raise":  # the ending is the same whatever stopped it
        run(cmd, tmp_path)  # the same command continues: two trials still run to their end
        assert states(load_study(tmp_path, "i")) == {"COMPLETE": 2, "FAIL": 1}


@pytest.mark.filterwarnings("ignore:Query string argument")  # SQLAlchemy on the password in the URL
def test_jobs_never_see_the_storage_password_on_the_command_line(tmp_path):
    # SQLite ignores the query: a storage URL that holds a password and needs no server
    url = f"sqlite:///{tmp_path}/studies.db?password=s3cretPW"
    run(toy_cmd("hydra.sweeper.study_name=pw", "hydra.sweeper.n_trials=1", LR, f"hydra.sweeper.storage='{url}'"),
        tmp_path)
    (trial,) = load_study(tmp_path, "pw", storage=url).trials
    argv = " ".join(json.loads((Path(trial.user_attrs["run_dir"]) / "argv.json").read_text()))
    assert "password=***" in argv and "s3cretPW" not in argv
    shown = [p for p in tmp_path.rglob("*") if "s3cretPW" in p.name or p.is_file() and b"s3cretPW" in p.read_bytes()]
    assert shown == []


@pytest.mark.parametrize("override, words", [
    ("+hydra.sweeper.params.nope=interval(0, 1)", "unknown parameter path 'nope'"),
    ("+hydra.sweeper.params.lr=interval(0.1, 0.01)", "empty or inverted"),
    ("+hydra.sweeper.params.lr=tag(log, interval(0, 0.1))", "log scale needs a positive range"),
    ("+hydra.sweeper.params.width=choice(8, abc)", "choice 'abc' is not a valid int for width"),
    ("x=choice(0.5, abc)", "choice 'abc' is not a valid float for x"),
    ("+hydra.sweeper.params.width=interval(8, 64)", "an int needs int(interval(...))"),
    ("hydra.sweeper.storage='postgresql://u:topsecret@127.0.0.1:1/db'", "cannot open Optuna storage"),
    ("hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler", "cannot create sampler"),
    ("+hydra.sweeper.pruner._target_=optuna.pruners.NoSuchPruner", "cannot create pruner"),
])
def test_bad_input_one_clear_line_before_any_trial(tmp_path, override, words):
    workdir = tmp_path
    # a searched key: a sweep that searches none is refused first
    proc = run(toy_cmd("hydra.sweeper.study_name=bad", "steps=choice(4, 8)", override), workdir, check=False)
    assert proc.returncode == 1  # the toy app is a plain Hydra app: Hydra reports the SweepError in one line
    lines = [ln for ln in proc.stderr.splitlines() if ln]
    assert len(lines) == 2 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "topsecret" not in proc.stdout + proc.stderr
    assert not list(workdir.glob("runs/sweeps/bad/trial_*"))


def test_in_memory_storage_runs_its_trials_without_trial_overrides(tmp_path):
    proc = run(toy_cmd("hydra.sweeper.study_name=mem", "hydra.sweeper.n_trials=2", LR, "hydra.sweeper.storage=null",
                       "+hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner"), tmp_path)
    out = proc.stdout + proc.stderr
    assert ("scalelab sweeper: storage null: in-memory studies, lost when the sweep ends (a rerun starts over); "
            "jobs cannot reach them, so they get no trial.* overrides and no pruning") in out
    assert not list(tmp_path.rglob("*.db"))
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("runs/sweeps/mem/trial_*/run.json"))]
    assert len(records) == 2
    for record in records:
        assert record["status"] == "completed" and record["trial"] is None and record["study"] is None
        assert record["searched"] == ["lr"]
    assert "best_value" in (tmp_path / "runs/sweeps/mem/optimization_results.yaml").read_text()
