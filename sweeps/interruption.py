"""Ctrl-C and SIGTERM during a sweep: how they reach the sweep, and what it says.

The trials in flight are then marked FAIL, not counted (`Lanes.interrupt`), and the sweep exits
with status 130; the same command continues it.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Optional, Sequence

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class StopSignals:
    """Which stop signal came, if one did."""

    def __init__(self) -> None:
        self.stop_signal: Optional[str] = None  # SIGINT or SIGTERM, once one has come

    @contextlib.contextmanager
    def raise_keyboard_interrupt(self) -> Iterator[None]:
        """SIGINT (Ctrl-C) and SIGTERM (a scheduler's or `kill`'s stop) raise KeyboardInterrupt,
        as Ctrl-C does by default, and are noted: a job may turn the KeyboardInterrupt into
        SystemExit on its way out (Lightning exits with 1). Signals are the main thread's only."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: Any) -> None:
            self.stop_signal = signal.Signals(signum).name
            raise KeyboardInterrupt(self.stop_signal)

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                # None: a handler installed from outside Python, which cannot be put back
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def interrupted(self, error: BaseException) -> bool:
        """A signal came, or a job turned the KeyboardInterrupt it got into SystemExit (Lightning
        does, and a training run then exits 130 from it): the interrupt is in the chain."""
        if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and self.stop_signal is not None):
            return True
        while isinstance(error, SystemExit):
            error = error.__cause__ or error.__context__
        return isinstance(error, KeyboardInterrupt)


def interrupted_line(study_name: str, numbers: Sequence[int]) -> str:
    """What an interrupted sweep says, in one line."""
    if numbers:
        shown = ", ".join(str(n) for n in sorted(numbers))
        what = f"trial(s) {shown} of study {study_name} marked FAIL (interrupted)"
    else:
        what = "no trial of this process was running"
    return f"scalelab sweeper: interrupted; {what}; rerun the same command to continue"
