"""A mixture-of-experts MLP for the GPT family: a router sends each token to `top_k` of
`experts` MLPs (each `expert_width` wide) and adds their outputs weighted by the router's
probabilities; an optional shared expert, as wide as one routed expert, sees every token
(DeepSeekMoE).

- Gates: the softmax over all experts, taken at the chosen ones and not renormalised (Switch,
  GShard top-1, DeepSeek): with top_k=1 a renormalised gate would be 1 and the router would learn
  from the auxiliary loss alone. With one expert the gate is exactly 1: the dense MLP.
- No token dropping: there is no capacity factor; every token reaches its top_k experts however
  unbalanced the router is, so the output never depends on the other tokens of the batch.
- Load-balancing loss (Switch Transformer, Fedus et al. 2021; GShard): experts x sum over experts
  of (share of the token-expert assignments routed there) x (mean router probability), 1 when
  balanced; the share carries no gradient, the probabilities do.
- Router z-loss (ST-MoE, Zoph et al. 2022): the mean squared log-sum-exp of the router logits.

Both losses, and the experts' load, are those of the last forward pass (`aux_loss`, `stats`);
`GPT.router_loss` adds them up for the optimiser.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class MoEShape:
    experts: int
    top_k: int = 1
    expert_width: int | None = None  # hidden width of one expert; None: the dense MLP's, mlp_ratio x width
    shared_expert: bool = False
    balance_coef: float = 0.01
    z_coef: float = 0.0

    @property
    def sparsity(self) -> float:
        """1 - active / total routed-expert parameters (the shared expert and router aside)."""
        return 1.0 - self.top_k / self.experts


class MoE(nn.Module):
    """The routed MLP of one block. Expert weights are stacked, in nn.Linear's layout
    (out, in), so that one expert of `expert_width = mlp_ratio x width` holds a dense MLP's weights."""

    def __init__(self, width: int, mlp_ratio: int, shape: MoEShape):
        super().__init__()
        self.shape = shape
        hidden = shape.expert_width or mlp_ratio * width
        self.router = nn.Linear(width, shape.experts, bias=False)
        # GPT initialises these again (all hidden matrices); a standalone layer starts finite
        self.w_in = nn.Parameter(torch.randn(shape.experts, hidden, width) * 0.02)
        self.w_out = nn.Parameter(torch.randn(shape.experts, width, hidden) * 0.02)
        self.shared = (nn.Sequential(nn.Linear(width, hidden, bias=False), nn.GELU(),
                                     nn.Linear(hidden, width, bias=False)) if shape.shared_expert else None)
        self.aux_loss: torch.Tensor | None = None  # balance_coef x balance + z_coef x z, of the last forward
        self.stats: dict[str, torch.Tensor] = {}  # balance, z, load (each expert's share), detached

    def inactive_parameters(self) -> int:
        """Parameters of the routed experts a token does not reach: N_total - N_active of this layer."""
        per_expert = (self.w_in.numel() + self.w_out.numel()) // self.shape.experts
        return (self.shape.experts - self.shape.top_k) * per_expert

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        experts, k = self.shape.experts, self.shape.top_k
        x2 = x.reshape(-1, x.shape[-1])
        logits = self.router(x2)
        probs = logits.float().softmax(-1)
        gate, chosen = probs.topk(k, dim=-1)  # (tokens, k)
        chosen = chosen.flatten()
        # The token-expert assignments grouped by expert (stable: with one expert, the tokens in
        # order), then one matmul pair per expert. A loop over experts, not tokens: on a CPU this
        # beats a dense einsum over the stacked weights, which does experts / top_k times the
        # FLOPs (every token through every expert), as soon as experts > 2 top_k; the loop costs a
        # few small kernel launches per expert and one host sync for the counts.
        order = chosen.argsort(stable=True)
        counts = torch.bincount(chosen, minlength=experts)
        token = order // k
        parts = x2[token].split(counts.tolist())
        out = torch.cat([F.linear(F.gelu(F.linear(part, self.w_in[e])), self.w_out[e]) for e, part in enumerate(parts)])
        weighted = out * gate.flatten()[order, None]
        y = torch.zeros(x2.shape, dtype=weighted.dtype, device=x.device).index_add_(0, token, weighted)
        if self.shared is not None:
            y = y + self.shared(x2)

        load = counts.float() / chosen.numel()
        balance = experts * (load * probs.mean(0)).sum()
        z = torch.logsumexp(logits.float(), -1).pow(2).mean()
        self.aux_loss = self.shape.balance_coef * balance + self.shape.z_coef * z
        self.stats = {"balance": balance.detach(), "z": z.detach(), "load": load}
        return y.view(x.shape).to(x.dtype)  # the gates are float32; the residual stream keeps its dtype
