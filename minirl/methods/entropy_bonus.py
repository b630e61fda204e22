"""Plain entropy bonus: PPO-clip minus c times the policy's full-vocabulary entropy (verl
`actor.entropy_coeff`, TRL `entropy_coef`).

The oldest remedy for entropy collapse: reward the policy for staying uncertain at every position it
is trained on. It acts on all tokens alike, so a coefficient large enough to matter tends to make the
entropy explode rather than hold it: the failure that Lp-Reg (arXiv 2510.03222) reports for GRPO +
entropy loss on Qwen2.5-32B, and that SIREN (arXiv 2509.25133) starts from.

    H_{i,t} = −Σ_v π_θ(v∣s_{i,t}) log π_θ(v∣s_{i,t})          (full vocabulary, temperature-scaled logits)
    L = agg(ℓ, M) − c · agg_H(H, M)                          (verl `dp_actor`: policy_loss = pg_loss −
                                                              entropy_coeff · entropy_loss)

with ℓ the PPO-clip token loss (`core.ppo_clip_token_loss`). The gradient flows through H (it is not detached).

Settings (`--set name=value`):
    entropy_coeff     0.001 — c. verl `actor.entropy_coeff` (earlier verl versions defaulted to 1e-3, now 0, which
                      would make this method plain GRPO; TRL `entropy_coef`, default 0). The tiny CPU
                      scale needs a larger c: `compare.TINY_SCALE_VARIANTS` uses `--set entropy_coeff=0.03`.
    entropy_agg_mode  None — agg_H. None aggregates H with the run's `loss_agg_mode` over all response
                      tokens, as verl does; "token-mean" is TRL's choice (always the token mean, whatever the
                      loss type).
    clip_ratio_low/high 0.2/0.2, clip_ratio_c 3.0 — verl's PPO defaults.
Not implemented: the adaptive coefficient of Skywork-OR1 (TRL `use_adaptive_entropy`).

Metrics: `entropy_bonus/entropy_term` = agg_H(H, M) (the term the bonus multiplies; it is the
current policy's entropy during the update, not the rollout's `entropy`), `entropy_bonus/bonus` = c·agg_H.
`pg_loss` is the PPO part only, as in verl.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import aggregate_loss, ppo_clip_loss
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class EntropyBonusConfig(PolicyLossConfig):
    entropy_coeff: float = 0.001
    """c (verl `actor.entropy_coeff`; TRL `entropy_coef`). 0.03 suits the tiny CPU models."""
    entropy_agg_mode: str | None = None
    """How H is aggregated: None = the run's loss_agg_mode (verl); "token-mean" = TRL."""


@register_method("entropy_bonus", config_cls=EntropyBonusConfig, default_agg_mode="token-mean",
                 needs=("entropy",), summary="PPO-clip minus c times the mean full-vocabulary entropy",
                 acts_without_advantages=lambda config: config.entropy_coeff != 0)   # −c·H needs no advantage
def entropy_bonus_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                       config: EntropyBonusConfig | None = None, extra: LossExtras | None = None):
    config = config or EntropyBonusConfig()
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)
    H = extra.entropy                                                             # (B, T), with gradient
    H_agg = aggregate_loss(H, mask, config.entropy_agg_mode or agg_mode, config.loss_scale_factor)
    c = config.entropy_coeff
    loss = pg_loss - c * H_agg
    metrics = {
        **pg_metrics,
        "entropy_term": H_agg.item(),
        "bonus": c * H_agg.item(),
    }
    return loss, metrics
