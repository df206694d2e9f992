"""The divergence check, without a host synchronisation per step where the device allows it.

A run diverges at the first step whose training loss (the mean over processes) is not finite or
exceeds `train.divergence_factor` x the initial loss. That step's update is skipped, so the
weights stay those before it, and the run stops there: a result (this learning rate is
unstable), not a crash.

Reading a loss on the host waits for the device to finish the step, and a GPU then idles while
the host prepares the next. So when the optimizer can skip an update on the device (AdamW's
fused kernel, through the `found_inf` input that mixed-precision loss scaling also uses), every
step is judged on the device, and the host reads the verdict only every `train.log_every` steps
and before each evaluation. From the diverging step on, every update is skipped on the device:
whenever the host reads it, the weights, the decision and the record are those of a check at
every step. Without such an optimizer (the default on a CPU, where reading a value is no
synchronisation: there is no queue of device work to wait for) the loss is read and judged on the
host at every step, which costs less than the tensor operations of a judgement on the device,
and the diverging step is skipped by the training loop.
"""
from __future__ import annotations

import math
from typing import Collection

import torch


class DivergenceCheck:
    def __init__(self, optimizer: torch.optim.Optimizer, limit: float, device: torch.device, loss_scaling: bool):
        self.optimizer, self.limit = optimizer, limit
        # 16-bit loss scaling sets `found_inf` itself, for its own skipped steps
        self.on_device = bool(optimizer.defaults.get("fused")) and not loss_scaling
        self.host_limit: float | None = None  # rounded to the loss's dtype, as a comparison with the tensor rounds it
        self.first = torch.full((), -1, dtype=torch.long, device=device)  # the first diverging step, on the device
        self.first_on_host: int | None = None  # the same, judged on the host

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Judge `step`'s loss; on the device, from the first bad step on, its updates are skipped."""
        if not self.on_device:
            if self.host_limit is None:
                self.host_limit = torch.tensor(self.limit, dtype=loss.dtype).item()
            value = loss.item()
            if self.first_on_host is None and not (math.isfinite(value) and value <= self.host_limit):
                self.first_on_host = step
            return
        bad = ~torch.isfinite(loss) | (loss > self.limit)
        self.first = torch.where((self.first < 0) & bad, step, self.first)
        self.optimizer.found_inf = (self.first >= 0).float()

    def must_read(self, step: int, read_points: Collection[int], log_every: int) -> bool:
        """Whether the host reads the verdict at `step`: every step unless the device skips updates."""
        return not self.on_device or (step + 1) % log_every == 0 or step + 1 in read_points

    def diverged_at(self) -> int | None:
        """The first diverging step so far (on the device: a host read of its verdict)."""
        if not self.on_device:
            return self.first_on_host
        step = int(self.first)
        return None if step < 0 else step
