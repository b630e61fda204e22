"""Entropy-based advantage (Cheng et al., 2025, "Reasoning with Exploration: An Entropy Perspective",
arXiv 2506.14758; no official code read; the baseline `experiment_type=baseline_entropy_adv` of the
SIREN repository github.com/Linn3a/siren, `dp_actor.py`).

High-entropy tokens mark exploratory reasoning (pivots, reflection, rare strategies), so every token's
advantage gets a bonus that grows with its entropy. The bonus is detached (it shapes the advantage, it
is not an entropy regulariser) and clipped by |A|/κ, so it never outweighs the outcome signal: with
κ ≥ 1 it cannot flip the sign of a negative advantage, and where A = 0 it is 0.

    ψ_t  = min( α · sg(H_t),  |A_t| / κ )                 (the paper's entropy-based term; its
    A'_t = A_t + ψ_t                                       equation number not checked), then GRPO's PPO-clip

Settings: α = 0.4 (SIREN key `adv_alpha`; the paper's value too); κ = 2 (the paper's); neither paper
value was checked against its PDF. The SIREN baseline hard-codes κ = 1. Base: GRPO, PPO-clip 0.2,
token-mean (verl).

Which entropy (ours, a setting): `entropy_source = "old"` (default) uses H of π_old from the rollout
(`rollout.entropy`, full vocabulary, training temperature) and shapes the advantages once per step,
before the update; `"current"` uses H of π_θ from each update's forward pass, detached, as the SIREN
baseline does. The two agree on the first mini-batch of a step and drift apart by the size of the
update after it. The term is added at every response token.

Metrics: `psi_mean` (mean ψ over response tokens), `psi_clip_frac` (share of tokens with A ≠ 0 where
|A|/κ binds), `adv_mean_before`, `adv_mean_after` (token means of A and A').
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import masked_mean
from ..diagnostics import token_entropy
from .grpo import grpo_loss
from .registry import BatchContext, LossExtras, PolicyLossConfig, register_method

ENTROPY_SOURCES = ("old", "current")


@dataclass
class EntropyAdvConfig(PolicyLossConfig):
    alpha: float = 0.4
    """α: weight of the entropy term (paper and SIREN's `adv_alpha`: 0.4)."""
    kappa: float = 2.0
    """κ: the term is at most |A|/κ (paper 2, not checked against its PDF; SIREN's baseline 1); must be ≥ 1."""
    entropy_source: str = "old"
    """old: π_old's entropy from the rollout; current: π_θ's in the update, detached (SIREN)."""


def check_config(config: EntropyAdvConfig) -> None:
    if config.entropy_source not in ENTROPY_SOURCES:
        raise ValueError(f"unknown entropy_source {config.entropy_source!r}; choose one of: {', '.join(ENTROPY_SOURCES)}")
    if config.alpha < 0:
        raise ValueError(f"alpha={config.alpha} < 0 would penalise entropy; use alpha >= 0")
    if config.kappa < 1:
        raise ValueError(f"kappa={config.kappa} < 1 would let the entropy term flip the sign of negative "
                         "advantages; use kappa >= 1")


def entropy_advantage(A: torch.Tensor, H: torch.Tensor, mask: torch.Tensor, config: EntropyAdvConfig):
    """A' = A + min(α·sg(H), |A|/κ) on (B, T) tensors, and the metrics of the shaping."""
    psi = torch.minimum(config.alpha * H.detach(), A.abs() / config.kappa) * mask            # (B, T)
    moving = (A != 0) & mask.bool()
    clipped = (A.abs() / config.kappa < config.alpha * H.detach()) & moving
    metrics = {"psi_mean": masked_mean(psi, mask).item(),
               "psi_clip_frac": (clipped.sum() / moving.sum().clamp(min=1)).item(),
               "adv_mean_before": masked_mean(A, mask).item(),
               "adv_mean_after": masked_mean(A + psi, mask).item()}
    return A + psi, metrics


def entropy_adv_batch(rollout, rewards, advantages, config: EntropyAdvConfig, ctx: BatchContext):
    """entropy_source=old: token advantages (B, T) shaped by π_old's entropy; current: unchanged."""
    check_config(config)
    if config.entropy_source == "current":
        return rollout, advantages, {}
    mask = rollout.response_mask
    A = advantages[:, None] * mask if advantages.dim() == 1 else advantages                 # (B, T)
    shaped, metrics = entropy_advantage(A, rollout.entropy.to(A.device), mask, config)
    return rollout, shaped, metrics


@register_method("entropy_adv", config_cls=EntropyAdvConfig, transform_batch=entropy_adv_batch,
                 default_agg_mode="token-mean", needs=("logits",),
                 summary="Entropy-Adv (Cheng et al.): advantage + min(alpha*H, |A|/kappa), entropy detached")
def entropy_adv_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                     config: EntropyAdvConfig | None = None, extra: LossExtras | None = None):
    """GRPO's PPO-clip; with entropy_source=current the advantage is shaped here, by π_θ's entropy."""
    config = config or EntropyAdvConfig()
    check_config(config)
    shaping = {}
    if config.entropy_source == "current":
        with torch.no_grad():
            H = token_entropy(extra.logits.detach())                                        # (B, T)
        adv, shaping = entropy_advantage(adv, H, mask, config)
    loss, metrics = grpo_loss(logp, old_logp, adv, mask, agg_mode, config, extra)
    return loss, {**metrics, **shaping}
