"""A real PostgreSQL server for the sweeper tests, and a search for a secret in what a run wrote."""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

POSTGRES_SH = Path(__file__).resolve().parents[2] / ".ci/postgres.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a server with a database for the tests.

    SCALELAB_TEST_POSTGRES_URL (set by .ci/run, or by hand) names a server the tests leave as they
    found it. Without it the session starts a server of its own, on a free port with a fresh data
    directory, and stops and removes it at the end: a server that was running before, or that
    another test session uses, is never stopped."""
    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        pytest.skip("no PostgreSQL driver: pip install 'scalelab[postgres]'")
    url = os.environ.get("SCALELAB_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    # the script installs PostgreSQL only when asked explicitly (CI): that takes minutes
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        pytest.skip("no PostgreSQL server: install postgresql (or run .ci/postgres.sh as root) or set "
                    "SCALELAB_TEST_POSTGRES_URL")
    # /var/tmp, not pytest's tmp dir: as root the server runs as `postgres`, which must reach its data
    data = Path("/var/tmp") / f"scalelab-pg-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SCALELAB_PG_DATA": str(data), "SCALELAB_PG_PORT": str(_free_port())}
    try:
        proc = subprocess.run(["bash", str(POSTGRES_SH)], env=env, capture_output=True, text=True, timeout=120)
        if not proc.stdout.strip():
            pytest.skip(f"no PostgreSQL server could be started by {POSTGRES_SH.name}: "
                        f"{proc.stderr.strip()[-800:]}")
        yield proc.stdout.strip()
    finally:
        stop = subprocess.run(["bash", str(POSTGRES_SH), "stop"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert stop.returncode == 0, f"the test server in {data} did not stop: {stop.stderr}"
        if data.exists():
            shutil.rmtree(data)


@pytest.fixture(scope="session")
def postgres_password(postgres_url) -> str:
    password = urlsplit(postgres_url).password
    if not password:
        pytest.skip("the PostgreSQL URL has no password to look for")
    return password


def _where_shown(secret: str, folder: Path, *outputs: str) -> list[str]:
    """The files under `folder` (read as bytes: W&B's .wandb files are binary) and the outputs that
    hold `secret`, as paths relative to `folder` and `output N`."""
    needle = secret.encode()
    files = sorted({p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()})
    return [str(p.relative_to(folder)) for p in files] + [f"output {i}" for i, o in enumerate(outputs)
                                                          if secret in o]


@pytest.fixture(scope="session")
def where_shown():
    return _where_shown
