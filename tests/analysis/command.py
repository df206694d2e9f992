"""The `scalelab` command in this process, as the analysis tests call it."""
from scalelab.cli import main


def run_command(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `scalelab ARGV...`."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err
