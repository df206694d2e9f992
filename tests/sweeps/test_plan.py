"""Planning a sweep from its command line, without Hydra running a job."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from scalelab.sweeps.config import SweepError, SweepSettings
from scalelab.sweeps.plan import make_plan, parse_command_line

TRIAL = {"study_name": None, "storage": None, "number": None}


@dataclass
class Job:  # typed, as the training run's structured config is
    lr: float = 0.01
    x: float = 0.0
    width: int = 16
    steps: int = 8
    sleep: float = 0.0
    name: str = "a"
    train: Dict[str, float] = field(default_factory=lambda: {"tokens": 1e5})
    trial: Dict[str, Any] = field(default_factory=lambda: dict(TRIAL))


JOB = OmegaConf.structured(Job)
OmegaConf.set_struct(JOB, False)  # the tests add `trial.searched`
LR = {"lr": "tag(log, interval(1e-4, 1e-1))"}
SETTINGS = SweepSettings(study_name="lad", params=LR)
LADDER = SweepSettings(study_name="lad", params=LR, ladder=["width", "steps", "train"])


def plan_for(*arguments, settings=SETTINGS, job=JOB, composed=None):
    def compose(overrides):
        if composed is not None:
            composed.append(overrides)
        return job

    return make_plan(parse_command_line(arguments), settings, compose)


def test_axes_become_scales_with_their_own_studies():
    composed = []
    plan = plan_for("width=16,32", "steps=range(2,4)", "train.tokens=1e6,4e6", "sleep=0.05", composed=composed,
                    settings=LADDER)
    names = [s.study_name("lad") for s in plan.scales]
    assert len(names) == 8 and names[0] == "lad/width=16,steps=2,train.tokens=1e6"
    assert names[-1] == "lad/width=32,steps=3,train.tokens=4e6"  # as typed, not 4000000.0
    assert plan.scales[-1].overrides == ("width=32", "steps=3", "train.tokens=4000000.0")
    assert plan.fixed == ["sleep=0.05"] and plan.axes == ["width", "steps", "train.tokens"]
    assert plan.summary() == "8 studies (width x steps x train.tokens) x 20 trials"
    # the job config is composed once, for the first scale, to check the search space
    assert composed == [["sleep=0.05", "width=16", "steps=2", "train.tokens=1000000.0"]]


def test_no_axis_is_one_scale_named_after_the_study():
    (scale,) = plan_for("sleep=0.05").scales
    assert scale.study_name("lad") == "lad" and scale.overrides == () and scale.folder == ""


def test_interval_and_choice_on_the_command_line_are_search_dimensions():
    plan = plan_for("x=interval(0, 1)", "name=choice(a, b)", "width=16,32", settings=LADDER)
    assert plan.space.distributions == {"lr": FloatDistribution(1e-4, 1e-1, log=True),
                                        "x": FloatDistribution(0.0, 1.0),
                                        "name": CategoricalDistribution(["a", "b"])}
    assert [s.name for s in plan.scales] == ["width=16", "width=32"]  # on the ladder: an axis


def test_sweeps_off_the_ladder_are_one_study_with_upstreams_dimensions():
    plan = plan_for("x=range(0, 5)", "width=range(0, 3)", "steps=4,8", "name=shuffle(range(1, 3))", job=PLAIN_XY)
    assert [s.name for s in plan.scales] == [""] and plan.axes == []
    assert plan.space.distributions == {"lr": FloatDistribution(1e-4, 1e-1, log=True), "x": IntDistribution(0, 5),
                                        "width": IntDistribution(0, 3), "steps": CategoricalDistribution([4, 8]),
                                        "name": CategoricalDistribution([1, 2])}
    assert plan.summary() == "1 study x 20 trials"


@pytest.mark.parametrize("ladder, line, scales", [
    (["model"], "model=gpt_s,gpt_m", ["model=gpt_s", "model=gpt_m"]),
    (["model"], "model.width=32,64", ["model.width=32", "model.width=64"]),
    (["model.width"], "model.width=range(32, 65, 32)", ["model.width=32", "model.width=64"]),  # Hydra's list
    (["train.tokens"], "train.tokens=choice(1e6, 4e6)", ["train.tokens=1000000.0", "train.tokens=4000000.0"]),
])
def test_a_ladder_entry_covers_its_key_and_the_keys_below(ladder, line, scales):
    plan = plan_for(line, settings=SweepSettings(ladder=ladder, params=MODEL_LR), job=MODEL)
    assert [s.name for s in plan.scales] == scales and list(plan.space.distributions) == ["optim.lr"]


@pytest.mark.parametrize("preset", ["lr", "lr_bs"])
def test_presets_put_model_and_tokens_on_the_ladder(preset):
    node = OmegaConf.load(Path(__file__).parents[2] / "sweeps" / f"{preset}.yaml").hydra.sweeper
    settings = SweepSettings(ladder=list(node.ladder), n_trials=node.n_trials,
                             params=OmegaConf.to_container(node.params))
    plan = plan_for("model.width=32,64,128", "train.tokens=1e6,4e6", settings=settings, job=MODEL)
    assert plan.summary() == f"6 studies (model.width x train.tokens) x {node.n_trials} trials"


def test_a_fixed_command_line_value_takes_its_key_out_of_params():
    settings = SweepSettings(params={"x": "interval(0, 1)", "+y": "choice(1, 2)", "lr": "interval(0, 1)"})
    plan = plan_for("x=0.5", "y=2", job=PLAIN_XY, settings=settings)
    assert list(plan.space.distributions) == ["lr"] and plan.fixed == ["x=0.5", "y=2"]
    assert plan.job_overrides(plan.scales[0], {"lr": 0.1}) == ["x=0.5", "y=2", "lr=0.1"]


def test_a_ladder_key_in_params_is_an_axis_the_command_line_replaces():
    settings = SweepSettings(params={"width": "16,32", "lr": "interval(0, 1)"}, ladder=["width"])
    plan = plan_for(settings=settings)
    assert [s.name for s in plan.scales] == ["width=16", "width=32"] and list(plan.space.distributions) == ["lr"]
    assert [s.name for s in plan_for("width=64,128", settings=settings).scales] == ["width=64", "width=128"]
    assert [s.name for s in plan_for("width=64", settings=settings).scales] == [""]  # a plain value: one scale


def test_an_interval_on_the_ladder_is_refused():
    with pytest.raises(SweepError, match=r"^ladder axis x: interval\(...\) has no list of values"):
        plan_for("x=interval(0, 1)", settings=SweepSettings(ladder=["x"]))


def test_searched_paths_are_passed_only_where_the_job_config_declares_them():
    job = OmegaConf.merge(JOB, {"trial": {"searched": None}})
    plan = plan_for("x=interval(0, 1)", "width=16,32", job=job, settings=LADDER)
    overrides = plan.job_overrides(plan.scales[1], {"lr": 0.01, "x": 0.5})
    assert overrides[:3] == ["width=32", "lr=0.01", "x=0.5"]
    (searched,) = [o for o in overrides if o.startswith("trial.searched=")]
    assert OverridesParser.create().parse_override(searched).value() == ["lr", "x"]
    plain = plan_for("x=interval(0, 1)")
    assert plain.searched is None
    assert not any(o.startswith("trial.searched") for o in plain.job_overrides(plain.scales[0], {"lr": 0.01, "x": 0.5}))


def test_search_paths_come_without_their_plus():
    job = OmegaConf.merge(JOB, {"trial": {"searched": None}})
    settings = SweepSettings(params={"+extra": {"k": "interval(0, 1)"}})
    assert plan_for(settings=settings, job=job).searched == ["extra.k"]


@pytest.mark.parametrize("settings, words", [
    (SweepSettings(directions=["minimise"]), "direction must be 'minimize' or 'maximize'"),
    (SweepSettings(directions=["minimize", "minimize"]), "2 directions need as many `objectives`"),
    (SweepSettings(objectives=["metrics.final_val_loss", "scale.C"]), "do not match directions"),
    (SweepSettings(n_trials=0), "n_trials must be at least 1"),
    (SweepSettings(params={"nope": "interval(0, 1)"}), "unknown parameter path 'nope'"),
    (SweepSettings(params={"width": "choice(8, abc)"}), "params.width: choice 'abc' is not a valid int for width"),
    (SweepSettings(params={"width": "interval(8, 64)"}), "an int needs int(interval(...))"),
    (SweepSettings(params={"lr": "choice(0.1, none)"}), "choice 'none' is not a valid float for lr"),
    # what would fail every trial, or the sweep itself, refused before the first
    (SweepSettings(params={"lr": "tag(linear, interval(0.1, 1))"}), "params.lr: unknown tag linear"),
    (SweepSettings(params=LR, objectives=["metrics.nosuch"]), "objectives: metrics.nosuch names no number in run.json"),
    (SweepSettings(params=LR, n_jobs=0),
     "n_jobs (the trials handed to the launcher at once) must be at least 1, got 0"),
    (SweepSettings(params=LR, n_jobs=-2), "n_jobs (the trials handed to the launcher at once) must be at least 1"),
    (SweepSettings(params=LR, heartbeat_interval=0), "heartbeat_interval must be at least 1 (seconds), got 0"),
    (SweepSettings(params=LR, heartbeat_interval=-5), "heartbeat_interval must be at least 1 (seconds), got -5"),
    (SweepSettings(params=LR, grace_period=-1), "grace_period must be at least 1 (seconds), got -1"),
    (SweepSettings(params=LR, study_name="../../escape"), "study_name '../../escape' leaves runs/sweeps/: it names "
                                                          "the study and its folder runs/sweeps/<study_name>"),
    (SweepSettings(params=LR, study_name="/tmp/abs"), "study_name '/tmp/abs' leaves runs/sweeps/"),
    (SweepSettings(params=LR, study_name="a/../../b"), "study_name 'a/../../b' leaves runs/sweeps/"),
    (SweepSettings(params=LR, study_name=""), "study_name is empty: it names the study and its folder"),
    (SweepSettings(params=LR, study_name="  "), "study_name is empty"),
    (SweepSettings(), "no key is searched (params is empty and the command line sweeps no key off the ladder), so "
                      "every trial of the study would run the same config; search one with a sweep on the command "
                      "line ('KEY=interval(a, b)', 'KEY=choice(x, y)') or in hydra.sweeper.params"),
])
def test_bad_settings_are_one_line_errors(settings, words):
    with pytest.raises(SweepError) as e:
        plan_for(settings=settings)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("arguments, settings, words", [
    # `sweeps=lr optim.lr=0.01`: the command line fixed the one key the preset searches
    (["lr=0.01"], SETTINGS, "no key is searched (the command line fixes lr, which params would search), so every "
                            "trial of the study would run the same config; search one with a sweep on the command "
                            "line ('lr=interval(a, b)', 'lr=choice(x, y)') or in hydra.sweeper.params"),
    (["lr=0.01", "width=16,32"], LADDER, "no key is searched (the command line fixes lr, which params would search), "
                                         "so every trial of each study would run the same config"),
    (["width=16,32"], SweepSettings(ladder=["width"]), "no key is searched (params is empty and the command line "
                                                       "sweeps no key off the ladder), so every trial of each study"),
])
def test_a_sweep_that_searches_no_key_is_refused(arguments, settings, words):
    with pytest.raises(SweepError) as e:
        plan_for(*arguments, settings=settings)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_search_of_suggested_keys_alone_is_a_search():
    plan = plan_for("lr=0.01", settings=SweepSettings(params=LR, custom_search_space="app.configure"))
    assert not plan.space.distributions  # `app.configure(cfg, trial)` suggests them


def test_directions_are_kept_lower_case_with_their_objectives():
    settings = SweepSettings(directions=["Minimize", "maximize"], objectives=["metrics.final_val_loss", "scale.C"],
                             params=LR)
    plan = plan_for(settings=settings)
    assert plan.directions == ["minimize", "maximize"] and plan.objectives == ["metrics.final_val_loss", "scale.C"]


MODEL_LR = {"optim.lr": "tag(log, interval(1e-4, 1e-1))"}
PLAIN = OmegaConf.create({"lr": 0.01, "x": 1, "y": 1})  # a plain Hydra app: no `trial` node
PLAIN_XY = OmegaConf.create({"lr": 0.01, "x": 1, "width": 1, "steps": 1, "name": 1})
MODEL = OmegaConf.create({"model": {"width": 16}, "train": {"tokens": 1e5, "batch_size": 8}, "optim": {"lr": 0.01},
                          "hydra": {"runtime": {"choices": {"model": "gpt_s"}}}})


def test_plain_app_gets_no_trial_overrides():
    plan = plan_for("x=interval(0, 1)", job=PLAIN)
    assert plan.reports is False and plan.searched is None
    overrides = plan.job_overrides(plan.scales[0], {"lr": 0.01, "x": 0.5})
    assert overrides == ["lr=0.01", "x=0.5"]


def test_plain_app_may_return_several_objectives_without_objectives_paths():
    plan = plan_for(settings=SweepSettings(directions=["minimize", "maximize"], params=LR), job=PLAIN)
    assert plan.directions == ["minimize", "maximize"] and plan.objectives == []


def test_job_config_with_part_of_a_trial_node_is_refused():
    with pytest.raises(SweepError, match="no `trial.number` key"):
        plan_for(job=OmegaConf.create({"lr": 0.01, "trial": {"study_name": None, "storage": None}}))


def test_params_a_custom_search_space_suggested_become_overrides():
    job = OmegaConf.merge(JOB, {"trial": {"searched": None}})
    plan = plan_for(job=job)
    overrides = plan.job_overrides(plan.scales[0], {"lr": 0.01, "x": 0.5, "w": 2, "+v": "a"})
    # `x` is in the job config, `w` is not (so `+w`), `+v` is named with its `+` already
    assert overrides[:4] == ["lr=0.01", "x=0.5", "+w=2", "+v='a'"]
    (searched,) = [o for o in overrides if o.startswith("trial.searched=")]
    assert OverridesParser.create().parse_override(searched).value() == ["lr", "x", "w", "v"]


@pytest.mark.parametrize("params, grid, n_trials", [
    ({"x": "choice(-1, 1)", "steps": "range(-1, 2)", "name": "choice(a, b)"},
     {"x": [-1, 1], "steps": [-1, 0, 1, 2], "name": ["a", "b"]}, 16),
    ({"width": "range(8, 64, 8)"}, {"width": [8, 16, 24, 32, 40, 48, 56, 64]}, 8),
    ({"steps": "int(interval(1, 3))"}, {"steps": [1, 2, 3]}, 3),
])
def test_grid_sampler_gets_its_grid_from_the_params(params, grid, n_trials):
    for partial in ({}, {"_partial_": True}):  # upstream's node leaves the grid to be filled in
        settings = SweepSettings(n_trials=50, params=params,
                                 sampler={"_target_": "optuna.samplers.GridSampler", "seed": None, **partial})
        plan = plan_for(settings=settings)
        assert plan.sampler == {"_target_": "optuna.samplers.GridSampler", "seed": None, "search_space": grid}
        assert plan.n_trials == n_trials  # at most the grid's size


def test_grid_sampler_keeps_an_explicit_search_space_and_a_smaller_budget():
    sampler = {"_target_": "optuna.samplers.GridSampler", "search_space": {"lr": [0.1, 0.01], "x": [0.0]}}
    plan = plan_for("x=choice(0.0, 1.0)", settings=SweepSettings(n_trials=1, params={"lr": "choice(0.1, 0.01)"},
                                                                 sampler=sampler))
    assert plan.sampler == sampler and plan.n_trials == 1


@pytest.mark.parametrize("settings, words", [
    (SweepSettings(params={"x": "interval(0, 1)"}, sampler={"_target_": "optuna.samplers.GridSampler"}),
     "grid sampler: params.x is a continuous interval"),
    (SweepSettings(sampler={"_target_": "optuna.samplers.GridSampler"}), "grid sampler: no params"),
    (SweepSettings(params={"x": "choice(0.0, 1.0)"},
                   sampler={"_target_": "optuna.samplers.GridSampler", "search_space": {"y": [1]}}),
     "grid sampler: search_space has no values for x"),
    (SweepSettings(max_failure_rate=1.5), "max_failure_rate must be between 0.0 and 1.0, got 1.5"),
])
def test_bad_sampler_and_failure_settings(settings, words):
    with pytest.raises(SweepError) as e:
        plan_for(settings=settings)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_job_config_that_does_not_compose_is_one_line():
    def compose(overrides):
        raise ValueError("Could not override 'nope'\nKey 'nope' is not in struct")

    with pytest.raises(SweepError, match="the job config does not compose: ValueError: Could not override 'nope'$"):
        make_plan(parse_command_line(["nope=1"]), SETTINGS, compose)


def test_unparseable_command_line():
    with pytest.raises(SweepError, match="cannot parse the command line"):
        parse_command_line(["x=interval(0,"])


def test_settings_from_hydras_node():
    node = OmegaConf.create({"directions": ["minimize", "maximize"], "objectives": ["a.b", "c"],
                             "params": {"optim": {"lr": "interval(0, 1)"}}, "pruner": {"_target_": "P"}})
    s = SweepSettings.from_node(direction="maximize", directions=node.directions, objectives=node.objectives,
                                params=node.params, pruner=node.pruner, heartbeat_interval=5, n_jobs=3,
                                ladder=OmegaConf.create(["model", "train.tokens"]))
    assert s.ladder == ["model", "train.tokens"] and type(s.ladder) is list
    assert s.directions == ["minimize", "maximize"] and s.objectives == ["a.b", "c"]
    assert s.params == {"optim": {"lr": "interval(0, 1)"}} and s.pruner == {"_target_": "P"}
    assert type(s.params) is dict and s.grace_period == 15 and s.n_jobs == 3
    single = SweepSettings.from_node(direction="maximize", heartbeat_interval=0)
    assert single.directions == ["maximize"] and single.grace_period is None


def test_settings_from_upstreams_keys():
    # hydra-optuna-sweeper writes several directions as a list in `direction`, and allows a null study name
    s = SweepSettings.from_node(direction=OmegaConf.create(["minimize", "maximize"]), study_name=None,
                                max_failure_rate=1, custom_search_space="app.configure")
    assert s.directions == ["minimize", "maximize"] and s.study_name == "scalelab"
    assert s.max_failure_rate == 1.0 and s.custom_search_space == "app.configure"
