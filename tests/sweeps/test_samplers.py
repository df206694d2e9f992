"""`hydra/sweeper/sampler=NAME`: upstream's options and defaults, samplers refused in one line,
and a grid built from the params that ends its study cleanly."""
import importlib.util

import optuna
import pytest
from hydra import compose, initialize_config_dir, initialize_config_module
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from scalelab.conf.schema import register_schema
from scalelab.sweeps import algorithms, samplers
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.outcome import Outcome
from hydra_plugins.scalelab_sweeper import register
from scalelab.sweeps.study import budget_left, fail_interrupted, tell

TPE_UPSTREAM = {"_target_": "optuna.samplers.TPESampler", "seed": None, "consider_prior": None,
                "prior_weight": None, "consider_magic_clip": None, "consider_endpoints": None,
                "n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": False,
                "warn_independent_sampling": None}


@pytest.fixture(scope="module")
def sweeper_node(tmp_path_factory):
    """`hydra.sweeper` as Hydra composes it for an app whose config picks the scalelab sweeper."""
    register()
    conf = tmp_path_factory.mktemp("conf")
    (conf / "config.yaml").write_text("defaults:\n  - override hydra/sweeper: scalelab\nx: 1\n")

    def node(*overrides):
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.sweeper)

    return node


def test_no_option_keeps_scalelabs_default(sweeper_node):
    assert sweeper_node()["sampler"] == {"_target_": "optuna.samplers.TPESampler", "seed": 0}


def test_an_option_replaces_it_with_upstreams_defaults(sweeper_node):
    assert sweeper_node("hydra/sweeper/sampler=tpe")["sampler"] == TPE_UPSTREAM
    assert sweeper_node("hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123")["sampler"] == {
        "_target_": "optuna.samplers.RandomSampler", "seed": 123}
    # upstream's keys beside it: several directions as a list in `direction`
    node = sweeper_node("hydra/sweeper/sampler=nsgaii", "hydra.sweeper.direction=[minimize,maximize]")
    assert node["direction"] == ["minimize", "maximize"] and node["sampler"]["population_size"] == 50


@pytest.mark.parametrize("overrides, sampler", [
    (["sweeps=lr"], {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 5}),
    (["sweeps=lr", "hydra.sweeper.sampler.seed=7"],
     {"_target_": "optuna.samplers.TPESampler", "seed": 7, "n_startup_trials": 5}),
    (["sweeps=lr_bs"], {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 6,
                        "multivariate": True}),
    # another sampler replaces the preset's whole: TPE's keys would not fit its config
    (["sweeps=ladder", "hydra/sweeper/sampler=random"], {"_target_": "optuna.samplers.RandomSampler", "seed": None}),
    (["sweeps=lr_bs", "hydra/sweeper/sampler=grid"],
     {"_target_": "optuna.samplers.GridSampler", "seed": None, "search_space": None}),
])
def test_a_preset_s_sampler_is_its_own_until_another_is_named(overrides, sampler):
    register()
    register_schema()
    with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    assert OmegaConf.to_container(cfg.hydra.sweeper.sampler) == sampler


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # QMCSampler's
@pytest.mark.parametrize("name", ["tpe", "random", "nsgaii", "qmc", "gp"])
def test_each_option_builds_its_sampler(sweeper_node, name):
    cfg = sweeper_node(f"hydra/sweeper/sampler={name}")["sampler"]
    sampler = algorithms.build("sampler", cfg)
    assert type(sampler).__name__ == cfg["_target_"].rsplit(".", 1)[1]


def test_cmaes_option_builds_or_names_its_package(sweeper_node):
    cfg = sweeper_node("hydra/sweeper/sampler=cmaes")["sampler"]
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(SweepError, match="needs the package 'cmaes', which is not installed"):
            algorithms.build("sampler", cfg)
    else:
        assert isinstance(algorithms.build("sampler", cfg), optuna.samplers.CmaEsSampler)


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(samplers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SweepError) as e:
        samplers.check({"_target_": "optuna.samplers.QMCSampler"})
    assert str(e.value) == ("sampler optuna.samplers.QMCSampler needs the package 'scipy', which is not installed "
                            "(pip install scipy)")
    samplers.check({"_target_": "optuna.samplers.TPESampler"})  # needs nothing optional


def test_motpe_is_refused_with_what_to_use(sweeper_node):
    with pytest.raises(SweepError) as e:
        algorithms.build("sampler", sweeper_node("hydra/sweeper/sampler=motpe")["sampler"])
    assert str(e.value) == ("sampler optuna.samplers.MOTPESampler was removed in Optuna 4.0: use "
                            "optuna.samplers.TPESampler (hydra/sweeper/sampler=tpe), which handles several objectives")


@pytest.mark.parametrize("distribution, values", [
    (CategoricalDistribution(["a", None, 2]), ["a", None, 2]),
    (IntDistribution(2, 10, step=2), [2, 4, 6, 8, 10]),  # range(2, 10, 2): both ends included
    (IntDistribution(1, 8, log=True), [1, 2, 3, 4, 5, 6, 7, 8]),
    (FloatDistribution(0.0, 1.0, step=0.25), [0.0, 0.25, 0.5, 0.75, 1.0]),
])
def test_grid_values(distribution, values):
    assert samplers.grid_values("p", distribution) == values


def _grid_study(points):
    cfg = samplers.resolve({"_target_": "optuna.samplers.GridSampler"}, {"x": CategoricalDistribution(points)})
    return optuna.create_study(sampler=algorithms.build("sampler", cfg)), {"x": CategoricalDistribution(points)}


def test_a_used_up_grid_ends_without_study_stop_errors():
    study, space = _grid_study([1, 2, 3])
    while budget_left(study, 10, None) > 0 and not study.sampler.is_exhausted(study):
        trial = study.ask(fixed_distributions=space)
        tell(study, trial, Outcome(TrialState.COMPLETE, values=[float(trial.params["x"])]))  # the last calls Study.stop
    assert sorted(t.params["x"] for t in study.trials) == [1, 2, 3]


def test_a_grid_point_whose_trial_was_interrupted_runs_again():
    study, space = _grid_study([1, 2])
    first, second = study.ask(fixed_distributions=space), study.ask(fixed_distributions=space)
    tell(study, first, Outcome(TrialState.COMPLETE, values=[1.0]))
    fail_interrupted(study, [second])  # not counted: its point is not visited either
    assert not study.sampler.is_exhausted(study)
    again = study.ask(fixed_distributions=space)
    assert again.params["x"] == second.params["x"]
