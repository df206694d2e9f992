"""`custom_search_space`: loading the function, and its parameters as the job's overrides."""
import pytest
from omegaconf import OmegaConf

from scalelab.sweeps import custom_space
from scalelab.sweeps.config import SweepError


def test_load_a_function():
    assert custom_space.load("os.path.join") is not None
    assert custom_space.load(None) is None and custom_space.load("") is None


@pytest.mark.parametrize("path, message", [
    ("no_such_module.configure",
     "custom_search_space 'no_such_module.configure': cannot import it: ModuleNotFoundError: No module named "
     "'no_such_module'"),
    ("os.sep", "custom_search_space 'os.sep' is a str, not a function"),
])
def test_load_errors_are_one_line(path, message):
    with pytest.raises(SweepError) as e:
        custom_space.load(path)
    assert str(e.value) == message


def test_overrides_add_keys_the_config_lacks():
    config = OmegaConf.create({"x": 1, "model": {"depth": 2}})
    params = {"x": 0.5, "model.depth": 3, "w": 0.25, "+v": "a b", "searched": 1}
    assert custom_space.overrides(params, {"searched"}, config) == ["x=0.5", "model.depth=3", "+w=0.25", "+v='a b'"]
