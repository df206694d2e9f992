"""hydra-optuna-sweeper's example apps with `override hydra/sweeper: scalelab` (seconds each):
the return value is the objective, upstream's keys keep their meaning, results land in
optimization_results.yaml, and bad input is one line before any trial."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from optuna.distributions import IntDistribution

from tests.sweeps.sweep_helpers import example_cmd, load_study, run, states

pytestmark = pytest.mark.slow  # every test here runs sweeps


def results(folder: Path) -> dict:
    return yaml.safe_load((folder / "optimization_results.yaml").read_text())


@pytest.mark.parametrize("with_commandline", [False, True])
def test_sphere_returns_its_objective_and_gets_the_trial_ids_as_new_keys(tmp_path, with_commandline):
    # upstream's test: a search dimension, a deletion and a fixed value on the command line, which
    # takes y out of the search
    extra = ["~z", "x=choice(0, 1, 2)", "y=0"] if with_commandline else []
    run(example_cmd("sphere.py", "hydra.sweeper.n_trials=6", *extra), tmp_path)
    study = load_study(tmp_path, "sphere")
    assert states(study) == {"COMPLETE": 6}
    for t in study.trials:
        assert set(t.params) == ({"x"} if with_commandline else {"x", "y"})
        # range(-5.5, 5.5, step=0.5) includes 5.5
        assert t.params["x"] in ((0, 1, 2) if with_commandline else [i / 2 for i in range(-11, 12)])
        assert t.value == t.params["x"] ** 2 + t.params.get("y", 0) ** 2
        overrides = (Path(t.user_attrs["run_dir"]) / ".hydra/overrides.yaml").read_text()
        # a plain app's config takes the trial's ids as new keys: cfg.trial.number is there to read
        assert f"+trial.number={t.number}" in overrides and "+trial.study_name='sphere'" in overrides
        assert ("~z" in overrides) == with_commandline
    best = study.best_trial
    assert results(tmp_path / "runs/sweeps/sphere") == {"name": "optuna", "best_params": best.params,
                                                         "best_value": best.value}


def test_multi_objective_returns_a_list_per_direction(tmp_path):
    run(example_cmd("multi-objective.py", "hydra.sweeper.n_trials=6"), tmp_path)
    study = load_study(tmp_path, "multi-objective")
    assert states(study) == {"COMPLETE": 6}
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    solutions = results(tmp_path / "runs/sweeps/multi-objective")["solutions"]
    assert sorted(map(str, solutions)) == sorted(str({"params": t.params, "values": t.values})
                                                 for t in study.best_trials)


@pytest.mark.parametrize("n_trials", [10, 1])
def test_grid_with_fewer_trials_than_points_runs_distinct_points(tmp_path, n_trials):
    run(example_cmd("sphere.py", f"hydra.sweeper.n_trials={n_trials}", "--config-name=grid"), tmp_path)
    study = load_study(tmp_path, "sphere")
    assert states(study) == {"COMPLETE": n_trials}
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == n_trials


def test_grid_runs_every_point_once_and_stops(tmp_path):
    # 2 x 3 x 3 points (range(-1.0, 1.0, step=1) is -1, 0 and 1), n_trials 20
    cmd = example_cmd("sphere.py", "--config-name=grid")
    run(cmd, tmp_path)
    study = load_study(tmp_path, "sphere")
    assert states(study) == {"COMPLETE": 18}
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 18
    assert {t.params["y"] for t in study.trials} == {-1.0, 0.0, 1.0}
    assert results(tmp_path / "runs/sweeps/sphere")["best_value"] == 1.0
    run(cmd, tmp_path)  # the grid is done: the same command runs nothing more
    assert len(load_study(tmp_path, "sphere").trials) == 18


def test_storage_null_is_an_in_memory_study(tmp_path):
    proc = run(example_cmd("sphere.py", "hydra.sweeper.n_trials=3", in_memory=True), tmp_path)
    out = proc.stdout + proc.stderr
    assert "scalelab sweeper: 1 study x 3 trials" in out
    assert ("scalelab sweeper: storage null: in-memory studies, lost when the sweep ends (a rerun starts over); "
            "jobs cannot reach them, so they get no trial.* overrides and no pruning") in out
    assert not list(tmp_path.rglob("*.db"))
    assert "best_value" in results(tmp_path / "runs/sweeps/sphere")
    assert len(list(tmp_path.glob("runs/sweeps/sphere/trial_*"))) == 3


def test_command_line_ranges_are_one_study_with_upstreams_dimensions(tmp_path):
    proc = run(example_cmd("sphere.py", "hydra.sweeper.n_trials=8", "x=range(0, 5)", "y=range(0, 3)"), tmp_path)
    assert "scalelab sweeper: 1 study x 8 trials" in proc.stdout + proc.stderr
    study = load_study(tmp_path, "sphere")
    assert states(study) == {"COMPLETE": 8}
    for t in study.trials:
        assert t.distributions == {"x": IntDistribution(0, 5), "y": IntDistribution(0, 3)}


def test_custom_search_space_suggests_dependent_and_new_keys(tmp_path):
    run(example_cmd("custom-search-space-objective.py", "hydra.sweeper.n_trials=4",
                    "max_z_difference_from_x=0.3"), tmp_path)
    study = load_study(tmp_path, "custom-search-space")
    assert states(study) == {"COMPLETE": 4}
    for t in study.trials:
        p = t.params
        assert abs(p["x"] - p["z"]) <= 0.3 and 0 <= p["+w"] <= 1
        assert t.value == pytest.approx(p["+w"] ** 2 + p["x"] ** 2 + p["y"] ** 2 + p["z"] ** 2)
    assert "+w" in results(tmp_path / "runs/sweeps/custom-search-space")["best_params"]


def test_a_custom_search_space_that_raises_fails_its_trials_and_the_sweep(tmp_path):
    # upstream's `configure` reads a key the sphere config lacks: no job is launched
    proc = run(example_cmd("sphere.py", "hydra.sweeper.n_trials=2",
                           "hydra.sweeper.custom_search_space=custom-search-space-objective.configure"),
               tmp_path, check=False)
    assert proc.returncode == 1
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("scalelab sweeper:")]
    assert line.startswith("scalelab sweeper: error: 2 of 2 trials failed (100%)")
    assert "first, trial 0 of study sphere: custom_search_space: ConfigAttributeError: Key 'max_z_difference_from_x'" \
        in line
    assert states(load_study(tmp_path, "sphere")) == {"FAIL": 2}
    assert not list(tmp_path.glob("runs/sweeps/sphere/trial_*"))


FIRST_FAILURE = "first, trial 0 of study sphere: RuntimeError: cfg.error is True"


@pytest.mark.parametrize("extra, line", [
    ([], f"2 of 2 trials failed (100%), more than max_failure_rate 0.0 allows; {FIRST_FAILURE}"),  # the example's 0.0
    (["hydra.sweeper.max_failure_rate=0.5"],
     f"2 of 2 trials failed (100%), more than max_failure_rate 0.5 allows; {FIRST_FAILURE}"),
    # every trial failed: exit 1 whatever the rate allows (upstream: 0), unless that is asked for
    (["hydra.sweeper.max_failure_rate=1.0"],
     f"every trial failed (2 of 2); {FIRST_FAILURE} (hydra.sweeper.allow_all_failed=true lets a sweep of failures "
     "only exit 0)"),
    (["hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.allow_all_failed=true"], None),
])
def test_max_failure_rate(tmp_path, extra, line):
    proc = run(example_cmd("sphere.py", "hydra.sweeper.n_trials=2", "error=true", *extra), tmp_path, check=False)
    assert proc.returncode == (1 if line else 0), proc.stderr[-2000:]
    assert states(load_study(tmp_path, "sphere")) == {"FAIL": 2}
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("scalelab sweeper:")]
    assert lines == ([f"scalelab sweeper: error: {line}"] if line else [])


@pytest.mark.parametrize("override, line", [
    ("hydra/sweeper/sampler=motpe", "sampler optuna.samplers.MOTPESampler was removed in Optuna 4.0: use "
                                    "optuna.samplers.TPESampler (hydra/sweeper/sampler=tpe), which handles several "
                                    "objectives"),
    pytest.param("hydra/sweeper/sampler=cmaes", "sampler optuna.samplers.CmaEsSampler needs the package 'cmaes', "
                                                "which is not installed (pip install cmaes)",
                 marks=pytest.mark.skipif(importlib.util.find_spec("cmaes") is not None, reason="cmaes is installed")),
    ("hydra.sweeper.custom_search_space=no_such_module.configure",
     "custom_search_space 'no_such_module.configure': cannot import it: ModuleNotFoundError: No module named "
     "'no_such_module'"),
    ("hydra/sweeper/sampler=grid", "grid sampler: params.x is a continuous interval; a grid needs choice(...) or "
                                   "range(...), or an explicit hydra.sweeper.sampler.search_space"),
])
def test_bad_input_one_line_before_any_trial(tmp_path, override, line):
    proc = run(example_cmd("sphere.py", override, "x=interval(-1, 1)"), tmp_path, check=False)
    # Hydra's own report of the sweeper's SweepError, as of its own composition errors: the message
    # alone, then its hint, and exit status 1 (`scalelab train -m` prints `scalelab: error: ...`, 2)
    assert proc.returncode == 1
    assert [ln for ln in proc.stderr.splitlines() if ln] == [
        line, "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."], proc.stderr[-2000:]
    assert not list(tmp_path.glob("runs/sweeps/sphere/trial_*"))
