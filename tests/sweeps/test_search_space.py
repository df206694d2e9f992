"""The `params:` syntax -> Optuna distributions, and its one-line errors."""
from dataclasses import dataclass, field
from enum import Enum

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from scalelab.conf.schema import RANGES, RunConfig
from scalelab.sweeps.search_space import SearchSpaceError, describe, format_value, parse_params, space_difference

Kind = Enum("Kind", [("a", "a"), ("b", "b")], type=str)


@dataclass
class Optim:
    lr: float = 0.1
    wd: float = 0.0


@dataclass
class Model:
    depth: int = 2
    heads: int = 2
    kind: Kind = Kind.a


@dataclass
class Config:  # typed, as the training run's structured config is
    optim: Optim = field(default_factory=Optim)
    model: Model = field(default_factory=Model)
    name: str = "x"


CFG = OmegaConf.structured(Config)


def test_syntax_maps_to_optuna_distributions():
    space = parse_params({
        "optim": {"lr": "tag(log, interval(1e-4, 1e-1))"},  # nested, as from +hydra.sweeper.params.optim.lr
        "optim.wd": "interval(0, 0.2)",
        "model.depth": "int(interval(1, 6))",
        "model.heads": "range(2, 10, 2)",
        "name": "choice(a, b)",
    }, CFG)
    d = space.distributions
    assert d["optim.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["optim.wd"] == FloatDistribution(0.0, 0.2)
    assert d["model.depth"] == IntDistribution(1, 6)
    assert d["name"] == CategoricalDistribution(["a", "b"])
    # range includes its end, as in hydra-optuna-sweeper: 2, 4, ..., 10
    assert d["model.heads"] == IntDistribution(2, 10, step=2)


# hydra-optuna-sweeper's meanings, case by case (an untyped config: any value fits)
@pytest.mark.parametrize("override, expected", [
    ("key=choice(1,2)", CategoricalDistribution([1, 2])),
    ("key=1,2", CategoricalDistribution([1, 2])),
    ("key=choice(true, false)", CategoricalDistribution([True, False])),
    ("key=choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
    ("key=shuffle(range(1,3))", CategoricalDistribution([1, 2])),
    ("key=shuffle(range(-5, 5))", CategoricalDistribution(list(range(-5, 5)))),
    ("key=range(1,3)", IntDistribution(1, 3)),
    ("key=range(1, 3, 1)", IntDistribution(1, 3)),
    ("key=range(2, 10, 2)", IntDistribution(2, 10, step=2)),
    ("key=range(-5, 5)", IntDistribution(-5, 5)),
    ("key=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 5.5, step=1)),
    ("key=range(-5.5, 5.5, step=0.5)", FloatDistribution(-5.5, 5.5, step=0.5)),
    ("key=range(0, 1.0, 0.25)", FloatDistribution(0.0, 1.0, step=0.25)),
    ("key=tag(log, range(1, 8))", IntDistribution(1, 8, log=True)),
    ("key=interval(1, 5)", FloatDistribution(1, 5)),
    ("key=int(interval(1, 5))", IntDistribution(1, 5)),
    ("key=tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True)),
    ("key=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
])
def test_override_string_to_distribution(override, expected):
    key, text = override.split("=", 1)
    assert parse_params({key: text}).distributions[key] == expected


def test_shuffled_range_is_the_same_categorical_every_time():
    # its points in order, whatever order Hydra shuffled them in: a shared or resumed study
    # must see the same distribution
    for _ in range(20):
        assert parse_params({"k": "shuffle(range(-5, 5))"}).distributions["k"] == CategoricalDistribution(
            list(range(-5, 5)))


def test_fixed_values_and_lists():
    space = parse_params({"name": "y", "model.depth": [1, 2, 3]}, CFG)
    assert space.fixed == ["name=y"]
    assert space.distributions["model.depth"] == CategoricalDistribution([1, 2, 3])


@pytest.mark.parametrize("params, words", [
    ({"optim.lrr": "interval(0, 1)"}, "unknown parameter path 'optim.lrr'"),
    ({"optim.lr": "interval(1, 0)"}, "empty or inverted"),
    ({"optim.lr": "interval(0.1, 0.1)"}, "empty or inverted"),
    ({"optim.lr": "tag(log, interval(0, 1))"}, "log scale needs a positive range"),
    ({"optim.lr": "tag(log, interval(-1, 1))"}, "log scale needs a positive range"),
    ({"model.depth": "range(5, 1)"}, "range(5, 1, 1) is empty (start > end; the end is included)"),
    ({"model.depth": "range(1, 5, -1)"}, "range(1, 5, -1) needs a positive step"),
    ({"model.depth": "tag(log, range(0, 5))"}, "log scale needs a positive range"),
    ({"model.depth": "tag(log, range(1, 5, 2))"}, "log scale needs step 1 in range()"),
    ({"optim.lr": "tag(log, range(0.1, 0.5, 0.1))"}, "log scale is not supported on a float range()"),
    ({"model.depth": "range(1.0, 5.0)"}, "interval bound 1.0 is not a valid int for model.depth"),
    ({"optim.lr": "interval(1,"}, "cannot parse"),
    ({"model.depth": "choice(2, abc)"}, "params.model.depth: choice 'abc' is not a valid int for model.depth"),
    ({"model.depth": "interval(1, 6)"}, "interval bound 1.0 is not a valid int for model.depth"),
    ({"model.depth": "interval(1, 6)"}, "an int needs int(interval(...))"),
    ({"optim.lr": "choice(0.1, fast)"}, "choice 'fast' is not a valid float for optim.lr"),
    ({"model.kind": "choice(a, z)"}, "choice 'z' is not a valid Kind for model.kind"),
])
def test_bad_params_one_line(params, words):
    with pytest.raises(SearchSpaceError) as e:
        parse_params(params, CFG)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_new_key_with_plus_is_allowed():
    assert "extra.k" in parse_params({"+extra.k": "interval(0, 1)"}, CFG).distributions


def test_values_of_the_keys_type_pass_and_leave_the_config_alone():
    space = parse_params({"model.depth": "choice(1, 4)", "model.kind": "choice(a, b)", "optim.lr": "choice(1, 0.5)"},
                         CFG)
    assert space.distributions["model.kind"] == CategoricalDistribution(["a", "b"])
    assert CFG.model.depth == 2 and CFG.model.kind == Kind.a and CFG.optim.lr == 0.1


@pytest.mark.parametrize("value", [1, 0.5, 1e-5, "a b", "it's", True, None, "sqlite:///x.db"])
def test_format_value_round_trips(value):
    assert OverridesParser.create().parse_override(f"k={format_value(value)}").value() == value


RUN = OmegaConf.structured(RunConfig)  # the training run's config, whose RANGES bound a search


# override -> the one line that refuses it: each would make every trial fail, after training
@pytest.mark.parametrize("override, words", [
    ("optim.lr=interval(-1, 1)", "params.optim.lr: interval(-1.0, 1.0) includes -1.0, but optim.lr must be > 0"),
    ("optim.lr=interval(0, 0.1)", "params.optim.lr: interval(0.0, 0.1) includes 0.0, but optim.lr must be > 0"),
    ("train.seed=int(interval(0, 1e20))", "params.train.seed: int(interval(0, 100000000000000000000)) includes "
                                          "100000000000000000000, but train.seed must be in [0, 4294967295]"),
    ("schedule.min_lr_ratio=choice(0.1, 2)", "params.schedule.min_lr_ratio: choice(0.1, 2) includes 2, but "
                                             "schedule.min_lr_ratio must be in [0, 1]"),
    ("train.batch_size=range(0, 64, 8)", "params.train.batch_size: range(0, 64, 8) includes 0, but "
                                         "train.batch_size must be >= 1"),
    ("train.tokens=tag(log, interval(1e6, 1e16))", "includes 1e+16, but train.tokens must be in (0, 1e+15] "
                                                   "(more is beyond any plausible run)"),
    ("optim.lr=tag(log, interval(0, 0.1))",
     "params.optim.lr: log scale needs a positive range, got interval(0.0, 0.1)"),
    ("optim.lr=tag(log, interval(-1e-3, 0.1))", "params.optim.lr: log scale needs a positive range"),
    ("model.depth=tag(log, int(interval(0, 4)))", "params.model.depth: log scale needs a positive range"),
    ("optim.lr=tag(linear, interval(1e-4, 0.1))", "params.optim.lr: unknown tag linear: the one tag a distribution "
                                                  "takes is log, as in tag(log, interval(a, b))"),
    ("optim.lr=tag(lg, log, interval(1e-4, 0.1))", "params.optim.lr: unknown tag lg:"),
    ("train.batch_size=tag(grid, choice(8, 16))", "params.train.batch_size: unknown tag grid:"),
])
def test_a_search_space_every_trial_would_fail_on_is_refused(override, words):
    key, text = override.split("=", 1)
    with pytest.raises(SearchSpaceError) as e:
        parse_params({key: text}, RUN, RANGES)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_search_space_inside_the_ranges_passes():
    space = parse_params({"optim.lr": "tag(log, interval(1e-4, 3e-2))", "optim.weight_decay": "interval(0, 0.2)",
                          "schedule.min_lr_ratio": "interval(0, 1)", "model.base_width": "choice(32, 64)",
                          "train.batch_size": "choice(8, 16, 32, 64)", "+extra": "interval(-1, 1)"}, RUN, RANGES)
    assert len(space.distributions) == 6
    # without a range table (any other app) a key is bounded by its type alone
    assert "optim.lr" in parse_params({"optim.lr": "interval(-1, 1)"}, RUN).distributions


@pytest.mark.parametrize("text", ["tag(log, interval(1e-4, 3e-2))", "interval(0, 0.2)", "int(interval(1, 6))",
                                  "tag(log, int(interval(1, 8)))", "range(2, 10, 2)", "range(0.0, 1.0, 0.25)",
                                  "choice(8, 16)", "choice('a', 'b')", "choice(true, 0.5)"])
def test_describe_writes_a_distribution_in_the_syntax_that_gives_it(text):
    distribution = parse_params({"k": text}).distributions["k"]
    assert parse_params({"k": describe(distribution)}).distributions["k"] == distribution


def test_space_difference_names_each_changed_added_and_dropped_key():
    before = {"optim.lr": "tag(log, interval(0.0001, 0.03))", "train.batch_size": "choice(8, 16)"}
    now = {"optim.lr": "interval(0.001, 0.01)", "optim.weight_decay": "interval(0.0, 0.2)"}
    assert space_difference(before, now) == [
        "optim.lr was tag(log, interval(0.0001, 0.03)), is now interval(0.001, 0.01)",
        "train.batch_size was searched as choice(8, 16), is not now",
        "optim.weight_decay is searched now as interval(0.0, 0.2), was not",
    ]
    assert space_difference(before, dict(before)) == []
