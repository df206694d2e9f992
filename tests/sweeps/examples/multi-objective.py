"""A plain Hydra app with two objectives, returned as a list (one value per direction)."""
from typing import List

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="multi-objective-conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> List[float]:
    x: float = cfg.x
    y: float = cfg.y

    v0 = 4 * x**2 + 4 * y**2
    v1 = (x - 5) ** 2 + (y - 5) ** 2
    return [v0, -v1]  # minimize v0, maximize -v1


if __name__ == "__main__":
    binh_and_korn()
