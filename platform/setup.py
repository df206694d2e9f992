"""What a run will do, decided and checked before anything trains: `set_up_run(cfg)` loads the
corpus, builds the model and counts it, and turns the config into steps, evaluations, branches
and the held-out set; every value that cannot work is a ConfigError naming it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
from omegaconf import DictConfig

from scalelab import record as rec
from scalelab.conf.schema import MAX_TOKENS, out_of_range
from scalelab.platform.branches import Branch, plan_branches
from scalelab.platform.data import Corpus, HeldOut, load_corpus
from scalelab.platform.errors import ConfigError
from scalelab.platform.model import GPT, GPTShape, count_parameters
from scalelab.platform.moe import MoEShape
from scalelab.platform.schedule import check_schedule


@dataclass
class RunSetup:
    """Everything decided before training starts; building it validates the config."""

    corpus: Corpus
    model: GPT
    n_params: int
    n_total: int
    total_steps: int
    tokens_per_step: int
    evaluations: list[int]  # the steps evaluated after step 0, the last step the last: the epoch ends
    branches: list[Branch]
    flops_per_token: float
    held_out: HeldOut

    def scale(self, model_name: str) -> dict:
        """N, D, C as the FLOP convention counts them; an MoE's N is its active parameters, said
        again as N_active beside its sparsity (`record.MOE_SCALE`)."""
        tokens = self.total_steps * self.tokens_per_step
        scale = {"N": self.n_params, "N_total": self.n_total, "D": tokens,
                 "C": self.flops_per_token * tokens, "flops_per_token": self.flops_per_token,
                 "model": model_name}
        moe = self.model.shape.moe
        if moe is not None:
            scale |= {"N_active": self.n_params, "sparsity": moe.sparsity}
        return scale


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def set_up_run(cfg: DictConfig) -> RunSetup:
    m, t = cfg.model, cfg.train
    problems = out_of_range(cfg)
    _require(not problems, "; ".join(problems))
    _require(m.width % m.heads == 0, f"model.width={m.width} must be divisible by model.heads={m.heads}")
    moe = moe_shape(m.moe)
    devices, nodes = cfg.trainer.devices, cfg.trainer.num_nodes
    if isinstance(devices, int) and devices * nodes > 1:  # the world size: every process takes a share
        _require(t.batch_size % (devices * nodes) == 0,
                 f"train.batch_size={t.batch_size} must be divisible by trainer.devices={devices}"
                 + (f" x trainer.num_nodes={nodes} = {devices * nodes}" if nodes != 1 else "")
                 + " (each device takes an equal share of the batch)")
    _require(not (cfg.schedule.branches and isinstance(devices, int) and devices * nodes > 1),
             "schedule.branches trains its branches in one process after the run; a data-parallel run "
             f"(trainer.devices={devices} trainer.num_nodes={nodes}) cannot branch yet")
    _require(len(cfg.optim.betas) == 2 and all(0 <= b < 1 for b in cfg.optim.betas),
             f"optim.betas={list(cfg.optim.betas)} must be two numbers in [0, 1)")
    _require(not (cfg.optim.fused and precision(cfg) == "16-mixed"),
             "optim.fused=true cannot train with train.precision=16-mixed: the fused optimizer unscales the "
             "gradients itself, after they are clipped; use bf16-mixed or optim.fused=false")
    _require(cfg.trainer.accelerator not in ("gpu", "cuda") or torch.cuda.is_available(),
             f"trainer.accelerator={cfg.trainer.accelerator} but no CUDA device is visible here; use trainer=cpu")

    corpus = load_corpus(cfg.data)
    for split, tokens in (("training", corpus.train), ("validation", corpus.val)):
        _require(len(tokens) > m.context + 1,
                 f"model.context={m.context} needs more than {m.context + 1} tokens per split; "
                 f"the {split} split holds {len(tokens)}")
    tokens_per_step = t.batch_size * m.context
    _require(tokens_per_step <= len(corpus.train),
             f"train.batch_size={t.batch_size} x model.context={m.context} = {tokens_per_step} tokens per step "
             f"is larger than the training split ({len(corpus.train)} tokens)")
    top = int(max(corpus.val.max(), corpus.train[: 1 << 20].max()))
    _require(top < corpus.vocab_size, f"data.vocab_size={corpus.vocab_size} is too small: the data holds token id {top}")

    _require(m.parametrization == "sp" or m.base_width is not None,
             "model.parametrization=mup needs model.base_width, the width at which it equals sp")
    shape = GPTShape(m.width, m.depth, m.heads, m.context, corpus.vocab_size, init_std=m.init_std,
                     parametrization=m.parametrization.value, base_width=m.base_width, moe=moe)
    L.seed_everything(t.seed, verbose=False)
    model = GPT(shape)
    n_params, n_total = count_parameters(model)
    if t.tokens_per_param is not None:
        tokens = t.tokens_per_param * n_params
        setting = f"train.tokens_per_param={t.tokens_per_param} (D={tokens:.4g})"
        _require(tokens <= MAX_TOKENS, f"{setting} must be at most {MAX_TOKENS:g} tokens (more is beyond any "
                                       "plausible run)")
    else:
        tokens = t.tokens
        setting = f"train.tokens={tokens:g}"
    total_steps = int(tokens // tokens_per_step)
    _require(total_steps >= 1, f"{setting} is smaller than one step: train.batch_size x model.context = "
                               f"{tokens_per_step} tokens")
    check_schedule(cfg.schedule, total_steps)
    if t.eval_every_tokens is not None:
        eval_every = int(t.eval_every_tokens // tokens_per_step)
        _require(eval_every * tokens_per_step == t.eval_every_tokens,
                 f"train.eval_every_tokens={t.eval_every_tokens:g} must be a multiple of the tokens per step, "
                 f"train.batch_size x model.context = {tokens_per_step}")
    else:
        eval_every = t.eval_every or math.ceil(total_steps / t.evals)
    branches = plan_branches(cfg.schedule, total_steps, tokens_per_step)
    # a branch forks at an epoch end, where the checkpoint is
    evaluations = sorted({*range(eval_every, total_steps, eval_every), total_steps, *(b.fork_step for b in branches)})
    between = len(evaluations) - 1  # evaluations between the first and the final
    held_out = HeldOut(corpus.val, t.eval_tokens, curve_eval_tokens(t, total_steps * tokens_per_step, between),
                       m.context, t.batch_size)
    return RunSetup(corpus, model, n_params, n_total, total_steps, tokens_per_step, evaluations, branches,
                    rec.flops_per_token(n_params, m.depth, m.context, m.width), held_out)


def moe_shape(moe: DictConfig) -> MoEShape | None:
    """`model.moe` as the model takes it; None (the dense model) with experts=0."""
    if not moe.experts:
        return None
    _require(moe.top_k <= moe.experts, f"model.moe.top_k={moe.top_k} must be at most model.moe.experts={moe.experts}")
    return MoEShape(moe.experts, moe.top_k, moe.expert_width, moe.shared_expert, moe.balance_coef, moe.z_coef)


def curve_eval_tokens(t: DictConfig, tokens: float, between: int) -> int:
    """Held-out tokens of the loss curve: as many as `train.eval_share` of the training FLOPs
    pays for at each of the `between` evaluations between the first and the final one (a forward
    pass costs a third of a training step per token), at most `train.eval_tokens`."""
    return int(min(t.eval_tokens, 3 * t.eval_share * tokens / max(between, 1)))


def precision(cfg: DictConfig) -> str:
    """`train.precision`, `auto` resolved: bf16-mixed on a GPU that has bf16, 16-mixed on an older
    GPU, full 32-bit on a CPU."""
    chosen = cfg.train.precision.value
    if chosen != "auto":
        return chosen
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        # (a GPU asked for where none is visible is refused by set_up_run, which names it)
        return "16-mixed" if torch.cuda.is_available() and not torch.cuda.is_bf16_supported() else "bf16-mixed"
    return "32-true"
