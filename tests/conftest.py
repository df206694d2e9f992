"""Fixtures every test folder uses."""
from types import SimpleNamespace

import pytest
from scalelab.cli import main

from tests.hydra_state import clear_hydra_state


@pytest.fixture(autouse=True)
def no_hydra_state_left_behind():
    """Hydra keeps the last app's config in process-wide singletons, which a training run reads to
    learn where it belongs: an app run in-process by one test must not place another test's run."""
    yield
    clear_hydra_state()


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """`scalelab train ...` as a user runs it: the command's own `main`, in this process (start-up
    is most of a subprocess's time; the subprocess tests cover the installed command)."""

    def run(*args: str, cwd):
        clear_hydra_state()  # a test may run the command twice
        monkeypatch.chdir(cwd)
        monkeypatch.setenv("WANDB_MODE", "disabled")
        try:
            code = main(["train", *args])
        except SystemExit as e:
            code = e.code
        except Exception:  # noqa: BLE001 - an uncaught exception: Python's exit status 1
            code = 1
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


# The files whose tests take longest (`pytest --durations`: about 55, 50, 47 and 36 s of one worker).
LONGEST = ("tests/scaling/test_scaling_study.py", "tests/platform/test_cluster.py",
           "tests/scaling/test_scaling_variants.py", "tests/platform/test_cluster_jobs.py")


def pytest_collection_modifyitems(items):
    """The longest files first, then the other files with `slow` tests: `make test` hands whole
    files to its workers in collection order, and a long file that starts last would end long
    after the others."""
    def order(item):
        path = item.nodeid.split("::")[0]
        return (LONGEST.index(path) if path in LONGEST else len(LONGEST), item.get_closest_marker("slow") is None)

    items.sort(key=order)
