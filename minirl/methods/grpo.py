"""GRPO: PPO-clip on group-normalised outcome advantages (Shao et al., 2024, DeepSeekMath).

    r_{i,t} = exp(logp_{i,t} − old_logp_{i,t})
    ℓ_{i,t} = max(−A_i·r_{i,t}, −A_i·clip(r_{i,t}, 1 − ε_low, 1 + ε_high)),  dual-clip for A < 0
    L       = aggregate(ℓ, M)       (GRPO paper: seq-mean-token-mean)

The baseline every intervention is compared against. Its entropy collapses.
"""
from __future__ import annotations

from ..core import ppo_clip_loss
from .registry import LossExtras, PolicyLossConfig, register_method


@register_method("grpo", default_agg_mode="seq-mean-token-mean",
                 summary="PPO-clip on group-normalised advantages; the baseline that collapses")
def grpo_loss(logp, old_logp, adv, mask, agg_mode="seq-mean-token-mean",
              config: PolicyLossConfig | None = None, extra: LossExtras | None = None):
    config = config or PolicyLossConfig()
    return ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)
