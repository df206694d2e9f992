"""The `params:` syntax -> Optuna distributions, and its one-line errors."""
from dataclasses import dataclass, field
from enum import Enum

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from scalelab.sweeps.search_space import SearchSpaceError, format_value, parse_params

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
