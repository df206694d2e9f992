"""A GPT-style decoder family, with the parameter count that scaling laws are fitted on.

N counts the non-embedding parameters (Kaplan et al. 2020; Chinchilla's approach 1). Training
FLOPs follow the one convention of `scalelab.record.flops_per_token`: 6N per token (forward 2,
backward 4 per parameter) plus the attention scores, 6 * depth * context * width.

Two parametrizations. `sp`, the standard one: every weight initialised with std `init_std`, one
learning rate. `mup`, the maximal update parametrization for Adam (Yang et al. 2022, "Tensor
Programs V", table 3), relative to `base_width`, where the two coincide; with m = width /
base_width:
- hidden matrices (attention qkv and projection, the MLP's two): init std / sqrt(m) (variance
  1/fan_in) and Adam learning rate / m;
- embeddings, layer norms: as in SP (input weights and vectors: init and rate independent of width);
- the output: the head is tied to the token embedding, an input weight, so the tensor keeps the
  input's init and rate, and the output's own scaling goes into the forward pass as a 1/m
  multiplier on the logits (what a separate µP readout with init variance 1/fan_in^2 and rate
  1/fan_in would achieve for its output);
- attention scores scaled by 1/d_head, not 1/sqrt(d_head): sqrt(d_base) / d_head, which is
  1/sqrt(d_head) at the base width.

With `moe` set, each block's MLP is a mixture of experts (`platform/moe.py`); the router and the
stacked expert weights count among the hidden matrices. Without it (the default) the model is the
dense one, built in the same order from the same random numbers. N counts the parameters a token
uses: the routed experts it does not reach are left out (`count_parameters`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from scalelab.platform.moe import MoE, MoEShape


@dataclass(frozen=True)
class GPTShape:
    width: int
    depth: int
    heads: int
    context: int
    vocab_size: int
    mlp_ratio: int = 4
    init_std: float = 0.02  # GPT-2's, set for width 768; tiny widths train more steadily with more
    parametrization: str = "sp"  # or "mup"
    base_width: int | None = None  # mup: the width at which it equals sp
    moe: MoEShape | None = None  # None: the dense MLP

    @property
    def width_mult(self) -> float:
        """m = width / base_width under µP; 1 under SP."""
        return self.width / self.base_width if self.parametrization == "mup" else 1.0

    @property
    def attention_scale(self) -> float:
        d_head = self.width // self.heads
        return math.sqrt(d_head / self.width_mult) / d_head  # sqrt(d_base) / d_head; SP: 1/sqrt(d_head)


class Block(nn.Module):
    def __init__(self, shape: GPTShape):
        super().__init__()
        w = shape.width
        self.heads, self.attention_scale = shape.heads, shape.attention_scale
        self.ln_attn = nn.LayerNorm(w)
        self.qkv = nn.Linear(w, 3 * w, bias=False)
        self.proj = nn.Linear(w, w, bias=False)
        self.ln_mlp = nn.LayerNorm(w)
        if shape.moe is not None:
            self.mlp = MoE(w, shape.mlp_ratio, shape.moe)
        else:
            self.mlp = nn.Sequential(
                nn.Linear(w, shape.mlp_ratio * w, bias=False),
                nn.GELU(),
                nn.Linear(shape.mlp_ratio * w, w, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(w, dim=2)
        q, k, v = (z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.attention_scale)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, w))
        return x + self.mlp(self.ln_mlp(x))


# The matrices that write into the residual stream, initialised smaller with depth: attention's
# projection, the dense MLP's output, the experts' outputs and the shared expert's.
RESIDUAL_OUTPUTS = ("proj.weight", "mlp.2.weight", "mlp.w_out", "mlp.shared.2.weight")


class GPT(nn.Module):
    def __init__(self, shape: GPTShape):
        super().__init__()
        self.shape = shape
        self.token_embedding = nn.Embedding(shape.vocab_size, shape.width)
        self.position_embedding = nn.Embedding(shape.context, shape.width)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.depth))
        self.ln_final = nn.LayerNorm(shape.width)
        # a plain list, not a ModuleList: the layers are the blocks' own, and the state dict stays theirs
        self.moe_layers = [block.mlp for block in self.blocks if isinstance(block.mlp, MoE)]
        for embedding in (self.token_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=shape.init_std)
        hidden_std = shape.init_std / math.sqrt(shape.width_mult)
        for _, p in self.hidden_matrices():
            nn.init.normal_(p, std=hidden_std)
        # Residual projections scaled down with depth, as GPT-2 does, so deep models start stable.
        for name, p in self.hidden_matrices():
            if name.endswith(RESIDUAL_OUTPUTS):
                nn.init.normal_(p, std=hidden_std / math.sqrt(2 * shape.depth))

    def hidden_matrices(self):
        """(name, weight) of the matrices between hidden layers: those µP scales with width (the
        experts' are stacked, one matrix per expert along the first dimension)."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith("blocks.") and p.dim() >= 2]

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """Parameter groups with their weight decay and `lr_scale`, the multiplier of the learning
        rate: 1 / width_mult for the hidden matrices under µP. Matrices decay; vectors do not."""
        hidden = {id(p) for _, p in self.hidden_matrices()}
        groups = [{"params": [p for p in self.parameters() if id(p) in hidden], "weight_decay": weight_decay,
                   "lr_scale": 1 / self.shape.width_mult},
                  {"params": [p for p in self.parameters() if id(p) not in hidden and p.dim() >= 2],
                   "weight_decay": weight_decay, "lr_scale": 1.0},
                  {"params": [p for p in self.parameters() if p.dim() < 2], "weight_decay": 0.0, "lr_scale": 1.0}]
        return [g for g in groups if g["params"]]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for every position; the output head is tied to the token embedding."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_final(x), self.token_embedding.weight)
        # under SP no division: with a large vocabulary it would be a pass over the largest activation
        return logits if self.shape.width_mult == 1 else logits / self.shape.width_mult

    def router_loss(self) -> torch.Tensor:
        """The routers' auxiliary loss of the last forward pass, each weighted by its coefficient,
        averaged over the MoE layers (so a coefficient means the same at any depth)."""
        return sum(layer.aux_loss for layer in self.moe_layers) / len(self.moe_layers)

    def router_metrics(self) -> dict[str, float]:
        """Of the last forward pass: the balance and z losses (means over the MoE layers) and the
        smallest and largest share of the token-expert assignments any expert of any layer got
        (1 / experts each when balanced). One host sync; empty for a dense model."""
        if not self.moe_layers:
            return {}
        stats = [layer.stats for layer in self.moe_layers]
        load = torch.stack([s["load"] for s in stats])
        values = torch.stack([torch.stack([s["balance"] for s in stats]).mean(), torch.stack([s["z"] for s in stats]).mean(),
                              load.min(), load.max()]).tolist()
        return dict(zip(("moe_balance_loss", "moe_z_loss", "moe_load_min", "moe_load_max"), values))

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(tokens)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))

    def sequence_losses(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of each sequence of the batch."""
        logits = self(tokens)
        return F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none").mean(1)


def count_parameters(model: GPT) -> tuple[int, int]:
    """(N, N_total): N leaves out the token and position embeddings (the tied head is the
    token embedding), as Kaplan et al. and Chinchilla count model size, and in an MoE the routed
    experts a token does not reach: N is the active non-embedding parameters per token, the N of
    C = 6ND. N_total is every parameter."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.token_embedding.weight.numel() + model.position_embedding.weight.numel()
    inactive = sum(layer.inactive_parameters() for layer in model.moe_layers)
    return total - embedding - inactive, total

