"""Fixtures of the prepare tests: `scalelab data prepare` run in this process."""
from types import SimpleNamespace

import pytest

from scalelab.cli import main

from tests.prepare.prepare_helpers import make_documents


@pytest.fixture
def documents():
    return make_documents(40)


@pytest.fixture
def run_prepare(capsys):
    """`scalelab data prepare ARGS` through the command's own `main` (start-up is most of a
    subprocess's time; the slow tests run the command itself): exit status, stdout, stderr."""

    def run(*args):
        code = main(["data", "prepare", *map(str, args)])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run
