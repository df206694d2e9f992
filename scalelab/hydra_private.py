"""Every use of Hydra's private API, in one module: what scalelab relies on, and why.

hydra-core is pinned to the minor version these were checked with (pyproject.toml:
`>=1.3.2,<1.4`). `RELIED_ON` lists each private name with the parameters scalelab passes it,
and tests/test_hydra_private.py checks every row, and each message text below, against the
installed Hydra: an upgrade that changes one fails there, naming it, not somewhere in a run.
A new use of Hydra's private API belongs here, with its row.

- `hydra._internal.utils._run_hydra(args, args_parser, task_function, config_path,
  config_name)` and `get_args_parser()` (`run_app`): what `@hydra.main` does, but on the
  arguments `scalelab train` is given instead of `sys.argv`, which Lightning's data-parallel
  launcher reruns as it is. `hydra.version.setbase` stands in for `hydra.main`'s `version_base`.
- What `_run_hydra` does with an exception (`hydra._internal.utils.run_and_report`): with
  `HYDRA_FULL_ERROR=1` it raises it again, so `run_app` sets that and every error of a job or
  of the sweeper reaches `scalelab.cli.main`, the one handler of bad input. Without it, Hydra
  prints a `hydra.errors.CompactHydraException` as its message alone and exits 1, anything
  else with a traceback: `OneLineInHydra` is that class, and `SweepError` is one, so a plain
  Hydra app using the sweeper reports a bad sweep setting in one line too.
- `hydra.core.utils.JobReturn._return_value` (`job_result`): what a job returned, or the
  exception it raised. The public `return_value` raises a failed job's exception again, after
  writing "Error executing job with overrides: [...]" to stderr; Hydra's `run_job` makes every
  Exception of the task such a failed JobReturn. So `run_app` carries a single run's
  `ScalelabError` through `run_job` as a BaseException, which `run_job` lets pass, and the
  CLI's line is the only one.
- What Hydra does with a callback's exception (`hydra._internal.callbacks.Callbacks`): an
  Exception becomes a warning and the run goes on. `raise_through_hydra` carries a
  ScalelabError past it as the same BaseException, so that a callback can refuse a run.
- The text of Hydra's messages (`input_error_line`, `MESSAGE_TEXTS`): a composition error's
  "Config search path" tail and its hydra.cc links left out, "Available options in 'x':" and
  the options joined into one line; the `ValueError`s of `_run_hydra`'s checks of its flags
  ("Only one of --run, ...", "The --resolve flag ...") told from other ValueErrors by their text.
- `hydra._internal.utils._locate(path)` (`locate`): the function `custom_search_space` names,
  found as hydra-optuna-sweeper's `get_method` finds it.
- A patch of the static method `hydra._internal.config_loader_impl.ConfigLoaderImpl.
  validate_sweep_overrides_legal(overrides, run_mode, from_shell)`, which sets the field
  `Override._value` (`allow_params_on_command_line`): Hydra refuses sweep syntax in any
  `hydra.*` override, but `+hydra.sweeper.params.x=interval(0, 1)` describes a search space,
  not a sweep; the patch keeps such a value as a string, as if a preset had written it.
- Hydra's plugin scan (`hydra.core.plugins.Plugins`, built on first use) imports every module
  under the `hydra_plugins` namespace and registers each concrete plugin class of its
  namespace: `hydra_plugins/scalelab_sweeper` relies on that and otherwise calls only the
  public `Plugins.register` (tests/sweeps/test_plugin_discovery.py, test_registration.py).
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, NamedTuple, NoReturn, Optional, Sequence

from hydra import version
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import _locate, _run_hydra, get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import ValueType
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException, OverrideParseException
from hydra.types import RunMode

from scalelab.errors import ScalelabError


class Relied(NamedTuple):
    module: str
    name: str  # in `module`: "function" or "Class.attribute"
    params: Optional[tuple[str, ...]]  # the parameters scalelab passes; None: not called (a field, a class)
    used_by: str  # where in this module


RELIED_ON = [
    Relied("hydra._internal.utils", "_run_hydra",
           ("args", "args_parser", "task_function", "config_path", "config_name"), "run_app"),
    Relied("hydra._internal.utils", "get_args_parser", (), "run_app"),
    Relied("hydra._internal.utils", "run_and_report", ("func",), "run_app, OneLineInHydra"),
    Relied("hydra.version", "setbase", ("ver",), "run_app"),
    Relied("hydra.errors", "CompactHydraException", None, "OneLineInHydra, input_error_line"),
    Relied("hydra.core.utils", "JobReturn._return_value", None, "job_result"),
    Relied("hydra._internal.utils", "_locate", ("path",), "locate"),
    Relied("hydra._internal.config_loader_impl", "ConfigLoaderImpl.validate_sweep_overrides_legal",
           ("overrides", "run_mode", "from_shell"), "allow_params_on_command_line"),
    Relied("hydra.core.override_parser.types", "Override._value", None, "allow_params_on_command_line"),
]

# Hydra's message texts `input_error_line` reads (checked against real errors by the tests).
SEARCH_PATH_TAIL = "Config search path"
DOCS_LINK = "hydra.cc/docs"
OPTIONS_HEADER = "Available options in"
FLAG_ERRORS = ("Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified",
               "The --resolve flag can only be used in conjunction with --cfg or --help")
MESSAGE_TEXTS = (SEARCH_PATH_TAIL, DOCS_LINK, OPTIONS_HEADER, *FLAG_ERRORS)

FULL_ERROR_ENV = "HYDRA_FULL_ERROR"
PARAMS_PREFIX = "hydra.sweeper.params."

# Hydra's own report of an app's exception prints one of this class as its message alone (and a
# hint), exit status 1, as it prints its composition errors; any other exception with a traceback.
OneLineInHydra = CompactHydraException


# ------------------------------------------------------------------------- running the app
def run_app(args: Sequence[str], task_function: Callable[[Any], Any], config_path: str, config_name: str) -> None:
    """Hydra's app on `args` (overrides, `-m`, `--cfg job`, ...), every error raised, none printed.

    A `ScalelabError` of the task, or of the sweeper, comes as it was raised; Hydra's own report
    of bad input (a composition error, an override it cannot parse, its flags) as a
    `ScalelabError` holding its message in one line, unless the user set HYDRA_FULL_ERROR=1."""
    version.setbase("1.3")
    parser = get_args_parser()
    parsed = parser.parse_args(list(args))
    user_setting = os.environ.get(FULL_ERROR_ENV)
    os.environ[FULL_ERROR_ENV] = "1"  # Hydra raises instead of printing
    try:
        _run_hydra(args=parsed, args_parser=parser, task_function=_carrying_input_errors(task_function),
                   config_path=config_path, config_name=config_name)
    except _CarriedInputError as carried:
        raise carried.error from None
    except ScalelabError:
        raise
    except Exception as e:
        line = input_error_line(e)
        if line is None or user_setting == "1":
            raise
        raise ScalelabError(line) from e
    finally:
        if user_setting is None:
            os.environ.pop(FULL_ERROR_ENV, None)
        else:
            os.environ[FULL_ERROR_ENV] = user_setting


class _CarriedInputError(BaseException):
    """A single run's ScalelabError on its way through Hydra's `run_job` and callbacks, which catch
    Exception."""

    def __init__(self, error: ScalelabError) -> None:
        super().__init__(str(error))
        self.error = error


def raise_through_hydra(error: ScalelabError) -> NoReturn:
    """Raise `error` from code Hydra runs (a callback) as `run_app` raises a job's bad input."""
    raise _CarriedInputError(error) from None


def _carrying_input_errors(task_function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(task_function)  # the same __module__: Hydra names the job after it
    def task(cfg: Any) -> Any:
        try:
            return task_function(cfg)
        except ScalelabError as e:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # the launcher's JobReturn takes it to the sweeper, which records the failed trial
            raise _CarriedInputError(e) from None

    return task


def input_error_line(error: BaseException) -> Optional[str]:
    """Hydra's report of bad input as one line; None for any other error."""
    if isinstance(error, OverrideParseException) and not str(error).isascii():  # the lexer says nothing of quoting
        return (f"{hydra_error_line(error)}: a value with letters outside ASCII or Hydra's special characters "
                "goes in quotes inside the override, e.g. \"hydra.run.dir='runs/café'\"")
    if isinstance(error, CompactHydraException):
        return hydra_error_line(error)
    if type(error) is ValueError and str(error).startswith(FLAG_ERRORS):
        return str(error)
    return None


def hydra_error_line(error: BaseException) -> str:
    """Hydra's composition error and its cause in one line: the setting, then what is allowed."""
    text = str(error).split(SEARCH_PATH_TAIL)[0]
    lines = [line.strip().rstrip(".") for line in text.splitlines() if line.strip() and DOCS_LINK not in line]
    if error.__cause__ is not None and str(error.__cause__).strip():
        lines.insert(1, str(error.__cause__).strip().splitlines()[0].rstrip("."))
    out: list[str] = []
    for line in lines:  # "Available options in 'schedule':" and one option per line -> one clause
        if out and out[-1].endswith((":", ",")):
            out[-1] += f" {line},"
        else:
            out.append(line)
    return "; ".join(part.rstrip(",") for part in out)


# ------------------------------------------------------------------------- the sweeper's uses
def job_result(job: JobReturn) -> Any:
    """What the job returned, or the exception it raised (without `return_value`'s stderr line)."""
    return job._return_value


def locate(dotted_path: str) -> Any:
    """The object at `dotted_path`, its module imported: Hydra's own lookup, as upstream's `get_method`."""
    return _locate(dotted_path)


def allow_params_on_command_line() -> None:
    """Let `'+hydra.sweeper.params.optim.lr=tag(log, interval(1e-4, 1e-1))'` through (idempotent).
    Jobs compose their config again, maybe in another process without the patch: the sweeper
    quotes such values in the overrides jobs read (`scalelab.sweeps.job_overrides`)."""
    original = ConfigLoaderImpl.validate_sweep_overrides_legal
    if getattr(original, "scalelab_patch", False):
        return

    def validate(overrides, run_mode, from_shell):  # type: ignore[no-untyped-def]
        for o in overrides:
            if o.key_or_group.startswith(PARAMS_PREFIX) and o.is_sweep_override() and o.input_line:
                o.value_type = ValueType.ELEMENT
                o._value = o.input_line.split("=", 1)[1]
        return original(overrides=overrides, run_mode=run_mode, from_shell=from_shell)

    validate.scalelab_patch = True  # type: ignore[attr-defined]
    validate.__wrapped__ = original  # type: ignore[attr-defined]  # inspect.signature: Hydra's own
    ConfigLoaderImpl.validate_sweep_overrides_legal = staticmethod(validate)  # type: ignore[method-assign]
