"""Lightning's host work at every step, less what a run does not use (`benchmarks/overhead.py --host`).

At every step Lightning calls some 13 hooks of the module and 6 of every callback, each inside
its profiler's context (~1 us each, even for the default profiler, which records nothing) and
with the module's `_current_fx_name` set and restored around it through nn.Module's
`__setattr__` (~1 us each). On a GPU whose step is short, that host work is time the device
waits. Trimmed, with nothing that runs changed:

- `QuietProfiler`: Lightning's default profiler without the context it makes for each call;
- `skip_idle_step_hooks`: the per-step hooks a callback (or the module) leaves as Lightning's
  no-ops are set to None on it, and Lightning calls only the hooks that are callable;
- in `LanguageModelTask`: `_current_fx_name` set as a plain attribute; `training_step`'s
  signature, which Lightning reads at every step, kept; the training batches without a
  DataLoader and, on a CPU, where they are made, without Lightning's transfer; the clipped
  parameters listed once; the training loss sent to the loggers without `self.log`;
- `DivergenceCheck` judges a loss on the host where it reads it at every step anyway.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable

import lightning as L
from lightning.pytorch.profilers import PassThroughProfiler

# the hooks of callbacks and of the module that Lightning calls at every training step, none of
# whose results it uses
STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
              "on_before_zero_grad", "on_train_batch_end")

_NO_CONTEXT = nullcontext()  # reusable: it holds no state


class QuietProfiler(PassThroughProfiler):
    """Profiles nothing, as Lightning's default; `profile` returns one shared empty context
    instead of making a generator-based one per call."""

    def profile(self, action_name: str) -> nullcontext:
        return _NO_CONTEXT


def skip_idle_step_hooks(hooked: Iterable[L.Callback | L.LightningModule]) -> None:
    """Set to None, on each callback or module, the per-step hooks its class does not define."""
    for obj in hooked:
        base = L.LightningModule if isinstance(obj, L.LightningModule) else L.Callback
        for name in STEP_HOOKS:
            if getattr(type(obj), name) is getattr(base, name):
                setattr(obj, name, None)
