"""Every bad-input error is a ScalelabError, and `scalelab.cli.main` is their one handler."""
import pytest

from scalelab import cli
from scalelab.analysis.errors import AnalysisError
from scalelab.errors import USAGE_EXIT, ScalelabError
from scalelab.platform.errors import ConfigError
from scalelab.prepare.errors import PrepareError
from scalelab.record import RecordError
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.search_space import SearchSpaceError
from scalelab.sweeps.storage import StorageError

ERRORS = [ConfigError, SweepError, SearchSpaceError, StorageError, AnalysisError, PrepareError, RecordError]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_every_bad_input_error_is_one_line_and_exit_2(monkeypatch, capsys, error):
    assert issubclass(error, ScalelabError) and issubclass(error, ValueError)

    def command(argv):
        raise error("x=1 is refused:\n  x must be > 1")

    monkeypatch.setattr(cli, "run_command", command)
    assert cli.main(["fit", "anything"]) == USAGE_EXIT == 2
    out = capsys.readouterr()
    assert out.err == "scalelab: error: x=1 is refused: x must be > 1\n" and out.out == ""


def test_other_errors_are_not_caught(monkeypatch):
    def command(argv):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "run_command", command)
    with pytest.raises(RuntimeError):
        cli.main(["fit", "anything"])


@pytest.mark.parametrize("argv, code, stream, text", [
    (["--help"], 0, "out", "usage: scalelab train"),
    (["-h"], 0, "out", "scalelab COMMAND --help"),
    (["--version"], 0, "out", "scalelab 0."),
    (["bogus"], 2, "err", "scalelab: error: unknown command 'bogus': the commands are train, fit"),
    ([], 2, "err", "usage: scalelab train"),
])
def test_help_version_and_unknown_commands(capsys, argv, code, stream, text):
    assert cli.main(argv) == code
    assert text in getattr(capsys.readouterr(), stream)
