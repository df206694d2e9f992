"""Hydra's process-wide singletons, cleared: an app run in this process must not place the next."""
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig


def clear_hydra_state() -> None:
    """The last app's config (which a training run reads to learn where it belongs) and Hydra's
    global initialisation, both gone."""
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()
