"""The test suite, a package: a test module imports a shared helper by its package name
(`from tests.wandb_file import read_run`, `from tests.sweeps.sweep_helpers import run`), never
through a sys.path edit.

pytest runs with `--import-mode=importlib` (pyproject.toml): it imports each test module as
`tests.<folder>.<module>`, its parent packages first, and puts nothing on sys.path. Run it from
the repository root, as `make test` does: `python -m pytest` started inside tests/ would put
tests/ on sys.path, where tests/platform shadows the standard library's platform module
(tests/platform/__init__.py then stops with an ImportError that says so).

A folder of test modules has an `__init__.py`. tests/sweeps/examples and tests/sweeps/toy_conf
do not: they hold Hydra apps run as scripts by path (`python .../sphere.py`) and their configs,
found by the apps' `config_path`; an example's `custom_search_space` names a module beside it,
which Python finds because a script's own folder is the first entry of its sys.path.
Scripts run as subprocesses (tests/sweeps/toy_app.py, tests/platform/count_sigterm_broadcasts.py)
import only the installed `scalelab`, nothing from tests/, so they need no import path either."""
