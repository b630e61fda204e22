"""AEPO (agentic), the loss half: stop-gradient high clipping and entropy-aware advantages
(Dong et al., 2025, "Agentic Entropy-Balanced Policy Optimization", arXiv 2510.14545; official
code github.com/RUC-NLPIR/ARPO, `AEPO/.../core_algos.py::compute_policy_loss_entropy_balanced_clipping`,
read through the fork github.com/wangevan6/ARPO).

PPO's upper clip zeroes the gradient of exactly the high-entropy tokens that rose fastest, and a
flat advantage treats confident and uncertain tokens alike. AEPO keeps a rescaled gradient on
tokens clipped from above, and scales each token's advantage by its normalised entropy.

    z_t   = (H_t − mean H) / std H                  over the mini-batch's response tokens (unbiased std)
    Â_t   = A_t · (1 + g · sg(z_t))                                           (entropy-aware advantage)
    r̃_t   = (1 + ε_high) · r_t / sg(r_t)   if r_t > 1 + ε_high   (value 1 + ε_high, gradient kept)
          = max(r_t, 1 − ε_low)             otherwise              (the low clip stays hard)
    ℓ_t   = max(−Â_t r_t, −Â_t r̃_t),  then dual-clip ℓ_t ← min(ℓ_t, −Â_t c) where Â_t < 0
    L     = agg(ℓ, M)

For Â > 0 and r > 1 + ε_high the clipped branch is active (the loss value is PPO's), but its
gradient w.r.t. logp is −Â(1 + ε_high) instead of 0. A token with z_t < −1/g (−5 for g = 0.2) gets
its advantage's sign flipped; the official code allows this, we log how often (`adv_sign_flip_frac`).

This file is the policy-update part only. AEPO's rollout part (entropy pre-monitoring that splits
the budget between global samples and branches, and the consecutive-branch penalty) needs the
multi-turn tool rollout: the whole method is `aepo_agentic`.

Settings (official keys; `AEPO_Qwen3_14B_DeepResearch.sh`, `ppo_trainer_dr.yaml`):
  enable_entropy_balanced_clipping = True    (`actor.enable_entropy_balanced_clipping`)
  enable_entropy_balanced_advantage = True   (`actor.enable_entropy_balanced_advantage`). The released
      actor computes H only when `entropy_coeff ≠ 0` and the scripts set 0, so the released runs skip
      this term silently. We compute H whenever the flag is on: the paper's intent.
  advantage_gain = 0.2                       g, hard-coded in the official code (ours: a setting).
  clip 0.2/0.2, clip_ratio_c = 3.0, token-mean (the config defaults the scripts keep). The scripts
  also set `use_kl_loss=True` with coefficient 0 (no KL).
The statistics of z are taken over the loss call's mini-batch (verl: its micro-batch). Nothing here
depends on scale; the defaults suit the CPU runs as they are. With both flags off this is GRPO.

Metrics: `high_clip_grad_frac` (tokens with Â > 0 and r > 1 + ε_high, whose gradient the
stop-gradient clip keeps), `adv_scale_min` / `adv_scale_max` (range of 1 + g·z over response
tokens), `adv_sign_flip_frac`. `clip_frac` counts clipped tokens as PPO does (kept-gradient ones too).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, dual_clip, masked_mean, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class AEPOAgenticLossConfig(PolicyLossConfig):
    enable_entropy_balanced_clipping: bool = True
    """Keep a rescaled gradient above the upper clip via (1 + ε_high)·r/sg(r) (official True)."""
    enable_entropy_balanced_advantage: bool = True
    """Scale advantages by 1 + g·sg(z_t) with z the normalised token entropy (official True)."""
    advantage_gain: float = 0.2
    """g: gain of the entropy-aware advantage (hard-coded 0.2 in the official code)."""


def entropy_scale(H: torch.Tensor, mask: torch.Tensor, gain: float) -> torch.Tensor:
    """1 + g·z_t with z_t the entropy standardised over the response tokens (detached). (B, T)."""
    H_valid = H.detach()[mask.bool()]
    if H_valid.numel() == 0:
        return torch.ones_like(H)
    std = H_valid.std() if H_valid.numel() > 1 else H.new_tensor(0.0)
    std = torch.where(std > 0, std, torch.ones_like(std))              # the code's std = 0 → 1
    z = (H.detach() - H_valid.mean()) / std
    return 1.0 + gain * z


@register_method("aepo_agentic_loss", config_cls=AEPOAgenticLossConfig, default_agg_mode="token-mean",
                 needs=("entropy",),
                 summary="AEPO (agentic) loss: gradient-keeping high clip + entropy-scaled advantages")
def aepo_agentic_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                      config: AEPOAgenticLossConfig | None = None, extra: LossExtras | None = None):
    config = config or AEPOAgenticLossConfig()
    eps_low, eps_high, c = config.clip_ratio_low, config.clip_ratio_high, config.clip_ratio_c
    scale = torch.ones_like(adv)
    if config.enable_entropy_balanced_advantage:
        scale = entropy_scale(extra.entropy, mask, config.advantage_gain)            # (B, T)
    A_hat = adv * scale                                                               # (B, T)

    r = torch.exp(logp - old_logp)                                                    # (B, T)
    above = r > 1.0 + eps_high
    upper = (1.0 + eps_high) * r / r.detach() if config.enable_entropy_balanced_clipping \
        else torch.full_like(r, 1.0 + eps_high)
    r_clip = torch.where(above, upper, torch.clamp(r, min=1.0 - eps_low))
    unclipped, clipped = -A_hat * r, -A_hat * r_clip
    ell = torch.maximum(unclipped, clipped)
    is_clipped = clipped > unclipped
    ell, dual = dual_clip(ell, A_hat, c)
    loss = aggregate_loss(ell, mask, agg_mode, config.loss_scale_factor)

    M = mask.bool()
    kept = above & (A_hat > 0) if config.enable_entropy_balanced_clipping else torch.zeros_like(above)
    metrics = {
        **ppo_metrics(loss, logp, old_logp, is_clipped, dual, mask),
        "high_clip_grad_frac": masked_mean(kept.float(), mask).item(),
        "adv_scale_min": scale[M].min().item() if M.any() else 1.0,
        "adv_scale_max": scale[M].max().item() if M.any() else 1.0,
        "adv_sign_flip_frac": masked_mean((scale < 0).float(), mask).item(),
    }
    return loss, metrics
