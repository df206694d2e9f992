"""Platform overhead: the same model, data and steps trained through `scalelab train` and through
a bare PyTorch loop, side by side in one process, rounds interleaved. Three ratios of throughput
over the whole of Trainer.fit (evaluations included):

- platform / bare loop, the platform evaluating 4,096 tokens at the start and the end (>= 0.95);
- W&B offline / logger=none (target >= 0.97): what logging tokens, FLOPs and losses costs;
- the default ten evaluations / only the first and the final, on the default held-out set
  (target >= 0.95): what a curve of ten points costs;

and the platform's fixed start-up cost beyond imports: compose, build, logger, record (< 3 s).

On a GPU (`--gpu`, the default where CUDA is visible) it compares instead, for each GPU preset,
compiled and not: `scalelab train trainer=gpu` (bf16 mixed precision, fused AdamW, pinned
batches, no synchronisation per step) against a bare PyTorch loop with the same settings, both
timed from the end of their first step (warm-up, compilation) to their last (target >= 0.95),
and the MFU of each: model FLOPs per second (`scalelab.record.flops_per_token`) over the
device's peak (`platform/mfu.py`).

    .venv/bin/python benchmarks/overhead.py [--steps 200] [--rounds 3]
    .venv/bin/python benchmarks/overhead.py --gpu [--presets gpt_10m gpt_100m] [--gpu-steps 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_module  # noqa: E402

from scalelab.platform.data import TrainBatches, load_corpus  # noqa: E402
from scalelab.platform.mfu import peak_flops  # noqa: E402
from scalelab.platform.model import GPT, GPTShape, count_parameters  # noqa: E402
from scalelab.platform.schedule import lr_multiplier  # noqa: E402
from scalelab.platform.train import device_name, train  # noqa: E402
from scalelab.record import read  # noqa: E402

GPU_PRESETS = ("gpt_10m", "gpt_25m", "gpt_50m", "gpt_100m")


def bare_loop(cfg, steps: int) -> float:
    """Tokens per second of a plain PyTorch loop doing the same work as the platform's steps."""
    corpus = load_corpus(cfg.data)
    m, t, o = cfg.model, cfg.train, cfg.optim
    L.seed_everything(t.seed, verbose=False)
    model = GPT(GPTShape(m.width, m.depth, m.heads, m.context, corpus.vocab_size))
    batches = TrainBatches(corpus.train, t.batch_size, m.context, t.seed, [steps])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg.schedule, steps))
    started = time.perf_counter()
    for step in range(steps):
        loss = model.loss(*batches.batch(step))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * t.batch_size * m.context / (time.perf_counter() - started)


def platform_run(overrides: list[str], run_dir: Path) -> tuple[float, float]:
    """(tokens per second over the whole of Trainer.fit, start-up seconds beyond imports).

    Trainer.fit also holds Lightning's own set-up and the evaluations, so this throughput is, if
    anything, an underestimate of the platform's."""
    fit_seconds = []
    original_fit = L.Trainer.fit

    def timed_fit(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original_fit(self, *args, **kwargs)
        finally:
            fit_seconds.append(time.perf_counter() - started)

    L.Trainer.fit = timed_fit
    try:
        started = time.perf_counter()
        with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        train(cfg, run_dir=run_dir)
        total = time.perf_counter() - started
    finally:
        L.Trainer.fit = original_fit
    return read(run_dir)["metrics"]["tokens_seen"] / fit_seconds[0], total - fit_seconds[0]


def bare_gpu_loop(cfg, steps: int) -> float:
    """Tokens per second of a plain PyTorch loop with the platform's GPU settings: bf16 autocast,
    fused AdamW, pinned batches copied without blocking, no host read; after its first step."""
    device = torch.device("cuda")
    corpus = load_corpus(cfg.data)
    m, t, o = cfg.model, cfg.train, cfg.optim
    L.seed_everything(t.seed, verbose=False)
    model = GPT(GPTShape(m.width, m.depth, m.heads, m.context, corpus.vocab_size, init_std=m.init_std)).to(device)
    if t.compile:
        torch._dynamo.reset()  # as the platform does for each run
        model.compile()
    batches = TrainBatches(corpus.train, t.batch_size, m.context, t.seed, [steps])
    groups = [{**g, "lr": o.lr * g.pop("lr_scale")} for g in model.optimizer_groups(o.weight_decay)]
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg.schedule, steps))
    for step in range(steps):
        if step == 1:
            torch.cuda.synchronize()
            started = time.perf_counter()
        inputs, targets = (x.pin_memory().to(device, non_blocking=True) for x in batches.batch(step))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return (steps - 1) * t.batch_size * m.context / (time.perf_counter() - started)


def gpu_main(args) -> None:
    peak = peak_flops(device_name(torch.device("cuda")))
    print(f"{torch.cuda.get_device_name()}: peak {peak:.3g} FLOP/s (bf16, dense); torch {torch.__version__}; "
          f"{args.gpu_steps} steps per run, batch 32 sequences of each preset's context")
    print(f"{'preset':<10} {'N':>6} {'compile':>7} {'bare tok/s':>12} {'platform tok/s':>15} {'ratio':>6} "
          f"{'MFU bare':>8} {'MFU platform':>12} {'compile s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for compiled in (False, True):
                with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
                    cfg = compose(config_name="config", overrides=[
                        f"model={preset}", "trainer=gpu", f"train.compile={compiled}", "train.batch_size=32",
                        "train.evals=1", "train.eval_tokens=16384", "logger=none"])
                    cfg.train.tokens = args.gpu_steps * 32 * cfg.model.context
                bare = bare_gpu_loop(cfg, args.gpu_steps)
                run_dir = Path(tmp) / f"{preset}_{compiled}"
                train(cfg, run_dir=run_dir)
                r = read(run_dir)
                platform, per_token = r["metrics"]["tokens_per_second"], r["scale"]["flops_per_token"]
                compile_seconds = r["metrics"]["compile_seconds"]
                print(f"{preset:<10} {r['scale']['N'] / 1e6:>5.1f}M {str(compiled):>7} {bare:>12,.0f} "
                      f"{platform:>15,.0f} {platform / bare:>6.3f} {bare * per_token / peak:>8.1%} "
                      f"{r['metrics']['mfu']:>12.1%} {'-' if compile_seconds is None else f'{compile_seconds:.1f}':>9}",
                      flush=True)
                if preset == args.presets[0] and not compiled:  # what a host read at every step would cost
                    cfg.train.log_every = 1
                    train(cfg, run_dir=run_dir.with_name("every_step"))
                    every = read(run_dir.with_name("every_step"))["metrics"]["tokens_per_second"]
                    print(f"{'':<10} {'':>6} {'':>7} divergence check read every step (train.log_every=1): "
                          f"{every:,.0f} tok/s, {every / platform:.3f} of every 10 steps", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=torch.cuda.is_available())
    parser.add_argument("--presets", nargs="+", default=list(GPU_PRESETS))
    parser.add_argument("--gpu-steps", type=int, default=100)
    args = parser.parse_args()
    if args.gpu:
        return gpu_main(args)

    tokens_per_step = 32 * 128
    common = ["model=gpt_s", f"train.tokens={args.steps * tokens_per_step}", "train.batch_size=32"]
    small = ["train.evals=1", "train.eval_tokens=4096"]  # evaluations at the start and end only, small
    variants = {
        "none": [*common, *small, "logger=none"],
        "wandb": [*common, *small, "logger=wandb"],
        "two": [*common, "train.evals=1", "logger=none"],  # the default held-out set, at the start and end
        "curve": [*common, "logger=none"],  # the defaults: and ten evaluations on the curve's part of it
    }
    with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=variants["none"])
    shape = GPTShape(cfg.model.width, cfg.model.depth, cfg.model.heads, cfg.model.context, 256)
    n_params = count_parameters(GPT(shape))[0]

    bare, tps, startup = [], {name: [] for name in variants}, {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):  # interleaved, so drifts in machine load hit all alike
            bare.append(bare_loop(cfg, args.steps))
            for name, overrides in variants.items():
                t, start = platform_run(overrides, Path(tmp) / f"{name}{i}")
                tps[name].append(t)
                startup[name].append(start)
    med = {name: statistics.median(v) for name, v in tps.items()}
    b = statistics.median(bare)
    print(f"model gpt_s: N = {n_params:,} non-embedding parameters; {args.steps} steps of {tokens_per_step} "
          f"tokens; torch threads={torch.get_num_threads()}; {args.rounds} rounds")

    def line(label: str, values: list[float]) -> None:
        print(f"{label:<44}: {statistics.median(values):10,.0f} tokens/s  "
              f"(rounds: {', '.join(f'{x:,.0f}' for x in values)})")

    line("bare PyTorch loop", bare)
    line("scalelab train, logger=none", tps["none"])
    line("scalelab train, logger=wandb (offline)", tps["wandb"])
    line("default held-out set, first and final only", tps["two"])
    line("default held-out set, ten evaluations", tps["curve"])
    print(f"ratio platform/bare          : {med['none'] / b:.3f}   (target >= 0.95)")
    print(f"ratio W&B offline/logger=none: {med['wandb'] / med['none']:.3f}   (target >= 0.97)")
    print(f"ratio ten evaluations/two    : {med['curve'] / med['two']:.3f}   (target >= 0.95)")
    print(f"start-up beyond imports (compose, build, logger, record): logger=none "
          f"{statistics.median(startup['none']):.2f} s, W&B {statistics.median(startup['wandb']):.2f} s "
          f"(first W&B run in the process {startup['wandb'][0]:.2f} s; target < 3 s)")


if __name__ == "__main__":
    main()
