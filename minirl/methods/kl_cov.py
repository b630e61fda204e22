"""KL-Cov: a KL leash on the top-covariance tokens, no PPO clipping anywhere (Cui et al., 2025, "The
Entropy Mechanism of Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617, §4;
official code github.com/PRIME-RL/Entropy-Mechanism-of-RL, in verl as `policy_loss.loss_mode=kl_cov`).

Entropy falls by the covariance between a token's log-probability and its advantage, concentrated
on a few tokens. KL-Cov trains every token on the plain (unclipped) ratio objective and adds a
penalty β·|log r| on the k·N tokens with the largest covariance, so those cannot run away from π_old.

    Cov_t = (logp_t − mean logp)·(A_t − mean A)        means over the N valid tokens (official code)
    I_KL  = the max(1, ⌊k·N⌋) valid tokens with the largest Cov_t    (none when k = 0)
    ℓ_t   = −A_t·r_t + β·|logp_t − old_logp_t|·1[t ∈ I_KL]            r_t = exp(logp_t − old_logp_t)
    L     = aggregate(ℓ, M)

The paper writes the penalty as KL(π_old‖π_θ); the official code uses |log r| (kept here). The
code takes ⌊k·N⌋ tokens, at least 1, not ⌈k·N⌉ (kept here). Note that |log r| = 0 with zero gradient
at r = 1: on the first mini-batch of a step (on-policy) KL-Cov is exactly the unclipped ratio loss.

Settings (`--set name=value`; official default, official key):
    kl_cov_ratio    k = 2e-3, a FRACTION of the valid tokens: the official 7B script's `k_percent=0.2`
                    is a percentage (the code divides by 100; 32B: 0.02 % = 2e-4). verl's
                    `policy_loss.kl_cov_ratio` is already a fraction, default 2e-4. With ~200-400
                    tokens per mini-batch both mean one token; 0.02 suits the tiny CPU scale.
                    0 selects no token (as the official code; verl refuses 0).
    ppo_kl_coef     β = 1 (official scripts and config, `actor.ppo_kl_coef`); verl's
                    `policy_loss.ppo_kl_coef` defaults to 0.1. k = 0.02 with β = 5 is the tiny-scale
                    setting of `compare.TINY_SCALE_VARIANTS` (notebook 03 compares it with grpo over seeds).
    micro_batch_size None: centre Cov on the whole rollout's mean old logp and mean A (handed over
                    by the trainer; the paper's reading) and pick I_KL over the rows the loss
                    receives; k: centre and pick per chunk of k sequences, verl's behaviour.
    clip_ratio_low/high, clip_ratio_c: unused — KL-Cov clips nothing (official behaviour).

Which batch. The paper's means run over the whole batch; verl's over one micro-batch. The trainer
calls this loss once per mini-batch (a quarter of the step's rollout), so by default Cov is centred
over the mini-batch. Centring over the whole rollout needs the trainer to hand the loss the
rollout's mean logp and mean A (or a precomputed per-token Cov).

Metrics: `ppo_kl` keeps minirl's meaning (mean old_logp − logp); verl's KL-Cov `ppo_kl`, the mean
|log r| over valid tokens, is `kl_cov/abs_kl`. `kl_cov/n_selected` = |I_KL|, `kl_cov/penalty` = the
penalty's share of L, aggregate(β·|log r|·1[I_KL], M). `clip_frac` and `clip_frac_lower` are 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean
from ..diagnostics import centred_covariance
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class KLCovConfig(PolicyLossConfig):
    kl_cov_ratio: float = 2e-3
    """k: fraction (not percent) of valid tokens penalised (official k_percent=0.2 %, verl 2e-4); 0 = none."""
    ppo_kl_coef: float = 1.0
    """β: weight of |log r| on the selected tokens (official 1.0; verl's default 0.1)."""
    micro_batch_size: int | None = None
    """Sequences per covariance chunk; None = all rows the loss receives (one mini-batch here)."""


def kl_cov_selection(cov: torch.Tensor, mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """I_KL (B, T) bool: the max(1, ⌊k·N⌋) valid tokens of one chunk with the largest Cov."""
    valid = mask.bool()
    cov_valid = cov[valid]                                                      # (N,) row-major
    n_kl = max(1, int(ratio * cov_valid.numel())) if ratio > 0 and cov_valid.numel() > 0 else 0
    keep = torch.zeros_like(cov_valid, dtype=torch.bool)
    keep[torch.topk(cov_valid, n_kl).indices] = True
    I_KL = torch.zeros_like(valid)
    I_KL[valid] = keep
    return I_KL


@register_method("kl_cov", config_cls=KLCovConfig, default_agg_mode="token-mean",
                 summary="KL-Cov: unclipped ratio loss plus a |log r| penalty on the top-covariance tokens")
def kl_cov_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                config: KLCovConfig | None = None, extra: LossExtras | None = None):
    config = config or KLCovConfig()
    log_r = logp - old_logp                                                     # (B, T)
    r = torch.exp(log_r)
    M = mask.bool()
    I_KL = torch.zeros_like(M)                                                  # (B, T)
    chunk = config.micro_batch_size or len(M)
    # centre on the whole rollout's means when known, unless asked for per-chunk centring
    rollout_means = extra.rollout_means() if extra is not None and config.micro_batch_size is None else None
    for rows in torch.arange(len(M)).split(chunk):                              # one chunk by default
        cov = centred_covariance(logp[rows].detach(), adv[rows], M[rows], rollout_means)
        I_KL[rows] = kl_cov_selection(cov, M[rows], config.kl_cov_ratio)
    penalty_mat = config.ppo_kl_coef * log_r.abs() * I_KL                       # β·|log r|·1[I_KL]
    ell = -adv * r + penalty_mat
    loss = aggregate_loss(ell, mask, agg_mode, config.loss_scale_factor)
    metrics = {
        "pg_loss": loss.item(),
        "clip_frac": 0.0,
        "clip_frac_lower": 0.0,
        "ppo_kl": masked_mean(old_logp - logp, mask).item(),
        "abs_kl": masked_mean(log_r.abs(), mask).item(),
        "n_selected": float(I_KL.sum().item()),
        "penalty": aggregate_loss(penalty_mat, mask, agg_mode, config.loss_scale_factor).item(),
    }
    return loss, metrics
