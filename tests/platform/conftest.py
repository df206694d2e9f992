import os

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import scalelab.platform.train  # noqa: F401  (registers the schema)

# A model and budget that train in about a second.
TINY = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
        "train.tokens=2e4", "train.eval_every=20", "train.eval_tokens=2048", "logger=none"]


@pytest.fixture
def make_cfg():
    """Compose the run config in-process, as `scalelab train` would, with tiny defaults."""

    def make(*overrides: str, tiny: bool = True):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
            return compose(config_name="config", overrides=[*(TINY if tiny else []), *overrides])

    make.tiny = TINY
    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def text_corpus(tmp_path):
    """A small corpus of our own: a few text files."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(4):
        (folder / f"part{i}.txt").write_text(f"file {i}: " + "the quick brown fox jumps over the lazy dog. " * 200)
    return folder


@pytest.fixture
def no_launcher(monkeypatch):
    """No job around the test: the variables of a Slurm or submitit task, or of a launched rank, gone."""
    for name in [*(k for k in os.environ if k.startswith(("SUBMITIT_", "SLURM_"))), "LOCAL_RANK", "RANK",
                 "GROUP_RANK", "NODE_RANK", "WORLD_SIZE"]:
        monkeypatch.delenv(name, raising=False)
