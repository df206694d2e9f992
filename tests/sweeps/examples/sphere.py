"""hydra-optuna-sweeper's `sphere` example, unchanged but for its config's sweeper:
a plain Hydra app (no run record, no `trial` node) whose return value is the objective."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    x: float = cfg.x
    y: float = cfg.y

    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")

    return x**2 + y**2


if __name__ == "__main__":
    sphere()
