"""`register()`: the sweeper, its samplers, the presets and command-line search spaces known to Hydra, once."""
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

from hydra_plugins.scalelab_sweeper import register
from scalelab.hydra_private import ConfigLoaderImpl


def test_register_is_idempotent_and_complete():
    register()
    patched = ConfigLoaderImpl.validate_sweep_overrides_legal
    register()
    assert ConfigLoaderImpl.validate_sweep_overrides_legal is patched  # not wrapped twice
    repo = ConfigStore.instance().repo
    assert "scalelab.yaml" in repo["hydra"]["sweeper"]
    assert {f"{name}.yaml" for name in ("tpe", "random", "cmaes", "nsgaii", "qmc", "gp", "grid")} <= set(
        repo["hydra"]["sweeper"]["sampler"])
    assert {"lr.yaml", "lr_bs.yaml"} <= set(repo["sweeps"])
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert "hydra_plugins.scalelab_sweeper.ScalelabSweeper" in names
