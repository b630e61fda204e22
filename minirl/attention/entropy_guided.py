"""Entropy-guided attention: a penalty that keeps each head's attention entropy near a learned target
(Jha & Reagen, "Entropy-Guided Attention for Private LLMs", AAAI'25 PPAI workshop;
official code github.com/Nandan91/entropy-guided-attention-llm, `entropy_regularization.py`).

Models with fewer nonlinearities (no LayerNorm, a linear FFN: cheaper under private inference)
show two failures of attention: *entropy collapse* (heads, mostly deep ones, that look at one token)
and *entropic overload* (heads, mostly early ones, that spread evenly over the whole context). The
regulariser penalises a query's entropy only when it leaves a band around a learnable per-head
target θ_h · E_max:

    E_max       = ln(context_size)                         (context_size: the maps' last dimension)
    tol         = tolerance_margin_factor · E_max
    dev_{l,h,q} = Ent_{l,h}(q) − θ_h · E_max                (θ_h: the learnable threshold weight of head h)
    L_ent       = loss_coeff · (1/L) Σ_l (1/H) Σ_h Σ_{b,q} ( dev · 1[|dev| > tol] )²
    L           = L_CE + L_ent

The sum over batch and queries (not a mean) is the official code's; so is loss_coeff = 1e-5, meant
for batches of 1024-token sequences. A tiny model's batch has far fewer query rows, so it needs a
larger coefficient for the same pull (notebook 05 uses 1e-3 with 16 sequences of 56 characters).

Choices (defaults = the official code where it has one; the others are ours):
    thresholds "head" — one θ_h per head index shared by all layers (official code); "layer_head"
               gives every (layer, head) its own θ.
    threshold_init 0.5 — ours: the released code does not show how θ is initialised.
    learn_thresholds True — θ is a parameter trained with the model (official); False fixes it.
    max_entropy "context" — E_max = ln(context_size) for every query (official). "causal" (ours)
               uses E_max(q) = ln n_q, the most query q can reach under the causal mask, so that the
               first queries (whose entropy cannot exceed ln n_q) are not always "below target".
The paper's other changes (learnable FFN scaling, a parameterised attention) are not implemented.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .entropy import keys_attended, row_entropy

THRESHOLD_MODES = ("head", "layer_head")
MAX_ENTROPY_MODES = ("context", "causal")


class EntropyGuidedRegulariser(nn.Module):
    """L_ent of the module docstring, with its learnable thresholds θ; call it on the model's attention maps."""

    def __init__(self, num_layers: int, num_heads: int, loss_coeff: float = 1e-5,
                 tolerance_margin_factor: float = 0.20, context_size: int | None = None,
                 thresholds: str = "head", threshold_init: float = 0.5, learn_thresholds: bool = True,
                 max_entropy: str = "context"):
        super().__init__()
        if thresholds not in THRESHOLD_MODES:
            raise ValueError(f"unknown thresholds {thresholds!r}; choose one of: {', '.join(THRESHOLD_MODES)}")
        if max_entropy not in MAX_ENTROPY_MODES:
            raise ValueError(f"unknown max_entropy {max_entropy!r}; choose one of: {', '.join(MAX_ENTROPY_MODES)}")
        self.num_layers, self.num_heads = num_layers, num_heads
        self.loss_coeff, self.tolerance_margin_factor = loss_coeff, tolerance_margin_factor
        self.context_size, self.max_entropy, self.thresholds = context_size, max_entropy, thresholds
        shape = (num_heads,) if thresholds == "head" else (num_layers, num_heads)
        self.theta = nn.Parameter(torch.full(shape, float(threshold_init)), requires_grad=learn_thresholds)

    def theta_of_layer(self, layer: int) -> torch.Tensor:
        """θ_h of every head of one layer → (H,)."""
        return self.theta if self.thresholds == "head" else self.theta[layer]

    def e_max(self, attn: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """E_max, broadcastable to the row entropies (B, H, T): ln(context_size), or ln n_q ("causal")."""
        if self.max_entropy == "context":
            return torch.tensor(math.log(self.context_size or attn.shape[-1]), device=attn.device)
        n = keys_attended(attention_mask).to(attn.device)                           # (B, T)
        return torch.log(n.clamp(min=1).float())[:, None, :]                        # (B, 1, T)

    def forward(self, attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None):
        """(L_ent, metrics) from one (B, H, T, T) attention map per layer (with gradient)."""
        if len(attentions) != self.num_layers or attentions[0].shape[1] != self.num_heads:
            raise ValueError(f"got {len(attentions)} maps with {attentions[0].shape[1]} heads; the regulariser "
                             f"was built for {self.num_layers} layers × {self.num_heads} heads")
        B, H, T, _ = attentions[0].shape
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.long, device=attentions[0].device)
        real = (attention_mask.to(attentions[0].device) > 0)[:, None, :]             # (B, 1, T)
        total, outside = 0.0, 0.0
        for l, attn in enumerate(attentions):
            ent = row_entropy(attn.float())                                          # Ent_{l,h}(q) (B, H, T)
            e_max = self.e_max(attn, attention_mask)
            tol = self.tolerance_margin_factor * e_max                               # tol
            dev = ent - self.theta_of_layer(l)[None, :, None] * e_max                # dev_{l,h,q} (B, H, T)
            beyond = (dev.abs() > tol) & real                                        # 1[|dev| > tol]
            penalty = torch.where(beyond, dev, torch.zeros_like(dev)) ** 2           # (dev · 1[...])²
            total = total + penalty.sum() / H                                        # (1/H) Σ_h Σ_{b,q}
            outside += beyond.float().sum().item() / real.expand_as(beyond).sum().item()
        loss = self.loss_coeff * total / self.num_layers                             # c · (1/L) Σ_l
        metrics = {"ent_reg_loss": float(loss.detach()), "ent_reg_outside_frac": outside / self.num_layers,
                   "ent_reg_theta": self.theta.detach().flatten().tolist()}
        return loss, metrics
