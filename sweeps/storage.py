"""Optuna storage from a URL, for the sweeper and for the jobs it launches.

The storage ladder:

- ``None`` / empty: one SQLite file, ``sqlite:///runs/sweeps/studies.db`` (created as needed);
  the sweeper's own ``storage: null`` is an in-memory study instead, which it never builds here.
- ``sqlite:///path.db``: SQLite through SQLAlchemy, with a busy timeout so that several
  processes on one file wait for the lock instead of failing with "database is locked".
- ``journal:PATH`` or a plain file path (no ``://``): Optuna's ``JournalFileBackend``, an
  append-only log that works on shared file systems (NFS) where SQLite locking does not.
- ``postgresql://user:password@host/db`` (or any other SQLAlchemy URL): ``RDBStorage``.

Jobs may run in another folder or on another machine, so they get the URL with absolute
paths, and a URL holding a password only through an environment variable (`url_for_jobs`).
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from scalelab.messages import first_line, has_credentials, redact_url
from scalelab.sweeps.config import DEFAULT_STORAGE, SweepError
from scalelab.sweeps.search_space import format_value

SQLITE_BUSY_TIMEOUT_S = 60
# Jobs read a storage URL that holds a password from here, never from their overrides.
STORAGE_ENV = "SCALELAB_OPTUNA_STORAGE"
_SQLITE = "sqlite:///"
_SCHEMA_RACE = ("already exists", "UNIQUE constraint", "duplicate key", "database is locked")


# The storage URL is malformed or the storage cannot be reached: a sweep setting (`storage`), or
# a job's `trial.storage`.
StorageError = SweepError


def resolve_url(url: str | None) -> str:
    """The URL actually used: the default SQLite file when none is given."""
    return url if url else DEFAULT_STORAGE


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url[len("journal:"):].removeprefix("//")
    return None if "://" in url else url


def _sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL (without its `?query`); None for an in-memory database
    or another URL."""
    path = url[len(_SQLITE):].split("?", 1)[0] if url.startswith(_SQLITE) else ""
    return path if path and path != ":memory:" else None


def url_for_jobs(url: str | None) -> str:
    """The `trial.storage` override value for jobs: file paths made absolute, so that a job
    finds the storage from any working directory, and a URL with a password replaced by a
    reference to `STORAGE_ENV`, which is set here for the jobs to inherit."""
    url = resolve_url(url)
    if has_credentials(url):
        os.environ[STORAGE_ENV] = url
        return "${oc.env:" + STORAGE_ENV + "}"
    journal, database = _journal_path(url), _sqlite_path(url)
    if journal is not None:
        url = "journal:" + os.path.abspath(journal)
    elif database is not None:
        url = _SQLITE + os.path.abspath(database) + url[len(_SQLITE) + len(database):]
    return format_value(url)


@contextlib.contextmanager
def _file_lock(path: str | None) -> Iterator[None]:
    """Serialize SQLite schema creation between processes (Optuna's is not race-free)."""
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _postgres_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads `postgresql://` as psycopg 3; fall back to psycopg2 if only it is here."""
    if not url.startswith("postgresql://"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> RDBStorage:
    database = _sqlite_path(url)
    lock_path = database + ".init-lock" if database else None
    for attempt in range(5):
        try:
            with _file_lock(lock_path):
                return RDBStorage(url, **kwargs)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors vary by driver
            # Two processes creating the schema at once: the loser sees the winner's rows.
            if not any(m in str(e) for m in _SCHEMA_RACE):
                raise
            time.sleep(0.2 * (attempt + 1))
    with _file_lock(lock_path):  # the last try: its error, if any, is the one reported
        return RDBStorage(url, **kwargs)


def make_storage(url: str | None, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, check: bool = False) -> BaseStorage:
    """Build the Optuna storage for ``url`` (see the module docstring).

    A heartbeat interval turns on Optuna's heartbeat table (RDB storages only). ``check=True``
    opens a connection now, so an unreachable server is reported before any trial starts, with
    the URL redacted.
    """
    url = resolve_url(url)
    journal = _journal_path(url)
    if journal == "":
        raise StorageError("journal storage needs a file path, e.g. journal:runs/sweeps/studies.log")
    try:
        if journal is not None:
            Path(journal).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(journal))
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:"):
            database = _sqlite_path(url)
            if database:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        else:
            kwargs["engine_kwargs"] = {"pool_pre_ping": True}
            url = _postgres_driver(url)
        if heartbeat_interval:
            kwargs["heartbeat_interval"] = int(heartbeat_interval)
            kwargs["grace_period"] = int(grace_period or 2 * heartbeat_interval)
        with warnings.catch_warnings():
            # Optuna calls its heartbeat table experimental; a sweep relies on it to find dead trials.
            warnings.filterwarnings("ignore", message=".*heartbeat_interval.*")
            storage = _rdb_storage(url, kwargs)
        if check:
            storage.get_all_studies()
        return storage
    except Exception as e:  # noqa: BLE001 - a driver, a server or a file system: one line
        reason = first_line(str(e)) or type(e).__name__
        raise StorageError(f"cannot open Optuna storage {redact_url(url)!r}: {reason}") from None
