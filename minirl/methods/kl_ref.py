"""KL-to-reference: PPO-clip plus β·KL(π_θ ‖ π_ref) to the frozen warm start (the GRPO
loss of Shao et al., 2024, DeepSeekMath, arXiv 2402.03300, Eq. 3, with verl's `use_kl_loss`).

The classic leash: the policy pays for every nat it moves away from where it started, so it cannot
collapse far from the reference's entropy, but it also cannot learn far from it. The KL is estimated
per token from samples of π_old ≈ π_θ with Schulman's estimators (`core.kl_penalty`).

    log_r_{i,t} = ref_logp_{i,t} − logp_{i,t}
    k1 = −log_r     k2 = ½·log_r²     k3 = exp(log_r) − 1 − log_r   (verl kl / mse / low_var_kl)
    L  = agg(ℓ, M) + β · agg(k, M)                                 (ℓ: PPO-clip, core.ppo_clip_token_loss)

A trailing "+" (e.g. "k3+") is verl's straight-through form: the value of k, the gradient of k2.
As in verl, k3 is clamped to [−10, 10]. TRL instead weights k by the importance ratio,
k ← r·k with r = exp(logp − old_logp) (`use_bias_correction_kl`, TRL's default; DeepSeek-V3.2): the
value is unchanged at r = 1, but then ∇ E_{π_old}[r·k] is exactly the gradient of the estimated KL.

Settings (`--set name=value`):
    kl_loss_coef  0.001 — β. verl `actor.kl_loss_coef` (DeepSeekMath used 0.04, TRL `beta` 0 by default).
                  The tiny CPU models need a larger β: `compare.TINY_SCALE_VARIANTS` uses
                  `--set kl_loss_coef=0.05`.
    kl_estimator  "k3"  — verl `actor.kl_loss_type=low_var_kl` (= k3, TRL's only choice); k1, k2, k1+, k2+, k3+.
    ratio_weighted False — True multiplies k by r (TRL `use_bias_correction_kl=True`); verl does not.
    clip_ratio_low/high 0.2/0.2, clip_ratio_c 3.0 — verl's PPO defaults.
Aggregation: both terms use the run's `loss_agg_mode`, default seq-mean-token-mean (GRPO's), so that
`kl_ref` differs from `grpo` only by the KL term.

This is the named method with its own β; the trainer's `TrainConfig.kl_coef` adds the same kind of term
to any method. train_defaults keeps `kl_coef=0` so the KL is not counted twice; do not set both.

Metrics: `kl_ref` (standard key: mean per-token KL estimate over response tokens), `kl_ref/kl_loss`
(β·agg(k, M), the term added to the loss). `pg_loss` is the PPO part only, as in verl.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import aggregate_loss, kl_penalty, masked_mean, ppo_clip_loss
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class KLRefConfig(PolicyLossConfig):
    kl_loss_coef: float = 0.001
    """β (verl `actor.kl_loss_coef`; DeepSeekMath 0.04). 0.05 suits the tiny CPU models."""
    kl_estimator: str = "k3"
    """k1, k2 or k3 (verl `actor.kl_loss_type`: kl, mse, low_var_kl); a trailing '+' gives k2's gradient."""
    ratio_weighted: bool = False
    """Multiply k by r = exp(logp − old_logp), with gradient (TRL `use_bias_correction_kl`, True there)."""


def kl_estimate(logp, ref_logp, estimator: str = "k3"):
    """Per-token KL(π_θ‖π_ref) estimate (B, T); 'k3' clamped to [−10, 10]; 'k+' = value of k, gradient of k2."""
    k = kl_penalty(logp, ref_logp, estimator.rstrip("+"))
    if estimator.rstrip("+") == "k3":
        k = k.clamp(-10.0, 10.0)
    if estimator.endswith("+"):
        k2 = kl_penalty(logp, ref_logp, "k2")
        k = k2 + (k - k2).detach()                                                 # straight-through
    return k


@register_method("kl_ref", config_cls=KLRefConfig, default_agg_mode="seq-mean-token-mean",
                 needs=("ref_log_prob",), train_defaults={"kl_coef": 0.0},
                 acts_without_advantages=lambda config: config.kl_loss_coef != 0,   # β·KL to the reference
                 own_kl_setting="kl_loss_coef",
                 summary="PPO-clip plus beta times KL(pi_theta || pi_ref) to the warm start (k1/k2/k3)")
def kl_ref_loss(logp, old_logp, adv, mask, agg_mode="seq-mean-token-mean",
                config: KLRefConfig | None = None, extra: LossExtras | None = None):
    config = config or KLRefConfig()
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)
    k = kl_estimate(logp, extra.ref_log_prob, config.kl_estimator)               # (B, T)
    if config.ratio_weighted:
        k = k * (logp - old_logp).exp()                                           # r·k
    kl_loss = config.kl_loss_coef * aggregate_loss(k, mask, agg_mode, config.loss_scale_factor)
    metrics = {
        **pg_metrics,
        "kl_ref": masked_mean(k, mask).item(),
        "kl_loss": kl_loss.item(),
    }
    return pg_loss + kl_loss, metrics
