"""STEER: down-weight the tokens whose update would move entropy the most (Hao et al., 2025,
"Rethinking Entropy Interventions in RLVR: An Entropy Change Perspective", arXiv 2510.10150;
official code github.com/zz-haooo/STEER, `compute_token_weights` and the
`entropy_control` policy loss in its verl `core_algos.py`).

A first-order estimate Ω_t says how much the update on token t will change the entropy at its
position: it grows with the advantage, with how movable the token's probability is, and with how
far its surprisal is from the entropy. STEER multiplies each token's PPO loss by a weight λ_t that
shrinks as |Ω_t| grows, so no few tokens can swing the entropy in one step.

    p_t     = clamp(π_θ(y_t|s_t), 1e-8, 1 − 1e-8),   p^old_t = clamp(π_old(y_t|s_t), 1e-8, 1)
    Ω_t     = (A_t / p^old_t) · p_t(1 − p_t) · (log p_t + H^old_t)          (all detached)
    m_t     = |Ω_t|  (non-finite → 0);  m_max, m_min over the valid tokens of the batch
    exponential (the paper's form, `linear=False`):
        λ_t = clamp(exp(−κ·m_t), λ_min, 1)  with  κ = −ln λ_min / max(m_max, 0.02)
            = λ_min^(m_t / m_max): the token with the largest |Ω| gets exactly λ_min
    linear (`linear=True`):
        λ_t = clamp(λ_max − (m_t − m_min)·(λ_max − λ_min)/(m_max − m_min), λ_min, λ_max)
              ((λ_min + λ_max)/2 for all tokens when m_max = m_min)
    ℓ_t     = λ_t · ℓ^{PPO, dual-clip}_t,   L = aggregate(ℓ, M)

(The paper writes λ = exp(−α·|Ω|/max|Ω|), the exponential map with α = −ln λ_min ≈ 0.223.)

H^old. The official code uses the rollout-pass entropy of π_old. The trainer hands the loss the
entropy of the current π_θ (`extra.entropy`), which is H^old exactly on a step's first mini-batch
and drifts by one to three updates on the others; it is used detached. The exact version needs the
trainer to pass the rollout's entropy (`Rollout.entropy`) in `LossExtras`.

Settings (`--set name=value`; official value, official key):
    token_weight_min   λ_min = 0.8 (`policy_loss.token_weight_min`, run/run_exp.sh).
    token_weight_max   λ_max = 1.0 for the exponential map (run_exp.sh; the exp map caps at 1
                       anyway), 1.2 for the linear map (run_linear.sh).
    linear             False: the exponential map of run_exp.sh (the function's default is True).
    clip_ratio_low/high 0.2 / 0.28, clip_ratio_c 10.0: the official training scripts.
    The min/max run over the rows the loss receives (one mini-batch here; verl: one micro-batch of
    8 sequences). At the tiny CPU scale a few tokens have |Ω| far above the rest, so with
    λ_min = 0.8 nearly every weight stays close to 1 and the loss is almost PPO-clip's; the
    tiny-scale setting of `compare.TINY_SCALE_VARIANTS` is λ_min = 0.1 (notebook 03 compares it
    with grpo over seeds; `steer/weight_mean` shows how far the weights moved).

Metrics: `steer/weight_min`, `steer/weight_max`, `steer/weight_mean` (λ over valid tokens, the
official token_weights_* logs), `steer/omega_max` (m_max), `steer/clip_high_frac` (A > 0 and
r > 1 + ε_high) and `steer/clip_low_frac` (A < 0 and r < 1 − ε_low), the official clip counts as
fractions of valid tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_token_loss, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class SteerConfig(PolicyLossConfig):
    clip_ratio_high: float = 0.28
    """ε_high of the official STEER scripts."""
    clip_ratio_c: float | None = 10.0
    """Dual-clip bound of the official STEER scripts."""
    token_weight_min: float = 0.8
    """λ_min: the weight of the token with the largest |Ω| (`policy_loss.token_weight_min`)."""
    token_weight_max: float = 1.0
    """λ_max: used by the linear map only (`token_weight_max`; 1.2 in run_linear.sh)."""
    linear: bool = False
    """False: exponential map λ = λ_min^(m/m_max) (paper, run_exp.sh); True: linear map."""


def entropy_change_estimate(logp, old_logp, adv, H_old):
    """Ω (B, T): first-order entropy change of each token's update, detached:
    Ω_t = (A_t / p^old_t)·p_t(1 − p_t)·(log p_t + H^old_t) (official `compute_token_weights`). The ratio's
    gradient w.r.t. the sampled logit is p(1 − p)/p^old, and a step on that logit changes the entropy
    in proportion to −p(log p + H) (the entropy-covariance lemma, `minirl.theory`)."""
    p = torch.exp(logp.detach()).clamp(1e-8, 1 - 1e-8)
    p_old = torch.exp(old_logp.detach()).clamp(1e-8, 1.0)
    omega = (adv / p_old) * p * (1 - p) * (torch.log(p) + H_old.detach())
    return torch.where(torch.isfinite(omega), omega, torch.zeros_like(omega))


def steer_weights(m, mask, lam_min: float, lam_max: float, linear: bool):
    """λ (B, T), 0 on padding, from m = |Ω| (B, T)."""
    valid = mask.bool()
    if not valid.any():
        return torch.zeros_like(m)
    m_min, m_max = m[valid].min(), m[valid].max()
    if linear:
        if m_max > m_min:
            lam = lam_max - (m - m_min) * (lam_max - lam_min) / (m_max - m_min)
        else:
            lam = torch.full_like(m, (lam_min + lam_max) / 2)
        lam = lam.clamp(lam_min, lam_max)
    else:
        kappa = -math.log(lam_min) / torch.clamp(m_max, min=0.02)
        lam = torch.exp(-kappa * m).clamp(lam_min, 1.0)
    return lam * valid


@register_method("steer", config_cls=SteerConfig, default_agg_mode="token-mean", needs=("entropy",),
                 summary="STEER: weight each token's loss down by its estimated entropy change |Ω|")
def steer_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
               config: SteerConfig | None = None, extra: LossExtras | None = None):
    config = config or SteerConfig()
    if extra is None or extra.entropy is None:
        raise ValueError("steer needs the token entropy: pass LossExtras(entropy=...) (the trainer does)")
    omega = entropy_change_estimate(logp, old_logp, adv, extra.entropy)                  # (B, T)
    m = omega.abs()
    lam = steer_weights(m, mask, config.token_weight_min, config.token_weight_max, config.linear)
    ell, is_clipped, dual = ppo_clip_token_loss(
        logp, old_logp, adv,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    loss = aggregate_loss(lam * ell, mask, agg_mode, config.loss_scale_factor)
    valid = mask.bool()
    r = torch.exp(logp - old_logp).detach()
    clip_high = ((adv > 0) & (r > 1 + config.clip_ratio_high)).float()             # official clip_high_count
    clip_low = ((adv < 0) & (r < 1 - config.clip_ratio_low)).float()               # official clip_low_count
    lam_valid = lam[valid] if valid.any() else torch.zeros(1)
    metrics = {
        **ppo_metrics(loss, logp, old_logp, is_clipped, dual, mask),
        "weight_min": lam_valid.min().item(),
        "weight_max": lam_valid.max().item(),
        "weight_mean": lam_valid.mean().item(),
        "omega_max": m[valid].max().item() if valid.any() else 0.0,
        "clip_high_frac": masked_mean(clip_high, mask).item(),
        "clip_low_frac": masked_mean(clip_low, mask).item(),
    }
    return loss, metrics
