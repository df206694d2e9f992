"""Training data: bytes of local text files, or token ids (a folder made by `scalelab data prepare`,
or pre-tokenized uint16 .bin files). Never a download.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted one would, without any data-loader state in the checkpoint.
"""
from __future__ import annotations

import bisect
import glob
import os
import sysconfig
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset

from scalelab.platform.errors import ConfigError
from scalelab.prepare.errors import PrepareError
from scalelab.prepare.meta import read_prepared  # also registers conf/data/tokens.yaml's resolver


@dataclass
class Corpus:
    train: np.ndarray  # 1-D token ids (uint8, uint16 or uint32, possibly memory-mapped)
    val: np.ndarray
    vocab_size: int
    description: str


def stdlib_sources() -> list[str]:
    """The running interpreter's standard library sources: text every Python installation has."""
    return [os.path.join(sysconfig.get_paths()["stdlib"], "*.py")]


def load_corpus(data) -> Corpus:
    if data.kind == "bytes":
        return _load_bytes(list(data.paths) if data.paths else stdlib_sources(), data.val_fraction)
    # data=tokens: the schema allows no other kind
    if data.dir is not None:
        return _load_prepared(data.dir, data.vocab_size, data.train_path, data.val_path)
    return _load_tokens(data.train_path, data.val_path, data.vocab_size)


def _load_bytes(patterns: list[str], val_fraction: float) -> Corpus:
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
        if not matches:
            raise ConfigError(f"data.paths: no file matches {pattern!r}")
        files += matches
    files = sorted(set(files))
    if len(files) < 2:
        raise ConfigError(f"data.paths: the split into train and validation is by file and needs at least 2 files, found {len(files)}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction={val_fraction} must lie strictly between 0 and 1")
    # Deterministic split by file: order by a hash of the name, the first files go to validation.
    by_hash = sorted(files, key=lambda p: (zlib.crc32(os.path.basename(p).encode()), p))
    n_val = max(1, round(val_fraction * len(files)))
    val_files, train_files = by_hash[:n_val], by_hash[n_val:]

    def read(paths: list[str]) -> np.ndarray:
        chunks = [np.fromfile(p, dtype=np.uint8) for p in sorted(paths)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)

    train, val = read(train_files), read(val_files)
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"data.paths: the corpus is empty ({len(train)} training and {len(val)} validation bytes in {len(files)} files)")
    return Corpus(train, val, 256, f"{len(files)} files ({len(train_files)} train, {len(val_files)} validation)")


def _load_prepared(folder: str, vocab_size: int | None, train_path: str | None, val_path: str | None) -> Corpus:
    """The folder `scalelab data prepare` made: its meta.json gives the files, dtype and vocabulary."""
    if train_path or val_path:
        raise ConfigError("data.dir and data.train_path / data.val_path name the data twice: give one or the other")
    try:
        prepared = read_prepared(folder)
    except PrepareError as e:
        raise ConfigError(f"data.dir: {e}") from None
    vocab_size = prepared.vocab_size if vocab_size is None else vocab_size
    if vocab_size < prepared.vocab_size:
        raise ConfigError(f"data.vocab_size={vocab_size} is smaller than the vocabulary of data.dir={folder} "
                          f"({prepared.vocab_size}, its meta.json)")
    train, val = (_token_file("data.dir", str(prepared.splits[s].path), prepared.dtype) for s in ("train", "val"))
    return Corpus(train, val, vocab_size, f"{folder} ({prepared.dtype.name}, vocabulary {prepared.vocab_size})")


def _load_tokens(train_path: str | None, val_path: str | None, vocab_size: int) -> Corpus:
    arrays = []
    for key, path in (("data.train_path", train_path), ("data.val_path", val_path)):
        if not path:
            raise ConfigError(f"{key} is required with data=tokens: a uint16 .bin file of token ids "
                              "(or give data.dir, a folder made by `scalelab data prepare`)")
        arrays.append(_token_file(key, path, np.dtype(np.uint16)))
    return Corpus(arrays[0], arrays[1], vocab_size, f"{train_path} + {val_path}")


def _token_file(key: str, path: str, dtype: np.dtype) -> np.ndarray:
    if not os.path.isfile(path):
        raise ConfigError(f"{key}: no such file {path!r}")
    size = os.path.getsize(path)
    if size % dtype.itemsize:
        raise ConfigError(f"{key}: {path!r} is not a {dtype.name} token file (its size is not a multiple of "
                          f"{dtype.itemsize})")
    if size == 0:
        raise ConfigError(f"{key}: {path!r} is empty")
    return np.memmap(path, dtype=dtype, mode="r")


def windows(tokens: np.ndarray, starts: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for windows of length context starting at `starts`.

    Each is contiguous: a pinned copy of a view (of the windows one token longer) would not
    reach a GPU from pinned memory, as torch first copies a non-contiguous tensor into a new,
    pageable one, and a copy from pageable memory may wait for the device's queue."""
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    block = tokens[idx].astype(np.int64)
    return torch.from_numpy(block[:, :-1].copy()), torch.from_numpy(block[:, 1:].copy())


class TrainBatches(IterableDataset):
    """One Lightning epoch of training batches: from the trainer's current step up to the next of
    `epoch_ends` (the evaluation steps, the last being the run's last step). Each batch is random
    windows drawn from a generator seeded with (seed, step)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, context: int, seed: int, epoch_ends: Sequence[int]):
        self.tokens, self.batch_size, self.context, self.seed = tokens, batch_size, context, seed
        self.epoch_ends = sorted(epoch_ends)
        self.current_step: Callable[[], int] = lambda: 0  # the module points it at the trainer's step

        # Under data parallelism each process takes its share of the same global batch, so a run
        # sees the same data on one device or several.
        self.rank, self.world_size = 0, 1
        self.pin = False  # batches in pinned memory, for a copy to a GPU without a synchronisation

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.tokens) - self.context - 1, size=self.batch_size)
        return windows(self.tokens, starts[self.rank::self.world_size], self.context)

    def __iter__(self):
        # Read the step lazily (at the first batch): by then a resumed trainer has restored it.
        start = self.current_step()
        later = self.epoch_ends[bisect.bisect_right(self.epoch_ends, start):]
        for step in range(start, later[0] if later else start):
            batch = self.batch(step)
            yield tuple(t.pin_memory() for t in batch) if self.pin else batch


class HeldOut(IterableDataset):
    """The held-out set (windows evenly spaced through the validation split), and the evenly
    spread part of it that every evaluation measures (`curve`).

    The first and the final evaluation read all of it: the whole set gives the run's initial and
    final loss, and the curve part, from the same forward passes, the curve's first and last
    points. The evaluations in between read the curve part only, so a curve of many points costs
    little and all its points are measured on the same windows. Batches are (inputs, targets,
    whether each window is in the curve part); `final()`, read when an evaluation starts, picks."""

    def __init__(self, tokens: np.ndarray, eval_tokens: int, curve_tokens: int, context: int, batch_size: int):
        n_windows = max(1, min(eval_tokens // context, (len(tokens) - 1) // context))
        starts = np.linspace(0, len(tokens) - context - 1, n_windows).astype(np.int64)
        in_curve = np.zeros(n_windows, dtype=bool)
        in_curve[np.linspace(0, n_windows - 1, min(n_windows, max(1, curve_tokens // context))).round().astype(int)] = True
        self.full = _batches(tokens, starts, in_curve, context, batch_size)
        self.curve = _batches(tokens, starts[in_curve], in_curve[in_curve], context, batch_size)
        self.tokens, self.curve_tokens = n_windows * context, int(in_curve.sum()) * context
        self.final: Callable[[], bool] = lambda: True  # the module points it at the trainer's state

    def __iter__(self):
        return iter(self.full if self.final() else self.curve)


def _batches(tokens: np.ndarray, starts: np.ndarray, in_curve: np.ndarray, context: int, batch_size: int) -> list:
    return [(*windows(tokens, starts[i:i + batch_size], context), torch.from_numpy(in_curve[i:i + batch_size]))
            for i in range(0, len(starts), batch_size)]
