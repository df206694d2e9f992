"""Structured-config schema of one training run: Hydra refuses a wrong key, type or choice by name.

Closed choices are Enums whose member names are the values users type (`train.precision=bf16-mixed`),
so a typo is refused at composition, before any logger or model exists. Each Enum mixes in `str`:
its members compare equal to those strings, and `OmegaConf.to_container(..., enum_to_str=True)`
writes them as plain strings into records and W&B configs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    return Enum(name, [(v, v) for v in values], type=str)


DataKind = _choices("DataKind", ("bytes", "tokens"))
ScheduleName = _choices("ScheduleName", ("cosine", "wsd", "constant"))
Precision = _choices("Precision", ("32-true", "32", "64-true", "16-mixed", "bf16-mixed", "bf16-true", "16-true"))
LoggerKind = _choices("LoggerKind", ("wandb", "csv", "none"))
WandbMode = _choices("WandbMode", ("offline", "online", "disabled"))


@dataclass
class ModelConfig:
    name: str = "gpt"
    width: int = 64
    depth: int = 2
    heads: int = 4
    context: int = 128


@dataclass
class DataConfig:
    kind: DataKind = DataKind.bytes
    # bytes: text files (globs); null means the Python standard library's own .py sources
    paths: Optional[List[str]] = None
    val_fraction: float = 0.05
    # tokens: pre-tokenized uint16 .bin files, memory-mapped
    train_path: Optional[str] = None
    val_path: Optional[str] = None
    vocab_size: int = 256


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 0.1
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 turns clipping off


@dataclass
class ScheduleConfig:
    name: ScheduleName = ScheduleName.cosine
    warmup: float = 0.02  # below 1: fraction of the steps; from 1 up: a step count
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2  # wsd only: the final fraction of steps that decays


@dataclass
class TrainConfig:
    tokens: float = 2e6  # D, training tokens
    tokens_per_param: Optional[float] = None  # when set, D = tokens_per_param * N
    batch_size: int = 32  # sequences per step
    eval_every: int = 100  # steps
    eval_tokens: int = 65536
    seed: int = 0
    precision: Precision = Precision["32-true"]
    divergence_factor: float = 1.5  # a training loss this many times the initial one is divergence
    keep_checkpoint: bool = False  # the checkpoint exists to resume; kept after the end only if asked


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"


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


def register_schema() -> None:
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
