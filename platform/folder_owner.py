"""A run folder has one owner: the run that writes into it, one at a time.

`own_folder(run_dir)` makes the folder and checks that it can take the run's files (a folder, not
a file; writable; `run.json` not a folder), then holds an exclusive lock on `.run_lock` for the
run's whole life. The lock is the kernel's (flock): a process that dies, however it dies, holds
nothing any more, and the next run takes the folder over. The file names the holder (pid and
host) for the refusal. A second run in a held folder is refused in one line before it writes
anything, instead of training beside the first one and replacing its record.

Only the first process of a run (rank 0) owns its folder: the other processes of a
data-parallel run share it. `CheckRunFolder` does the same check for `scalelab train` before
Hydra makes `hydra.run.dir` and writes its own files into it.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scalelab import record as rec
from scalelab.hydra_private import raise_through_hydra
from scalelab.platform.errors import RunFolderError

LOCK_FILE = ".run_lock"
ANOTHER_FOLDER = "choose another hydra.run.dir"

log = logging.getLogger(__name__)


@contextlib.contextmanager
def own_folder(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for this run while the block runs; RunFolderError where it cannot be."""
    if rank_zero_only.rank != 0:  # set before training starts: see platform/cluster.py
        yield
        return
    run_dir = Path(run_dir)
    check_folder(run_dir)
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # another user's run left it
        raise RunFolderError(f"cannot open {run_dir / LOCK_FILE} ({e.strerror or e}); {ANOTHER_FOLDER}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").partition("\n")[0] or "another process"
            raise RunFolderError(f"{run_dir} is in use by another run ({holder}); wait for it to end, or "
                                 f"{ANOTHER_FOLDER}") from None
        except OSError as e:  # a file system without locks: run, but unguarded
            log.warning("cannot lock %s (%s): a second run in this folder would not be refused", run_dir, e)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_folder(run_dir: Path) -> None:
    """`run_dir` exists (made here), is a folder this process can write into, and its record path
    is free for a file: checked before anything trains, so no run's result is lost at its end."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunFolderError(f"{run_dir} (hydra.run.dir) is a file, or inside one, not a folder; "
                             f"{ANOTHER_FOLDER}") from None
    except OSError as e:
        raise RunFolderError(f"cannot make the run folder {run_dir} ({e.strerror or e}); "
                             f"{ANOTHER_FOLDER} where you can write") from None
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        raise RunFolderError(f"the run folder {run_dir} is not writable ({e.strerror or e}); make it writable, "
                             f"or {ANOTHER_FOLDER}") from None
    record = run_dir / rec.FILE_NAME
    if record.exists() and not record.is_file():
        raise RunFolderError(f"{record} is not a file (a folder?): the run could not write its record there; "
                             f"remove or rename it, or {ANOTHER_FOLDER}")


class CheckRunFolder(Callback):
    """For `scalelab train` (conf/config.yaml, `hydra.callbacks`): the check of `own_folder` before
    Hydra makes `hydra.run.dir` and writes `.hydra/` and its log there, so that a refused command
    changes nothing in the folder. The run itself takes the lock (`train`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            with own_folder(Path(OmegaConf.select(config, "hydra.run.dir"))):  # the folder Hydra makes next
                pass
        except RunFolderError as e:
            raise_through_hydra(e)
