"""Training throughput of a model shape on this machine, measured in a second or so.

A scaling study prices itself before its first trial: each model size is timed for a few
steps of forward, backward and AdamW on random tokens, with the threads its runs will use.
"""
from __future__ import annotations

import statistics
import time

import torch

from .model import GPT, GPTShape

WARMUP_STEPS = 2


def tokens_per_second(shape: GPTShape, batch_size: int, threads: int, steps: int = 12) -> float:
    """Training tokens per second of `shape` at `batch_size` sequences per step, from the median
    step: a step that another process delayed (a few of a dozen, on a shared machine) does not
    make a whole study look ten times dearer."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = GPT(shape)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tokens = torch.randint(0, shape.vocab_size, (batch_size, shape.context + 1))
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        times = []
        for step in range(WARMUP_STEPS + steps):
            started = time.perf_counter()
            model.loss(inputs, targets).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step >= WARMUP_STEPS:
                times.append(time.perf_counter() - started)
        return batch_size * shape.context / statistics.median(times)
    finally:
        torch.set_num_threads(previous)
