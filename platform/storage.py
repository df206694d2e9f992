"""Optuna storage from a URL, heartbeats, and credential redaction.

The storage ladder (see DESIGN.md):

- ``None`` / empty: one SQLite file, ``sqlite:///runs/sweeps/studies.db`` (created as needed).
- ``sqlite:///path.db``: SQLite through SQLAlchemy, with a busy timeout so that several
  processes on one file wait for the lock instead of failing with "database is locked".
- ``journal:PATH`` or a plain file path (no ``://``): Optuna's ``JournalFileBackend``, an
  append-only log that works on shared file systems (NFS) where SQLite locking does not.
- ``postgresql://user:password@host/db`` (or any other SQLAlchemy URL): ``RDBStorage``.

Heartbeats: ``RDBStorage`` has Optuna's own (``record_heartbeat`` / ``fail_stale_trials``).
The journal storage has none, so for it the last beat is kept as a trial system attribute and
stale trials are failed here with the same rule (no beat for ``grace_period`` seconds).
"""
from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_STORAGE = "sqlite:///runs/sweeps/studies.db"
SQLITE_BUSY_TIMEOUT_S = 60
HEARTBEAT_ATTR = "scalelab:heartbeat"

_SECRET_KEYS = {"password", "passwd", "pwd", "secret", "token", "access_token", "api_key", "apikey"}


class StorageError(RuntimeError):
    """The storage URL is malformed or the storage cannot be reached."""


def redact_url(url: Any) -> Any:
    """Return ``url`` with any password (userinfo or query parameter) replaced by ``***``.

    ``postgresql://alice:s3cret@db:5432/optuna`` -> ``postgresql://alice:***@db:5432/optuna``.
    Values that are not URLs (None, paths, ``sqlite:///x.db``) come back unchanged.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        # Unparseable: hide everything between '://' and the last '@' to be safe.
        return re.sub(r"://[^/]*@", "://***@", url)
    netloc, changed = parts.netloc, False
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc, changed = f"{user}:***@{host}", True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_KEYS for k, _ in pairs):
            pairs = [(k, "***" if k.lower() in _SECRET_KEYS else v) for k, v in pairs]
            query, changed = urlencode(pairs, safe="*"), True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def has_credentials(url: str | None) -> bool:
    return isinstance(url, str) and redact_url(url) != url


def resolve_url(url: str | None) -> str:
    """The URL actually used: the default SQLite file when none is given."""
    return url if url else DEFAULT_STORAGE


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url[len("journal:"):].removeprefix("//")
    if "://" not in url:
        return url
    return None


_SCHEMA_RACE = ("already exists", "UNIQUE constraint", "duplicate key", "database is locked")


@contextlib.contextmanager
def _file_lock(path: str | None):
    """Serialize SQLite schema creation between processes (Optuna's is not race-free)."""
    if path is None:
        yield
        return
    import fcntl

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
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def make_storage(
    url: str | None,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    check: bool = False,
):
    """Build the Optuna storage for ``url`` (see the module docstring).

    ``check=True`` opens a connection now, so an unreachable server is reported before any
    trial starts, with the URL redacted.
    """
    import optuna
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = resolve_url(url)
    journal = _journal_path(url)
    try:
        if journal is not None:
            if not journal:
                raise StorageError("journal storage needs a file path, e.g. journal:runs/sweeps/studies.log")
            Path(journal).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(journal))
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:"):
            path = url.split("sqlite:///", 1)[1] if "sqlite:///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        else:
            kwargs["engine_kwargs"] = {"pool_pre_ping": True}
            url = _postgres_driver(url)
        if heartbeat_interval:
            kwargs["heartbeat_interval"] = int(heartbeat_interval)
            kwargs["grace_period"] = int(grace_period or 2 * heartbeat_interval)
        lock_path = None
        if url.startswith("sqlite:///"):
            db = url[len("sqlite:///"):]
            if db and db != ":memory:":
                lock_path = db + ".init-lock"
        for attempt in range(6):
            try:
                with _file_lock(lock_path):
                    storage = RDBStorage(url, **kwargs)
                break
            except Exception as e:  # noqa: BLE001
                # Two processes creating the schema at once: the loser sees the winner's rows.
                if not any(m in str(e) for m in _SCHEMA_RACE) or attempt == 5:
                    raise
                time.sleep(0.2 * (attempt + 1))
        if check:
            storage.get_all_studies()
        return storage
    except StorageError:
        raise
    except (optuna.exceptions.OptunaError, ImportError, Exception) as e:  # noqa: BLE001
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StorageError(
            f"cannot open Optuna storage {redact_url(url)!r}: {redact_url(reason)}"
        ) from None


def record_heartbeat(storage, trial_id: int) -> None:
    """Tell the storage that ``trial_id`` is alive (Optuna's heartbeat, or our attribute)."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    if isinstance(storage, BaseHeartbeat):
        if is_heartbeat_enabled(storage):
            storage.record_heartbeat(trial_id)
        return
    try:
        storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
    except Exception:  # noqa: BLE001 - the trial finished meanwhile
        pass


def fail_stale_trials(study, grace_period: float | None = None) -> list[int]:
    """Mark RUNNING trials without a recent heartbeat FAIL, with the reason; return their numbers.

    Same rule as ``optuna.storages.fail_stale_trials`` (which cannot leave a reason, since a
    finished trial takes no attributes): ``RDBStorage`` finds the stale trials from its
    heartbeat table, the journal storage from our heartbeat attribute.
    """
    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
    from optuna.trial import TrialState

    storage = study._storage
    if isinstance(storage, BaseHeartbeat):
        if not is_heartbeat_enabled(storage):
            return []
        stale_ids = list(storage._get_stale_trial_ids(study._study_id))
    elif grace_period:
        now = time.time()
        stale_ids = [
            t._trial_id
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.system_attrs.get(HEARTBEAT_ATTR) is not None
            and now - float(t.system_attrs[HEARTBEAT_ATTR]) > grace_period
        ]
    else:
        return []
    failed = []
    for trial_id in stale_ids:
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", "stale: no heartbeat (process killed?)")
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(storage.get_trial_number_from_id(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another process got there first
    return failed
