"""Ctrl-C and SIGTERM: how a run stops early, and how the stop is reported.

Python raises KeyboardInterrupt wherever the main thread happens to be, and drops it when that
is inside a finalizer, so a Ctrl-C can be lost. During training, `StopOnCtrlC` only notes the
signal and raises KeyboardInterrupt itself after the current step, where nothing swallows it
(Lightning treats SIGTERM the same way, with its SIGTERMException). Lightning then ends `fit`
with sys.exit(1) for Ctrl-C and SystemExit(0) for SIGTERM; `exit_status` gives the status a
shell expects of a command a signal stopped, 128 + the signal.

Under data parallelism Lightning also asks, before every step, whether the first process has
received SIGTERM: a broadcast from it and a host read of the answer, which makes every process
wait for its device at every step (Lightning issue 21487). `ask_about_sigterm_every` asks every
`train.log_every` steps instead. A process that receives SIGTERM itself still stops after its
current step, as before; one the signal missed learns of it from the first process at most
`train.log_every` - 1 steps later.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Optional

import lightning as L

SIGNALS = {"KeyboardInterrupt": signal.SIGINT, "SIGTERMException": signal.SIGTERM}


def stop_cause(error: BaseException) -> str:
    """What stopped the run: the KeyboardInterrupt behind Lightning's sys.exit(1), or the error."""
    if type(error) is SystemExit and isinstance(error.__context__, KeyboardInterrupt):
        error = error.__context__
    return type(error).__name__


def exit_status(error: BaseException) -> Optional[int]:
    """128 + the signal for a stop by Ctrl-C or SIGTERM; None for any other ending."""
    number = SIGNALS.get(stop_cause(error))
    return None if number is None else 128 + number


def ask_about_sigterm_every(trainer: L.Trainer, steps: int) -> None:
    """Lightning's per-step SIGTERM broadcast (see the module docstring), every `steps` steps:
    at the same steps in every process, as a collective must be."""
    loop = trainer.fit_loop.epoch_loop
    every_step = getattr(loop, "_broadcast_sigterm_tensor", None)  # older Lightning has none
    if every_step is None or steps == 1:
        return

    def every_few_steps() -> None:
        if trainer.global_step % steps == 0:
            every_step()

    loop._broadcast_sigterm_tensor = every_few_steps


class StopOnCtrlC(L.Callback):
    def __init__(self) -> None:
        self.received = False
        self.previous: Any = None

    def on_train_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self.previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum, frame) -> None:
        self.received = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.received:
            self._restore()
            raise KeyboardInterrupt

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
