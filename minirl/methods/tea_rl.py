"""TEA-RL: Light-IF's token-wise entropy-adaptive bonus (Wang et al., 2025, "Light-IF: Endowing
LLMs with Generalizable Reasoning via Preview and Self-Checking for Complex Instruction
Following", arXiv 2508.03178; official code github.com/Qihoo360/Light-IF, `rl/verl/verl/trainer/ppo/
core_algos.py::compute_entropy_with_cov`).

An entropy bonus spread evenly over tokens wastes itself on tokens that do not drive collapse.
TEA-RL weights each token's entropy by a softmax, within its response, of the token's
log-prob/advantage covariance (Cui et al., arXiv 2505.22617, as in `clip_cov.py`): the tokens whose
updates shrink entropy the most get the largest bonus.

    Cov_t = (A_t − mean A) · (logp_t − mean logp)      means over the mini-batch's response tokens
    w_t   = clamp( α_cov · softmax_{t ∈ o_i}(Cov_t), 0, ub )      padding gets −∞ before the softmax
    L     = L_PG − agg(w_t · H_t)

`agg` is the run's `loss_agg_mode`; there is no separate coefficient: α_cov is the bonus scale.

The released RL code never runs this: the branch sits after the default `loss_mode == "vanilla"`
branch, refers to an undefined `entropy_mode` and would leave `pg_loss` undefined,
so the released runs are plain GRPO + KL. We implement the intent, the function itself.

Settings (official keys, `ppo_trainer.yaml`):
  cov_alpha = 10.0        α_cov (`algorithm.cov_alpha`).
  clip_cov_ub = 5.0       ub, the cap on w_t (`algorithm.clip_cov_ub`).
  tea_weight_grad = False The released function centres logp with a detached mean but keeps the
                          gradient of logp_t itself, so gradient also flows through w_t. OUR default
                          detaches w_t (the bonus only raises entropy); True is the released form.
Scale: the softmax makes the weights of one response sum to α_cov before the cap, so the
per-token weight is about α_cov / |o_i|. Light-IF's responses are thousands of tokens long (about
0.003 per token); countdown responses are ~6 tokens, where α_cov = 10 gives w ≈ 1.7 per token, an
enormous bonus. At CPU scale use α_cov ≈ 0.1–0.2 (w ≈ 0.02–0.03 per token, the coefficient of the
tiny-scale entropy bonus in `compare.TINY_SCALE_VARIANTS`). The Light-IF recipe also turns PPO
clipping off (clip_ratio_low = high = 1.0, clip_ratio_c = 10) and uses KL-to-ref 0.001; those are
`--set` / trainer options, not defaults here.

Metrics: `entropy_loss_cov` (agg of w, the official metric), `entropy_bonus` (agg of w·H),
`w_max` (largest weight, shows the cap at work).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_loss
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class TEARLConfig(PolicyLossConfig):
    cov_alpha: float = 10.0
    """α_cov: the weights of one response sum to α_cov before the cap (official 10.0)."""
    clip_cov_ub: float = 5.0
    """ub: upper cap on each token's weight w_t (official 5.0)."""
    tea_weight_grad: bool = False
    """Let gradient flow through w_t via logp_t, as the released function does (ours: False)."""


def covariance_weights(logp, adv, mask, alpha: float, ub: float):
    """w_t = clamp(α · softmax over each response of Cov_t, 0, ub), 0 on padding. (B, T)."""
    M = mask.bool()
    mean_adv = masked_mean(adv, mask)
    mean_logp = masked_mean(logp.detach(), mask)
    cov = (adv - mean_adv) * (logp - mean_logp)                          # (B, T)
    empty_row = ~M.any(dim=1, keepdim=True)                           # avoid softmax of all −∞
    cov = torch.where(M, cov, torch.where(empty_row, 0.0, float("-inf")))
    w = torch.clamp(alpha * torch.softmax(cov, dim=-1), 0.0, ub)
    return torch.where(M, w, torch.zeros_like(w))


@register_method("tea_rl", config_cls=TEARLConfig, default_agg_mode="token-mean", needs=("entropy",),
                 acts_without_advantages=lambda config: config.cov_alpha != 0,   # A = 0: w = α_cov/|o_i|, a bonus
                 summary="Light-IF TEA-RL: entropy bonus weighted by a per-response softmax of Cov(logp, A)")
def tea_rl_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                config: TEARLConfig | None = None, extra: LossExtras | None = None):
    config = config or TEARLConfig()
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)

    logp_w = logp if config.tea_weight_grad else logp.detach()
    w = covariance_weights(logp_w, adv, mask, config.cov_alpha, config.clip_cov_ub)                   # (B, T)
    H = extra.entropy                                                                               # (B, T)
    bonus = aggregate_loss(w * H, mask, agg_mode, config.loss_scale_factor)
    loss = pg_loss - bonus

    metrics = {
        **pg_metrics,
        "entropy_loss_cov": aggregate_loss(w.detach(), mask, agg_mode,
                                           config.loss_scale_factor).item(),
        "entropy_bonus": bonus.item(),
        "w_max": w.max().item(),
    }
    return loss, metrics
