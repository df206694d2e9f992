"""Platform overhead: the same model, data and steps trained through `scalelab train` and through
a bare PyTorch loop, side by side in one process, rounds interleaved. Three ratios of throughput
over the whole of Trainer.fit (evaluations included), each the median of the rounds' own ratios:

- platform / bare loop (timed from the end of its first step), the platform evaluating 4,096
  tokens at the start and the end (>= 0.95);
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
    .venv/bin/python benchmarks/overhead.py --gpu [--presets gpt_10m gpt_100m] [--gpu-steps 100] [--rounds 3]
        [--trace DIR]

`--host` measures instead, on the CPU, the platform's host work per step beyond the bare loop's
(`host_main`): what a GPU waits for at each step when its own work is shorter (target: at most
1.2x the bare loop's). On the 2-core machine, shared with other jobs (so single runs ranged from
0.95 to 1.28), the median of eight runs was 1.16x, e.g. 1,677 against 1,457 us a step; the code
before `platform/lean.py` trimmed Lightning's per-step host work measured 1.43x (1,886 against
1,322 us):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/overhead.py --host --steps 1500 --rounds 5
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
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
from scalelab.schedule import lr_multiplier  # noqa: E402
from scalelab.platform.train import device_name, train  # noqa: E402
from scalelab.record import read  # noqa: E402

GPU_PRESETS = ("gpt_10m", "gpt_25m", "gpt_50m", "gpt_100m")
RUNTIME_CALL = re.compile(r"cu(da)?[A-Z]")  # cudaStreamSynchronize, cuLaunchKernel; not a cutlass kernel


def bare_loop(cfg, steps: int, device: torch.device) -> float:
    """Tokens per second of a plain PyTorch loop doing the platform's steps with its settings on
    `device` (on a GPU: bf16 autocast, fused AdamW, pinned batches copied without blocking, no
    host read), timed from the end of its first step (warm-up, compilation) to its last."""
    cuda = device.type == "cuda"
    corpus = load_corpus(cfg.data)
    m, t, o = cfg.model, cfg.train, cfg.optim
    L.seed_everything(t.seed, verbose=False)
    model = GPT(GPTShape(m.width, m.depth, m.heads, m.context, corpus.vocab_size, init_std=m.init_std)).to(device)
    if t.compile:
        torch._dynamo.reset()  # as the platform does for each run
        model.compile()
    batches = TrainBatches(corpus.train, t.batch_size, m.context, t.seed, [steps])
    groups = [{**g, "lr": o.lr * g.pop("lr_scale")} for g in model.optimizer_groups(o.weight_decay)]
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, fused=cuda)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg.schedule, steps))
    for step in range(steps):
        if step == 1:
            started = synchronized(device)
        inputs, targets = batches.batch(step)
        if cuda:
            inputs, targets = (x.pin_memory().to(device, non_blocking=True) for x in (inputs, targets))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = model.loss(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return (steps - 1) * t.batch_size * m.context / (synchronized(device) - started)


def synchronized(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


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


def side_by_side(cfg, steps: int, device: torch.device, rounds: int, folder: Path) -> tuple[list[float], list[dict]]:
    """The bare loop's tokens per second and the platform's records, round by round, the two
    taking turns to go first (so the device's clocks and caches favour neither)."""
    bare, records = [], []
    for i in range(rounds):
        run_dir = folder / str(i)
        if i % 2:
            train(cfg, run_dir=run_dir)
        bare.append(bare_loop(cfg, steps, device))
        if not i % 2:
            train(cfg, run_dir=run_dir)
        records.append(read(run_dir))
    return bare, records


def host_main(args) -> None:
    """The platform's host work per step: a model so small (one layer, 8 wide, 2 sequences of 8
    tokens) that a step is almost all Python and dispatch, which is what a GPU waits for when
    its own work per step is short."""
    with initialize_config_module(config_module="scalelab.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "model.width=8", "model.depth=1", "model.heads=1", "model.context=8", "train.batch_size=2",
            f"train.tokens={args.steps * 16}", "train.evals=1", "train.eval_tokens=64", "logger=none"])
    with tempfile.TemporaryDirectory() as tmp:
        bare, records = side_by_side(cfg, args.steps, torch.device("cpu"), args.rounds, Path(tmp))
    bare_us = [16 / b * 1e6 for b in bare]
    platform_us = [16 / r["metrics"]["tokens_per_second"] * 1e6 for r in records]
    bare_median, platform_median = statistics.median(bare_us), statistics.median(platform_us)
    print(f"host work per step, {args.steps} steps, torch threads={torch.get_num_threads()}, median of "
          f"{args.rounds} rounds: bare loop {bare_median:.0f} us, scalelab train {platform_median:.0f} us, "
          f"difference {platform_median - bare_median:.0f} us, ratio {platform_median / bare_median:.2f} "
          f"(target <= 1.2; rounds: {', '.join(f'{p - b:.0f}' for p, b in zip(platform_us, bare_us))})")


def trace(cfg, steps: int, device: torch.device, folder: Path) -> None:
    """Profile `steps` steps of each loop (torch.profiler, a Chrome trace each in `folder`) and
    print per step: the wall time against the time the GPU was busy (a GPU idle for part of each
    step waits for the host), the CUDA runtime calls by name (a synchronisation, a copy or a
    pinned allocation stalls the queue) and the operators with the most CPU time; then the Python
    functions of the platform with the most time of their own."""
    cfg = cfg.copy()
    cfg.train.tokens = steps * cfg.train.batch_size * cfg.model.context
    cfg.train.fresh_start = True  # a folder traced before is traced again
    tokens_per_step = cfg.train.batch_size * cfg.model.context
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                         if device.type == "cuda" else [])

    def platform() -> float:
        train(cfg, run_dir=folder / "platform_run")
        return read(folder / "platform_run")["metrics"]["tokens_per_second"]

    for name, run in (("bare", lambda: bare_loop(cfg, steps, device)), ("platform", platform)):
        with torch.profiler.profile(activities=activities) as profile:
            tokens_per_second = run()
        profile.export_chrome_trace(str(folder / f"{name}.json"))
        events = profile.key_averages()
        # a kernel's own time; torch before 2.4 names it cuda, later device
        busy = sum(getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
                   for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / steps / 1e3
        wall = tokens_per_step / tokens_per_second * 1e3
        runtime = {e.key: e.count / steps for e in events if RUNTIME_CALL.match(e.key) and e.count >= steps / 10}
        print(f"{name}: {wall:.2f} ms per step (profiled), GPU busy {busy:.2f} ms ({busy / wall:.0%}; set-up and "
              f"evaluations included); CUDA runtime calls per step: "
              + (", ".join(f"{k} {v:.1f}" for k, v in sorted(runtime.items(), key=lambda kv: -kv[1])) or "none"))
        print(events.table(sort_by="self_cpu_time_total", row_limit=12))
    print(f"Chrome traces: {folder}/bare.json, {folder}/platform.json (chrome://tracing, ui.perfetto.dev)")
    # where the platform's Python spends the host's time (the torch profiler sees operators only)
    python = cProfile.Profile()
    python.runcall(platform)
    print(f"platform, Python functions by own time over {steps} steps (cProfile; its overhead inflates them):")
    pstats.Stats(python).sort_stats("tottime").print_stats(15)


def gpu_main(args) -> None:
    device = torch.device("cuda")
    peak = peak_flops(device_name(device))
    print(f"{torch.cuda.get_device_name()}: peak {peak:.3g} FLOP/s (bf16, dense); torch {torch.__version__}; "
          f"{args.gpu_steps} steps per run, batch 32 sequences of each preset's context; median of "
          f"{args.rounds} rounds, which of the two runs first alternating")
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
                bare, records = side_by_side(cfg, args.gpu_steps, device, args.rounds, Path(tmp) / f"{preset}_{compiled}")
                r = records[0]
                platform = statistics.median(x["metrics"]["tokens_per_second"] for x in records)
                bare_median, per_token = statistics.median(bare), r["scale"]["flops_per_token"]
                compile_seconds = statistics.median(x["metrics"]["compile_seconds"] or 0 for x in records)
                print(f"{preset:<10} {r['scale']['N'] / 1e6:>5.1f}M {str(compiled):>7} {bare_median:>12,.0f} "
                      f"{platform:>15,.0f} {platform / bare_median:>6.3f} {bare_median * per_token / peak:>8.1%} "
                      f"{platform * per_token / peak:>12.1%} {f'{compile_seconds:.1f}' if compiled else '-':>9}",
                      flush=True)
                if preset == args.presets[0] and not compiled:  # what a host read at every step would cost
                    cfg.train.log_every = 1
                    train(cfg, run_dir=Path(tmp) / "every_step")
                    every = read(Path(tmp) / "every_step")["metrics"]["tokens_per_second"]
                    print(f"{'':<10} {'':>6} {'':>7} divergence check read every step (train.log_every=1): "
                          f"{every:,.0f} tok/s, {every / platform:.3f} of every 10 steps", flush=True)
                    cfg.train.log_every = 10
                    if args.trace:
                        args.trace.mkdir(parents=True, exist_ok=True)
                        trace(cfg, 30, device, args.trace)


def at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below {low}")
        return value
    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=at_least(2), default=200)  # the first step is not timed
    parser.add_argument("--rounds", type=at_least(1), default=3)
    parser.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=torch.cuda.is_available())
    parser.add_argument("--presets", nargs="+", choices=GPU_PRESETS, default=list(GPU_PRESETS))
    parser.add_argument("--gpu-steps", type=at_least(2), default=100)
    parser.add_argument("--host", action="store_true", help="the platform's host work per step (see host_main)")
    parser.add_argument("--trace", type=Path, help="with --gpu: profile 30 steps of each loop of the first preset, "
                                                   "uncompiled, into this folder (see trace)")
    args = parser.parse_args()
    if args.host:
        return host_main(args)
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
            bare.append(bare_loop(cfg, args.steps, torch.device("cpu")))
            for name, overrides in variants.items():
                t, start = platform_run(overrides, Path(tmp) / f"{name}{i}")
                tps[name].append(t)
                startup[name].append(start)
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

    def ratio(label: str, over: list[float], under: list[float], target: float) -> None:
        """The median of each round's own ratio: the two runs of a round are next to each other
        in time, so a drift in the machine's speed between rounds cancels."""
        ratios = [a / b for a, b in zip(over, under)]
        print(f"ratio {label:<24}: {statistics.median(ratios):.3f}   (target >= {target}; rounds: "
              f"{', '.join(f'{r:.3f}' for r in ratios)})")

    ratio("platform/bare", tps["none"], bare, 0.95)
    ratio("W&B offline/logger=none", tps["wandb"], tps["none"], 0.97)
    ratio("ten evaluations/two", tps["curve"], tps["two"], 0.95)
    print(f"start-up beyond imports (compose, build, logger, record): logger=none "
          f"{statistics.median(startup['none']):.2f} s, W&B {statistics.median(startup['wandb']):.2f} s "
          f"(first W&B run in the process {startup['wandb'][0]:.2f} s; target < 3 s)")


if __name__ == "__main__":
    main()
