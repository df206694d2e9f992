"""CPU training throughput of a mixture-of-experts GPT against the dense GPT of equal active
parameters, side by side in one process, rounds interleaved (issue 26's target: the MoE within 2x,
ratio >= 0.5).

Equal active parameters: the MoE's top_k experts together are as wide as the dense MLP
(expert_width = 4 x width / top_k), so a token uses the same MLP parameters in both, plus the
router's width x experts. Each round times `--steps` training steps (forward, backward, AdamW) of
each model after a warm-up step, on random byte tokens; the ratio printed is the median of the
rounds' own ratios of MoE tokens/s over dense tokens/s.

    .venv/bin/python benchmarks/moe_throughput.py [--width 128] [--depth 4] [--experts 8] [--top-k 2]
        [--steps 30] [--rounds 3] [--threads 2]

Run it on a quiet machine: another process on the same cores skews one model's rounds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from scalelab.platform.model import GPT, GPTShape, count_parameters
from scalelab.platform.moe import MoEShape

VOCAB = 256


def tokens_per_second(model: GPT, batches: torch.Tensor) -> float:
    """Training tokens per second over `batches` (the first step, a warm-up, not timed)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(batch[:, :-1], batch[:, 1:])
        if model.moe_layers:
            loss = loss + model.router_loss()
        loss.backward()
        optimizer.step()

    step(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    elapsed = time.perf_counter() - start
    return (len(batches) - 1) * batches[0, :, :-1].numel() / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dense_shape = GPTShape(args.width, args.depth, args.heads, args.context, VOCAB)
    moe = MoEShape(args.experts, args.top_k, expert_width=4 * args.width // args.top_k)
    torch.manual_seed(0)
    models = {"dense": GPT(dense_shape), "moe": GPT(GPTShape(args.width, args.depth, args.heads, args.context, VOCAB, moe=moe))}
    for name, model in models.items():
        n, n_total = count_parameters(model)
        print(f"{name:>5}: N (active, non-embedding) = {n:,}  N_total = {n_total:,}")
    batches = torch.randint(0, VOCAB, (args.steps + 1, args.batch, args.context + 1),
                            generator=torch.Generator().manual_seed(1))

    ratios = []
    for r in range(args.rounds):
        speed = {name: tokens_per_second(model, batches) for name, model in models.items()}
        ratios.append(speed["moe"] / speed["dense"])
        print(f"round {r + 1}: dense {speed['dense']:,.0f} tokens/s, MoE ({args.experts} experts, top {args.top_k}) "
              f"{speed['moe']:,.0f} tokens/s, ratio {ratios[-1]:.2f}")
    ratio = statistics.median(ratios)
    print(f"MoE / dense throughput at equal active parameters: {ratio:.2f} (median of {args.rounds} rounds; "
          f"target >= 0.5, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
