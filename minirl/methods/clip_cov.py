"""Clip-Cov: take a few high-covariance tokens out of the policy gradient (Cui et al., 2025, "The
Entropy Mechanism of Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617, §4;
official code github.com/PRIME-RL/Entropy-Mechanism-of-RL, in verl as `policy_loss.loss_mode=clip_cov`).

Entropy falls by the covariance between a token's log-probability and its advantage, and a tiny
set of tokens carries most of that covariance. Clip-Cov draws a random handful of tokens whose
covariance lies in a band [ω_low, ω_high] and detaches them: they give no loss and no gradient.

    Cov_t  = (logp_t − mean logp)·(A_t − mean A)       means over the N valid tokens (official code)
    C      = { t : M_t = 1, ω_low < Cov_t < ω_high, t not already clipped by PPO }
    I_clip = uniform random subset of C of size min(|C|, max(1, ⌊r·N⌋))
    ℓ_t    = max(−A_t·r_t, −A_t·clip(r_t, 1 − ε_low, 1 + ε_high)) · 1[t ∉ I_clip]
    L      = aggregate(ℓ, M)          (detached tokens still count in N, as in verl)

"Already clipped" means PPO's clipped branch is active (−A·clip(r) > −A·r); `logp` in Cov is the
current log-prob, detached. Tokens with Cov ≥ ω_high are never touched: it is not a top-r rule.

Settings (`--set name=value`; official default, official key):
    clip_cov_ratio   r = 2e-4, a FRACTION of the valid tokens (verl `policy_loss.clip_cov_ratio`,
                     PRIME-RL `actor.clip_cov_ratio`). Here a mini-batch holds ~200-400 tokens, so
                     2e-4 means max(1, 0) = one token per update; 0.02 allows 4-8 (at most |C|), the
                     tiny-scale setting of `compare.TINY_SCALE_VARIANTS` that notebook 03 compares
                     with grpo over seeds.
                     0 switches the method off (verl refuses 0; the official max(1, ·) never does).
    clip_cov_lb/ub   ω_low = 1.0, ω_high = 5.0 (`clip_cov_lb`, `clip_cov_ub`).
    clip_ratio_low/high  1.0 / 1.0 as in the official scripts (recipe/dapo/7b_clip_cov.sh): the ratio
                     is clamped to [0, 2], so PPO clipping is nearly off and Clip-Cov is the only
                     brake. verl's actor default is 0.2 / 0.2 (`--set clip_ratio_low=0.2 ...`).
    clip_ratio_c     None: the official Clip-Cov loss applies no dual-clip (the scripts' 10.0 is unused).
    micro_batch_size None: centre Cov on the rollout's means, draw I_clip over the rows the loss receives; k: per chunk
                     of k sequences, verl's behaviour (it centres per micro-batch; the official
                     scripts use token-budget micro-batches of a few sequences).

Which batch. The paper's means run over the whole batch; verl's over one micro-batch. The trainer
calls this loss once per mini-batch (a quarter of the step's rollout) and hands it the whole
rollout's mean old logp and mean A (`extra.batch_mean_*`): by default Cov is centred on those
(the paper's reading; on a step's first mini-batch π_θ = π_old exactly), while the candidate set
and ⌊r·N⌋ are per mini-batch. `micro_batch_size=k` centres per chunk of k sequences instead
(verl's behaviour); a direct call without the rollout means centres on the rows it is given.

Randomness. I_clip is drawn with `torch.randperm` on torch's global RNG (the trainer re-seeds it
every step), over the candidates in row-major order, exactly as verl does: with the same seed both
pick the same tokens. `clip_cov_selection(..., generator=g)` takes an explicit generator for tests.

Metrics: `clip_frac` is the fraction of valid tokens detached, |I_clip|/N (what verl logs as
`pg_clipfrac` for this loss), NOT PPO clipping, which is `clip_cov/ppo_clip_frac`;
`clip_cov/n_detached` = |I_clip| and `clip_cov/n_candidates` = |C| per update.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_token_loss, ppo_metrics
from ..diagnostics import centred_covariance
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class ClipCovConfig(PolicyLossConfig):
    clip_ratio_low: float = 1.0
    """ε_low; the official Clip-Cov scripts set 1 (no lower clip). verl's default is 0.2."""
    clip_ratio_high: float = 1.0
    """ε_high; the official Clip-Cov scripts set 1 (ratio capped at 2). verl's default is 0.2."""
    clip_ratio_c: float | None = None
    """Dual-clip bound; None, as the official Clip-Cov loss has none."""
    clip_cov_ratio: float = 2e-4
    """r: fraction (not percent) of valid tokens to detach, at least one (`clip_cov_ratio`); 0 = off."""
    clip_cov_lb: float = 1.0
    """ω_low: a candidate's Cov must exceed this (`clip_cov_lb`)."""
    clip_cov_ub: float = 5.0
    """ω_high: a candidate's Cov must stay below this (`clip_cov_ub`)."""
    micro_batch_size: int | None = None
    """Sequences per covariance chunk; None = all rows the loss receives (one mini-batch here)."""


def clip_cov_selection(cov: torch.Tensor, mask: torch.Tensor, is_clipped: torch.Tensor, ratio: float,
                       lb: float, ub: float, generator: torch.Generator | None = None):
    """I_clip (B, T) bool and the candidate set C (B, T) bool for one chunk of rows."""
    C = mask.bool() & ~is_clipped & (cov > lb) & (cov < ub)                   # (B, T)
    n_clip = max(1, int(ratio * mask.sum().item())) if ratio > 0 else 0          # max(1, ⌊r·N⌋)
    I_clip = torch.zeros_like(C)
    index = C.nonzero()                                                          # (|C|, 2), row-major
    if len(index) > 0 and n_clip > 0:
        chosen = index[torch.randperm(len(index), generator=generator)[:n_clip]]
        I_clip[chosen[:, 0], chosen[:, 1]] = True
    return I_clip, C


@register_method("clip_cov", config_cls=ClipCovConfig, default_agg_mode="token-mean",
                 summary="Clip-Cov: detach a random few tokens whose logp-advantage covariance is in a band")
def clip_cov_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                  config: ClipCovConfig | None = None, extra: LossExtras | None = None):
    config = config or ClipCovConfig()
    ell, is_clipped, dual = ppo_clip_token_loss(
        logp, old_logp, adv,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    M = mask.bool()
    I_clip, C = torch.zeros_like(M), torch.zeros_like(M)                       # (B, T)
    chunk = config.micro_batch_size or len(M)
    # centre on the whole rollout's means when known, unless asked for per-chunk centring
    rollout_means = extra.rollout_means() if extra is not None and config.micro_batch_size is None else None
    for rows in torch.arange(len(M)).split(chunk):                              # one chunk by default
        cov = centred_covariance(logp[rows].detach(), adv[rows], M[rows], rollout_means)
        I_clip[rows], C[rows] = clip_cov_selection(cov, M[rows], is_clipped[rows] & M[rows],
                                                   config.clip_cov_ratio, config.clip_cov_lb, config.clip_cov_ub)
    ell = ell.masked_fill(I_clip, 0.0)                                           # no loss, no gradient
    loss = aggregate_loss(ell, mask, agg_mode, config.loss_scale_factor)
    metrics = {
        **ppo_metrics(loss, logp, old_logp, I_clip, dual, mask),                   # clip_frac = |I_clip| / N
        "n_detached": float(I_clip.sum().item()),
        "n_candidates": float(C.sum().item()),
        "ppo_clip_frac": masked_mean(is_clipped.float(), mask).item(),
    }
    return loss, metrics
