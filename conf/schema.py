"""Structured-config schema of one training run: Hydra refuses a wrong key, type or choice by name.

Closed choices are Enums whose member names are the values users type (`train.precision=bf16-mixed`),
so a typo is refused at composition, before any logger or model exists. Each Enum mixes in `str`:
its members compare equal to those strings, and `OmegaConf.to_container(..., enum_to_str=True)`
writes them as plain strings into records and W&B configs.

`RANGES` gives each numeric setting the values that mean something (a positive learning rate, a
ratio in [0, 1], a budget no larger than any plausible run); `out_of_range` lists the settings
outside theirs, and the training run refuses them before it builds anything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name, [(v, v) for v in values], type=str)


DataKind = _choices("DataKind", ("bytes", "tokens"))
ScheduleName = _choices("ScheduleName", ("cosine", "wsd", "constant"))
Precision = _choices("Precision", ("auto", "32-true", "32", "64-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true"))
LoggerKind = _choices("LoggerKind", ("wandb", "csv", "none"))
Parametrization = _choices("Parametrization", ("sp", "mup"))
WandbMode = _choices("WandbMode", ("offline", "online", "disabled"))


@dataclass
class MoEConfig:
    """A mixture-of-experts MLP in every block (platform/moe.py); experts=0 is the dense model
    and leaves the other keys unused. No token is dropped: each reaches its top_k experts."""

    experts: int = 0
    top_k: int = 1  # experts each token is routed to, at most `experts`
    expert_width: Optional[int] = None  # hidden width of one expert (granularity); null: the dense MLP's, 4 x width
    shared_expert: bool = False  # one more expert, expert_width wide, that every token goes through
    balance_coef: float = 0.01  # weight of the load-balancing loss (Switch Transformer's 0.01)
    z_coef: float = 0.0  # weight of the router z-loss (ST-MoE uses 0.001)


@dataclass
class ModelConfig:
    name: str = "gpt"
    width: int = 64
    depth: int = 2
    heads: int = 4
    context: int = 128
    # std of the weights at initialisation (the residual projections: / sqrt(2 depth)); GPT-2's
    # 0.02 leaves models a few dozen wide on a long early plateau whose length varies by seed
    init_std: float = 0.02
    # sp: standard; mup: maximal update parametrization relative to base_width, where the two are
    # the same model (see platform/model.py): a learning rate found at one width holds at others
    parametrization: Parametrization = Parametrization.sp
    base_width: Optional[int] = None
    moe: MoEConfig = field(default_factory=MoEConfig)


@dataclass
class DataConfig:
    kind: DataKind = DataKind.bytes
    # bytes: text files (globs); null means the Python standard library's own .py sources
    paths: Optional[List[str]] = None
    val_fraction: float = 0.05
    # tokens: a folder made by `scalelab data prepare` (its meta.json names the token files, their
    # dtype and the vocabulary) ...
    dir: Optional[str] = None
    # ... or, without it, pre-tokenized uint16 .bin files named one by one; memory-mapped either way
    train_path: Optional[str] = None
    val_path: Optional[str] = None
    # the model's vocabulary; data=tokens with data.dir: the folder's own unless set (a larger value
    # pads it); null when the folder's meta.json cannot be read (loading the data says why)
    vocab_size: Optional[int] = 256


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 turns clipping off
    # AdamW's fused kernel; null: on CUDA only. Fused, a diverging step is skipped on the device,
    # so the divergence check reads the loss every train.log_every steps instead of every step
    fused: Optional[bool] = None


@dataclass
class ScheduleConfig:
    name: ScheduleName = ScheduleName.cosine
    warmup: float = 0.02  # below 1: fraction of the steps; from 1 up: a step count
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2  # wsd only: the final fraction of steps that decays
    # wsd only: more token budgets from the same run, each a cooldown forked off its stable phase
    # (platform/branches.py); a value up to 1 is a fraction of train.tokens
    branches: Optional[List[float]] = None


@dataclass
class TrainConfig:
    tokens: float = 2e6  # D, training tokens
    tokens_per_param: Optional[float] = None  # when set, D = tokens_per_param * N
    batch_size: int = 32  # sequences per step
    # Evaluations: at step 0, then `evals` times evenly spaced, the last at the final step ...
    evals: int = 10
    # ... or every this many steps instead ...
    eval_every: Optional[int] = None
    # ... or every this many tokens (a multiple of the tokens per step): runs of any batch size
    # are then evaluated, and pruned, at the same token counts
    eval_every_tokens: Optional[float] = None
    eval_tokens: int = 65536  # held-out tokens of the first and the final evaluation
    # The evaluations in between use an evenly spread part of those tokens, as much as this share
    # of the training FLOPs allows, so a curve of many points costs little: 0.04 keeps 10
    # points within 5% of the training time (benchmarks/overhead.py). 1 evaluates all every time.
    eval_share: float = 0.04
    log_every: int = 10  # steps between two logged training losses
    seed: int = 0
    # auto: bf16-mixed on a GPU that has bf16, 16-mixed on an older one, 32-true on a CPU
    precision: Precision = Precision.auto
    compile: bool = False  # torch.compile the model; its compile time is recorded apart from training
    divergence_factor: float = 1.5  # a training loss this many times the initial one is divergence
    keep_checkpoint: bool = False  # the checkpoint exists to resume; kept after the end only if asked
    fresh_start: bool = False  # discard the run folder's earlier run (checkpoint, record) and start over
    progress_seconds: float = 30.0  # how often progress is logged when stderr is not a terminal


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    # machines of a data-parallel run, each with `devices` processes (on Slurm: hydra.launcher.nodes)
    num_nodes: int = 1
    strategy: str = "auto"
    # CPU threads per process; null: the cores divided among the processes that share them
    threads: Optional[int] = None
    # one device's peak FLOP/s, for the run's MFU; null: the table in platform/mfu.py (none on CPU)
    peak_flops: Optional[float] = None


@dataclass
class LoggerConfig:
    kind: LoggerKind = LoggerKind.wandb
    mode: WandbMode = WandbMode.offline
    project: str = "scalelab"
    entity: Optional[str] = None


@dataclass
class TrialConfig:
    """Set by the Optuna sweeper for the job it launches; null in a plain run."""

    study_name: Optional[str] = None
    storage: Optional[str] = None
    number: Optional[int] = None
    searched: Optional[List[str]] = None  # the config paths the sweeper searches, for the record
    ladder_id: Optional[str] = None  # the sweep's ladder id (`<study_name>-<8 hex>`), one per sweep
    # In a scaling study (`sweeps=ladder`): what the run is for (null: a search trial; `seed`: the
    # best trial of its scale again with another seed; `transfer`: a µP scale trained at the rate
    # its budget's smallest width found best; `optimum`, `half`, `double`, `lr_low`, `lr_high`: a
    # verification run at the target budget) and the search range its scale used, and why.
    role: Optional[str] = None
    search_range: Optional[str] = None


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    trial: TrialConfig = field(default_factory=TrialConfig)


@dataclass(frozen=True)
class Range:
    """The values a numeric setting can take: finite, from `low` to `high`, ends open where said."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if math.isinf(self.high):
            text = f"{'>' if self.low_open else '>='} {low}"
        else:
            text = f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        return f"{text} ({self.why})" if self.why else text


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e12 else f"{x:g}"


POSITIVE, NON_NEGATIVE, COUNT, FRACTION = Range(0, low_open=True), Range(0), Range(1), Range(0, 1)
# Training tokens beyond this are no run anyone can do (published runs are below 1e14).
MAX_TOKENS = 1e15

RANGES = {
    "model.width": COUNT, "model.depth": COUNT, "model.heads": COUNT, "model.context": COUNT,
    "model.init_std": POSITIVE, "model.base_width": COUNT,
    "model.moe.experts": Range(0, why="0 is the dense model"), "model.moe.top_k": COUNT,
    "model.moe.expert_width": COUNT, "model.moe.balance_coef": NON_NEGATIVE, "model.moe.z_coef": NON_NEGATIVE,
    "data.val_fraction": Range(0, 1, True, True),
    "data.vocab_size": Range(1, 2**32, why="token ids are at most uint32"),
    "optim.lr": POSITIVE, "optim.weight_decay": NON_NEGATIVE, "optim.eps": POSITIVE,
    "optim.grad_clip": Range(0, why="0 turns clipping off"),
    "schedule.warmup": NON_NEGATIVE, "schedule.min_lr_ratio": FRACTION, "schedule.decay_fraction": FRACTION,
    "train.tokens": Range(0, MAX_TOKENS, low_open=True, why="more is beyond any plausible run"),
    "train.tokens_per_param": POSITIVE,
    "train.batch_size": COUNT, "train.evals": COUNT, "train.eval_every": COUNT, "train.eval_tokens": COUNT,
    "train.eval_every_tokens": POSITIVE, "train.eval_share": Range(0, 1, low_open=True), "train.log_every": COUNT,
    "train.seed": Range(0, 2**32 - 1),
    "train.divergence_factor": Range(1, low_open=True, why="times the initial loss"),
    "train.progress_seconds": POSITIVE,
    "trainer.threads": COUNT, "trainer.peak_flops": POSITIVE, "trainer.num_nodes": COUNT,
}


def out_of_range(cfg: DictConfig, ranges: Optional[dict[str, Range]] = None) -> list[str]:
    """`key=value must be ...` for each setting outside its entry of `ranges` (default: a run's
    `RANGES`; None is unset)."""
    problems = []
    for key, allowed in (RANGES if ranges is None else ranges).items():
        value = OmegaConf.select(cfg, key)
        if value is not None and not allowed.admits(value):
            problems.append(f"{key}={value} must be {allowed}")
    return problems


def register_schema() -> None:
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
