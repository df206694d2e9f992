"""A GPT-style decoder family, with the parameter count that scaling laws are fitted on.

N counts the non-embedding parameters (Kaplan et al. 2020; Chinchilla's approach 1). Training
FLOPs follow the one convention of `scalelab.record.flops_per_token`: 6N per token (forward 2,
backward 4 per parameter) plus the attention scores, 6 * depth * context * width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTShape:
    width: int
    depth: int
    heads: int
    context: int
    vocab_size: int
    mlp_ratio: int = 4
    init_std: float = 0.02  # GPT-2's, set for width 768; tiny widths train more steadily with more


class Block(nn.Module):
    def __init__(self, shape: GPTShape):
        super().__init__()
        w = shape.width
        self.heads = shape.heads
        self.ln_attn = nn.LayerNorm(w)
        self.qkv = nn.Linear(w, 3 * w, bias=False)
        self.proj = nn.Linear(w, w, bias=False)
        self.ln_mlp = nn.LayerNorm(w)
        self.mlp = nn.Sequential(
            nn.Linear(w, shape.mlp_ratio * w, bias=False),
            nn.GELU(),
            nn.Linear(shape.mlp_ratio * w, w, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(w, dim=2)
        q, k, v = (z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, w))
        return x + self.mlp(self.ln_mlp(x))


class GPT(nn.Module):
    def __init__(self, shape: GPTShape):
        super().__init__()
        self.shape = shape
        self.token_embedding = nn.Embedding(shape.vocab_size, shape.width)
        self.position_embedding = nn.Embedding(shape.context, shape.width)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.depth))
        self.ln_final = nn.LayerNorm(shape.width)
        self.apply(self._init_weights)
        # Residual projections scaled down with depth, as GPT-2 does, so deep models start stable.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=shape.init_std / math.sqrt(2 * shape.depth))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.shape.init_std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for every position; the output head is tied to the token embedding."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_final(x), self.token_embedding.weight)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(tokens)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.reshape(-1))

    def sequence_losses(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of each sequence of the batch."""
        logits = self(tokens)
        return F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none").mean(1)


def count_parameters(model: GPT) -> tuple[int, int]:
    """(N, N_total): N leaves out the token and position embeddings (the tied head is the
    token embedding), as Kaplan et al. and Chinchilla count model size."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.token_embedding.weight.numel() + model.position_embedding.weight.numel()
    return total - embedding, total

