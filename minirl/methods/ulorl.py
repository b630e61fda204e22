"""UloRL's DMMPT: dynamic masking of well-mastered positive tokens (Du et al., 2025, "UloRL: An
Ultra-Long Output Reinforcement Learning Approach for Advancing Large Language Models' Reasoning
Abilities", arXiv 2507.19766, Eq. 9–10; github.com/liushulinle/ULORL holds the README and the PDF,
no training code).

Entropy collapses because GRPO keeps pushing up tokens that the model already predicts almost
surely inside correct responses. DMMPT drops those tokens from the loss, but only in responses
whose mean entropy is already below a target σ, so entropy is held near σ instead of drifting.

    MPT_{i,t} = 1[ p_{i,t} ≥ τ  and  R_i = 1 ]                       well-mastered positive token (Eq. 9)
    H̄_i       = (1/|o_i|) Σ_t H_{i,t}                                 mean token entropy of response i
    I_{i,t}   = 1[ H̄_i < σ ] · MPT_{i,t}
    J(θ)      = (1/Σ_i|o_i|) Σ_{i,t} (1 − I_{i,t}) · min(r Â, clip(r, 1−ε, 1+ε) Â)      (Eq. 10)

The masked tokens leave the numerator only: the normaliser is still every response token (Σ|o_i|),
as in Eq. 10, so masking shrinks the update instead of re-weighting the remaining tokens.

Settings (no official code exists; the paper's values):
  tau = 0.99        τ, probability above which a token of a correct response counts as mastered.
  sigma = 0.2       σ, target entropy (nats/token). Masking switches on once a response's mean
                    entropy falls below σ, so σ must sit below the warm start's entropy (its step-0
                    `entropy`); `compare.TINY_SCALE_VARIANTS` uses 0.35.
  mpt_prob = "old"  whose p_{i,t} defines an MPT: "old" (π_old, fixed for the batch) or "current"
                    (π_θ). The paper does not say; "old" is OUR choice.
  entropy_scope = "response"  H̄ per response as Eq. 10 indexes it ("response"), or the mean over
                    the mini-batch's tokens ("batch", the prose's "model's current entropy"). OUR flag.
Choices that are ours: (1) R_i = 1 is read as A_{i,t} > 0. With 0/1 rewards and GRPO a correct
response of a mixed group has A > 0, and in an all-correct group A = 0, where masking changes
nothing because the normaliser does not shrink. (2) H_{i,t} is π_old's entropy from the rollout
(`extra.old_entropy`), fixed for the batch like p; a direct call without it falls back to the
detached entropy of the training forward pass. σ is a fixed target, so there is no cross-step state.

Metrics: `mask_frac` (fraction of response tokens masked), `mpt_frac` (fraction that are MPTs,
gated or not), `low_entropy_frac` (share of responses with H̄_i < σ), `mean_response_entropy`
(mean H̄_i, to compare with σ). `clip_frac` counts clipped tokens among all response tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_token_loss, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class UloRLConfig(PolicyLossConfig):
    tau: float = 0.99
    """τ: a token of a correct response with p ≥ τ is well mastered (paper: 0.99)."""
    sigma: float = 0.2
    """σ: target entropy in nats/token; MPTs are masked only while H̄ < σ (paper: 0.2)."""
    mpt_prob: str = "old"
    """Which policy's p defines an MPT: "old" (π_old) or "current" (π_θ). Unstated in the paper."""
    entropy_scope: str = "response"
    """H̄ per "response" (Eq. 10) or over the mini-"batch" (the paper's prose)."""


def mastered_token_mask(p, adv, H, mask, tau: float, sigma: float, entropy_scope: str):
    """I_{i,t} of Eq. 10 as a (B, T) bool, plus the MPT mask and the (B,) or () mean entropy H̄."""
    M = mask.bool()
    mpt = (p >= tau) & (adv > 0) & M                                 # (B, T), Eq. 9
    if entropy_scope == "response":
        H_bar = masked_mean(H, mask, dim=1)                             # (B,)
        low = (H_bar < sigma)[:, None]                                  # (B, 1)
    elif entropy_scope == "batch":
        H_bar = masked_mean(H, mask)                                    # ()
        low = H_bar < sigma
    else:
        raise ValueError(f"unknown entropy_scope {entropy_scope!r}; choose one of: response, batch")
    return mpt & low, mpt, H_bar


@register_method("ulorl", config_cls=UloRLConfig, default_agg_mode="token-mean", needs=("old_entropy",),
                 summary="UloRL DMMPT: mask confident tokens of correct responses while entropy < σ")
def ulorl_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
               config: UloRLConfig | None = None, extra: LossExtras | None = None):
    config = config or UloRLConfig()
    if config.mpt_prob not in ("old", "current"):
        raise ValueError(f"unknown mpt_prob {config.mpt_prob!r}; choose one of: old, current")
    p = torch.exp(old_logp if config.mpt_prob == "old" else logp.detach())           # (B, T)
    H = extra.old_entropy if extra.old_entropy is not None else extra.entropy.detach()   # (B, T)
    I_msk, mpt, H_bar = mastered_token_mask(p, adv, H, mask, config.tau, config.sigma,
                                            config.entropy_scope)

    ell, is_clipped, dual = ppo_clip_token_loss(
        logp, old_logp, adv,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    ell = ell * (~I_msk)                                             # (1 − I) ℓ, Eq. 10
    loss = aggregate_loss(ell, mask, agg_mode, config.loss_scale_factor)

    n_seqs = (mask.sum(dim=1) > 0).float()
    low_per_seq = (H_bar < config.sigma).float().expand_as(n_seqs)
    metrics = {
        **ppo_metrics(loss, logp, old_logp, is_clipped, dual, mask),
        "mask_frac": masked_mean(I_msk.float(), mask).item(),
        "mpt_frac": masked_mean(mpt.float(), mask).item(),
        "low_entropy_frac": masked_mean(low_per_seq, n_seqs).item(),
        "mean_response_entropy": masked_mean(masked_mean(H, mask, dim=1), n_seqs).item(),
    }
    return loss, metrics
