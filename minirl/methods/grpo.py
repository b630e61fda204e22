"""GRPO: PPO-clip on group-normalised outcome advantages (Shao et al., 2024, DeepSeekMath).

    r_{i,t} = exp(logp_{i,t} − old_logp_{i,t})
    ℓ_{i,t} = max(−A_i·r_{i,t}, −A_i·clip(r_{i,t}, 1 − ε_low, 1 + ε_high)),  dual-clip for A < 0
    L       = aggregate(ℓ, M)       (GRPO paper: seq-mean-token-mean)

The baseline every intervention is compared against. Its entropy collapses.
"""
from __future__ import annotations

from ..core import aggregate_loss, ppo_clip_token_loss, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@register_method("grpo", default_agg_mode="seq-mean-token-mean",
                 summary="PPO-clip on group-normalised advantages; the baseline that collapses")
def grpo_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="seq-mean-token-mean",
              config: PolicyLossConfig | None = None, extra: LossExtras | None = None):
    config = config or PolicyLossConfig()
    loss_mat, is_clipped, dual = ppo_clip_token_loss(
        log_prob, old_log_prob, advantages,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    loss = aggregate_loss(loss_mat, response_mask, loss_agg_mode, config.loss_scale_factor)
    return loss, ppo_metrics(loss, log_prob, old_log_prob, is_clipped, dual, response_mask)
