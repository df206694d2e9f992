"""Training on a prepared folder: `data=tokens data.dir=DIR` and nothing else."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from scalelab.platform.data import load_corpus
from scalelab.platform.errors import ConfigError
from scalelab.platform.train import train
from scalelab.record import read

from tests.prepare.prepare_helpers import make_documents, read_meta, wide_tokenizer, write_jsonl, write_text_files

# A model and budget that train in about a second (tests/platform/conftest.py's TINY).
TINY = ["model.width=16", "model.depth=1", "model.heads=2", "model.context=32", "train.batch_size=8",
        "train.tokens=2e4", "train.eval_every=20", "train.eval_tokens=2048", "logger=none"]


@pytest.fixture
def make_cfg():
    """Compose the run config in-process, as `scalelab train` would, with tiny defaults."""

    def make(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
            return compose(config_name="config", overrides=[*TINY, *overrides])

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def prepared(tmp_path, run_prepare) -> Path:
    """A BPE folder of a generated corpus of about 60,000 tokens."""
    write_jsonl(tmp_path / "corpus.jsonl", make_documents(400, seed=7))
    done = run_prepare(tmp_path / "corpus.jsonl", "--out", tmp_path / "prepared", "--vocab-size", "320",
                       "--val-fraction", "0.05")
    assert done.returncode == 0, done.stderr
    return tmp_path / "prepared"


def test_a_run_trains_on_a_prepared_folder_given_alone(make_cfg, prepared, tmp_path):
    meta = read_meta(prepared)
    assert meta["splits"]["train"]["tokens"] > 20000 and meta["splits"]["val"]["tokens"] > 1000
    final = train(make_cfg("data=tokens", f"data.dir={prepared}", "optim.lr=1e-2"), run_dir=tmp_path / "run")
    r = read(tmp_path / "run")
    assert r["status"] == "completed" and r["metrics"]["final_val_loss"] == final
    assert r["config"]["data"]["dir"] == str(prepared) and r["config"]["data"]["vocab_size"] == 320
    assert r["scale"]["N_total"] - r["scale"]["N"] == 320 * 16 + 32 * 16  # token and position embeddings
    assert r["metrics"]["initial_loss"] == pytest.approx(np.log(320), rel=0.05)
    assert final < r["metrics"]["initial_loss"] - 1.0


def test_the_vocabulary_comes_from_meta_json_unless_set(make_cfg, prepared):
    assert make_cfg("data=tokens", f"data.dir={prepared}").data.vocab_size == 320
    assert make_cfg("data=tokens", f"data.dir={prepared}", "data.vocab_size=512").data.vocab_size == 512  # padded
    assert make_cfg("data=tokens", "data.train_path=a.bin", "data.val_path=b.bin").data.vocab_size == 50304
    corpus = load_corpus(make_cfg("data=tokens", f"data.dir={prepared}", "data.vocab_size=512").data)
    assert corpus.vocab_size == 512 and corpus.train.dtype == np.uint16


def test_a_uint32_folder_loads_as_uint32(make_cfg, tmp_path, run_prepare):
    write_text_files(tmp_path / "corpus", ["alpha beta gamma delta"] * 3 + ["zeta eta theta"] * 3)
    done = run_prepare(tmp_path / "corpus", "--out", tmp_path / "wide", "--tokenizer", wide_tokenizer(tmp_path / "w.json"))
    assert done.returncode == 0, done.stderr
    corpus = load_corpus(make_cfg("data=tokens", f"data.dir={tmp_path / 'wide'}").data)
    assert corpus.train.dtype == np.uint32 and corpus.vocab_size == 70000
    assert corpus.train.max() == 69999 and corpus.train.min() > 65535  # ids a uint16 would wrap around


def damaged(prepared: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / how
    shutil.copytree(prepared, folder)
    if how == "no_meta":
        (folder / "meta.json").unlink()
    elif how == "truncated":
        data = (folder / "train.bin").read_bytes()
        (folder / "train.bin").write_bytes(data[:-2])
    elif how == "missing_val":
        (folder / "val.bin").unlink()
    elif how == "not_json":
        (folder / "meta.json").write_text("{")
    elif how == "other_format":
        (folder / "meta.json").write_text(json.dumps({"vocab_size": 3}))
    return folder


@pytest.mark.parametrize("how,message", [
    ("missing", r"data.dir: .*missing is not a folder \(make one with `scalelab data prepare"),
    ("no_meta", r"data.dir: .*no_meta has no meta.json: not a folder made by `scalelab data prepare`"),
    ("truncated", r"data.dir: .*train.bin holds \d+ bytes, meta.json says \d+ uint16 tokens"),
    ("missing_val", r"data.dir: .*val.bin: missing, though .*meta.json names it"),
    ("not_json", r"data.dir: .*meta.json: cannot read it"),
    ("other_format", r"data.dir: .*meta.json: not a scalelab-tokens description"),
])
def test_a_bad_data_dir_is_a_config_error_naming_it(make_cfg, prepared, tmp_path, how, message):
    folder = tmp_path / "missing" if how == "missing" else damaged(prepared, tmp_path, how)
    cfg = make_cfg("data=tokens", f"data.dir={folder}")
    assert cfg.data.vocab_size is None if how in ("missing", "no_meta", "not_json", "other_format") else 320
    with pytest.raises(ConfigError, match=message):
        train(cfg, run_dir=tmp_path / "run")
    assert read(tmp_path / "run")["status"] == "failed"


def test_data_dir_refuses_a_second_source_or_a_smaller_vocabulary(make_cfg, prepared):
    with pytest.raises(ConfigError, match="data.dir and data.train_path / data.val_path name the data twice"):
        load_corpus(make_cfg("data=tokens", f"data.dir={prepared}", "data.train_path=a.bin").data)
    with pytest.raises(ConfigError, match=r"data.vocab_size=100 is smaller than the vocabulary of data.dir=.* \(320"):
        load_corpus(make_cfg("data=tokens", f"data.dir={prepared}", "data.vocab_size=100").data)
