"""The output folder of `scalelab data prepare`, replaced whole or not at all.

Everything is written into a temporary folder inside it (`.prepare-PID.tmp`). Only once all of
it is written do the new files replace the old ones, meta.json last, with Ctrl-C and SIGTERM
ignored for those few renames. An interruption before then (Ctrl-C, SIGTERM, an error) leaves
the previous output as it was and removes the temporary folder; after a kill (SIGKILL, a crash
of the machine) the next prepare into the folder removes it.
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from scalelab.prepare.errors import PrepareError
from scalelab.prepare.meta import META

OUTPUTS = ("train.bin", "val.bin", "tokenizer.json", META)  # everything a prepare may leave in the folder
SCRATCH_PREFIX, SCRATCH_SUFFIX = ".prepare-", ".tmp"
MAX_VOCAB = 2**32  # token ids are stored as uint32 at most


def token_dtype(vocab_size: int, requested: str) -> np.dtype:
    """uint16 when the vocabulary fits it, else uint32 (`requested`: auto, uint16 or uint32)."""
    if vocab_size > MAX_VOCAB:
        raise PrepareError(f"a vocabulary of {vocab_size} ids does not fit the largest token file dtype, uint32 "
                           f"(at most {MAX_VOCAB} ids)")
    if requested == "uint16" and vocab_size > 2**16:
        raise PrepareError(f"--dtype uint16: a vocabulary of {vocab_size} ids does not fit uint16 (at most 65536 ids); "
                           "use --dtype uint32 or auto")
    if requested == "auto":
        return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)
    return np.dtype(requested)


class TokenFile:
    """A split's token file as it is written: ids appended in order, stored as `dtype`."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype, self.tokens = path, dtype, 0
        self.file = open(path, "wb", buffering=1 << 20)

    def append(self, parts: Sequence[np.ndarray]) -> None:
        if parts:
            ids = np.concatenate(parts).astype(self.dtype, copy=False)
            self.file.write(memoryview(ids))
            self.tokens += len(ids)

    def close(self) -> None:
        self.file.close()


class OutputFolder:
    """`with OutputFolder(path) as out:` write into `out.scratch`, then `out.publish(names)`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.scratch = self.path / f"{SCRATCH_PREFIX}{os.getpid()}{SCRATCH_SUFFIX}"
        if self.path.exists() and not self.path.is_dir():
            raise PrepareError(f"--out {path}: a file, not a folder")
        # the folders this prepare makes, innermost first: a failed one leaves none of them behind
        self.made = [p for p in [self.path, *self.path.parents] if not p.exists()]

    def __enter__(self) -> "OutputFolder":
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._remove_abandoned_scratch()
            self.scratch.mkdir()
        except OSError as e:
            raise PrepareError(f"--out {self.path}: cannot write there ({e.strerror or e})") from None
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        if error_type is not None:
            for folder in self.made:
                try:
                    folder.rmdir()
                except OSError:  # not empty (another process wrote there), or gone
                    break

    def _remove_abandoned_scratch(self) -> None:
        """Remove what a killed prepare left; refuse to write beside a prepare still running."""
        for entry in self.path.glob(f"{SCRATCH_PREFIX}*{SCRATCH_SUFFIX}"):
            pid_text = entry.name[len(SCRATCH_PREFIX):-len(SCRATCH_SUFFIX)]
            if pid_text.isdigit() and int(pid_text) != os.getpid() and _running(int(pid_text)):
                raise PrepareError(f"--out {self.path}: another prepare (process {pid_text}) is writing there")
            shutil.rmtree(entry, ignore_errors=True)

    def publish(self, names: Sequence[str]) -> None:
        """Move the files `names` (meta.json among them) from the scratch folder into the folder,
        removing the previous output's other files (tokenizer.json of an earlier bpe prepare, say).
        The old meta.json goes first and the new one last: a folder caught halfway by a kill has
        none, and training refuses it rather than read mismatched files."""
        assert META in names
        with _signals_ignored():
            (self.path / META).unlink(missing_ok=True)
            for name in OUTPUTS:
                if name not in names:
                    (self.path / name).unlink(missing_ok=True)
            for name in [n for n in names if n != META] + [META]:
                os.replace(self.scratch / name, self.path / name)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored for a moment (signal handlers belong to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python, which stays
                signal.signal(s, handler)
