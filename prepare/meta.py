"""meta.json, the description of a folder `scalelab data prepare` made, and its reading by training.

Training needs three things of it: the token files of each split, their dtype and the
vocabulary size. The rest (the tokenizer, the sources with their sha256, the split rule) says
how the folder was made. `data.vocab_size` of conf/data/tokens.yaml reads the vocabulary through
the `prepared_vocab_size` resolver registered here, so a run's config and record hold the real
size, and a run resumed on a folder prepared again with another tokenizer is refused.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import OmegaConf

from scalelab.prepare.errors import PrepareError

META = "meta.json"
FORMAT = "scalelab-tokens"
VERSION = 1
SPLITS = ("train", "val")
DTYPES = ("uint16", "uint32")


@dataclass(frozen=True)
class Split:
    path: Path
    tokens: int


@dataclass(frozen=True)
class Prepared:
    """What training reads of a prepared folder."""

    vocab_size: int
    dtype: np.dtype
    splits: dict[str, Split]


def meta_text(meta: dict) -> str:
    return json.dumps(meta, indent=2) + "\n"


def read_prepared(folder: str | os.PathLike) -> Prepared:
    """The folder's meta.json, checked: its token files exist and hold the tokens it counts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PrepareError(f"{folder} is not a folder (make one with `scalelab data prepare ... --out {folder}`)")
    meta = _read_meta(folder)
    splits = {}
    for name in SPLITS:
        split = meta["splits"][name]
        path = folder / split["file"]
        if not path.is_file():
            raise PrepareError(f"{path}: missing, though {folder / META} names it")
        size = path.stat().st_size
        itemsize = np.dtype(meta["dtype"]).itemsize
        if size != split["tokens"] * itemsize:
            raise PrepareError(f"{path} holds {size} bytes, {META} says {split['tokens']} {meta['dtype']} tokens "
                               f"({split['tokens'] * itemsize} bytes): prepare the folder again")
        splits[name] = Split(path, split["tokens"])
    return Prepared(meta["vocab_size"], np.dtype(meta["dtype"]), splits)


def _read_meta(folder: Path) -> dict:
    path = folder / META
    if not path.is_file():
        raise PrepareError(f"{folder} has no {META}: not a folder made by `scalelab data prepare` "
                           "(or one whose prepare did not finish)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PrepareError(f"{path}: cannot read it ({e})") from None
    ok = (isinstance(meta, dict) and meta.get("format") == FORMAT and isinstance(meta.get("vocab_size"), int)
          and meta.get("dtype") in DTYPES and isinstance(meta.get("splits"), dict)
          and all(isinstance(meta["splits"].get(s), dict) and isinstance(meta["splits"][s].get("file"), str)
                  and isinstance(meta["splits"][s].get("tokens"), int) for s in SPLITS))
    if not ok:
        raise PrepareError(f"{path}: not a {FORMAT} description (format, vocab_size, dtype, splits.train/val "
                           "with file and tokens)")
    if meta.get("version") != VERSION:
        raise PrepareError(f"{path}: version {meta.get('version')} of {FORMAT}, this scalelab reads version {VERSION}")
    return meta


def vocab_size_of(folder: Optional[str], default: Optional[int]) -> Optional[int]:
    """The vocabulary of a prepared folder; `default` without one. None when the folder cannot be
    read: loading the data then names the problem, as a ConfigError on `data.dir`."""
    if folder is None:
        return default
    try:
        return _read_meta(Path(folder))["vocab_size"]
    except PrepareError:
        return None


OmegaConf.register_new_resolver("prepared_vocab_size", vocab_size_of, replace=True)
