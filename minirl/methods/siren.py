"""SIREN: hold the entropy of the nucleus at the peak positions near its starting value (Liu et al.,
2025, "Rethinking Entropy Regularization in Large Reasoning Models", arXiv 2509.25133; official
code github.com/Linn3a/siren, `efficient_top_p_sampling`, `mask_by_quantile` and
`update_policy` in its verl `dp_actor.py`, anchor set in `ray_trainer.py`).

A plain entropy bonus explodes: it rewards spreading mass over the whole vocabulary at every
position. SIREN regularises only the entropy inside each position's top-p nucleus, only at the
highest-entropy positions of each response, and pulls it towards a fixed anchor (its value at
the first step) with a squared penalty instead of maximising it.

    top-p entropy  sort π_θ(·|s_t) (full softmax) descending, keep the top K; the nucleus is the
                   tokens whose cumulative probability is still < p; p̃ = their probabilities
                   renormalised;  H^p_t = −Σ_{v ∈ nucleus} p̃_v log p̃_v   (gradient flows through p̃)
    peak mask      τ_i = quantile_{t valid in o_i}(H^p_{i,t}, mask_ratio)   (linear interpolation)
                   m_{i,t} = M_{i,t}·1[H^p_{i,t} > τ_i]      ≈ the top 20 % positions of each response
    Ĥ              = aggregate(H^p, m, entropy_agg_mode)
    L              = L_PPO + c·(Ĥ − H_anchor)²,   H_anchor = Ĥ at step 1, then fixed

Nucleus convention (official code: cutoff = searchsorted-left of p in the cumulative sums, keep the
indices before it): the token whose cumulative sum crosses p is NOT in the nucleus, and a position
whose top token alone has π ≥ p has an empty nucleus and H^p = 0. `nucleus_includes_crossing=True`
gives the usual nucleus-sampling set (up to and including the crossing token).

Anchor. The official trainer computes H_anchor once, at step 1, from the rollout pass (π_old) over
the whole batch. The loss here sees mini-batches and π_θ only, so H_anchor is the detached Ĥ of the
first loss call of the run (step 1, first mini-batch: π_θ = π_old there, but a quarter of the
batch). It lives in the method state and is saved with checkpoints. `entropy_anchor=x` fixes it.

Settings (`--set name=value`; official value from exp_scripts/siren.sh, official key):
    entropy_coeff      c = 0.005 (`actor.entropy_coeff`).
    entropy_topk       K = 10000 (`entropy_topk`); capped at the vocabulary size V (the official
                       code falls back to the full-vocabulary entropy when K > V).
    entropy_topp       p = 0.8 (`entropy_topp`).
    mask_ratio         0.8 (`+actor.mask_ratio`): the quantile; positions above it are regularised.
    entropy_agg_mode   "seq-mean-token-mean" (`entropy_agg_mode`).
    clip_ratio_low/high 0.28 / 0.28 (`clip_ratio=0.28`); the PG term uses seq-mean-token-sum-norm and
                       advantages not divided by the group std (`norm_adv_by_std_in_grpo=False`),
                       both set as this method's defaults. SIREN's verl divides that sum by the
                       number of sequences too, Σ/(B·L), as verl 0.9.1's mode of that name (and
                       minirl's) does: it sets the scale of L_PPO against c·(Ĥ − H_anchor)².
At the tiny CPU scale most positions have a top token with π ≥ 0.8 (empty nucleus, H^p = 0), so the
peak mask holds far fewer than 20 % of the tokens (`siren/peak_frac` shows how many) and the
regulariser has little to act on, whatever c. A larger `entropy_topp` or
`nucleus_includes_crossing=True` widens the regularised set.

Metrics: `siren/entropy_loss` (Ĥ, nats), `siren/entropy_anchor`, `siren/reg` (c·(Ĥ − H_anchor)²),
`siren/peak_frac` (Σ m / Σ M), `siren/topp_entropy` (mean H^p over valid tokens).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_loss
from .registry import LossExtras, MethodState, PolicyLossConfig, register_method


@dataclass
class SirenConfig(PolicyLossConfig):
    clip_ratio_low: float = 0.28
    """ε_low; exp_scripts/siren.sh sets clip_ratio=0.28 for both sides."""
    clip_ratio_high: float = 0.28
    """ε_high (clip_ratio=0.28)."""
    entropy_coeff: float = 0.005
    """c: weight of the squared pull (Ĥ − H_anchor)² (`actor.entropy_coeff`)."""
    entropy_topk: int = 10000
    """K: logits considered for the nucleus (`entropy_topk`), capped at the vocabulary size."""
    entropy_topp: float = 0.8
    """p: nucleus mass (`entropy_topp`)."""
    mask_ratio: float = 0.8
    """Per-response quantile of H^p above which a position is regularised (`mask_ratio`)."""
    entropy_agg_mode: str = "seq-mean-token-mean"
    """How Ĥ aggregates H^p over the peak positions (`entropy_agg_mode`)."""
    entropy_anchor: float | None = None
    """H_anchor in nats; None = Ĥ of the run's first loss call (step 1)."""
    nucleus_includes_crossing: bool = False
    """False: official nucleus (cumulative sum < p); True: also keep the token that crosses p."""


class SirenState(MethodState):
    """The anchor H_anchor, set once and checkpointed with the run."""

    def __init__(self):
        self.anchor: float | None = None


def top_p_entropy(logits: torch.Tensor, p: float, k: int, include_crossing: bool = False) -> torch.Tensor:
    """H^p (B, T): entropy of the renormalised top-p nucleus of softmax(logits) (B, T, V)."""
    probs = torch.softmax(logits.float(), dim=-1)
    top, _ = probs.topk(min(k, probs.shape[-1]), dim=-1)                    # (B, T, K) descending
    cum = top.cumsum(dim=-1)
    nucleus = (cum - top < p) if include_crossing else (cum < p)           # (B, T, K)
    p_tilde = top * nucleus
    p_tilde = p_tilde / (p_tilde.sum(dim=-1, keepdim=True) + 1e-12)
    return -(p_tilde * torch.log(p_tilde + 1e-12)).sum(dim=-1)


def peak_mask(H: torch.Tensor, mask: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """m (B, T) bool: valid positions whose H is above their response's mask_ratio-quantile."""
    valid = mask.bool()
    H_nan = H.detach().float().masked_fill(~valid, float("nan"))
    tau = torch.nanquantile(H_nan, mask_ratio, dim=-1, keepdim=True)         # (B, 1), NaN if empty
    return valid & (H.detach() > tau)


@register_method("siren", config_cls=SirenConfig, default_agg_mode="seq-mean-token-sum-norm", needs=("logits",),
                 state_cls=SirenState, train_defaults={"scale_adv_by_std": False},
                 acts_without_advantages=lambda config: config.entropy_coeff != 0,   # c·(Ĥ − H_anchor)²
                 summary="SIREN: squared pull of the top-p entropy at peak positions towards its step-1 value")
def siren_loss(logp, old_logp, adv, mask, agg_mode="seq-mean-token-sum-norm",
               config: SirenConfig | None = None, extra: LossExtras | None = None):
    config = config or SirenConfig()
    if extra is None or extra.logits is None:
        raise ValueError("siren needs the logits: pass LossExtras(logits=...) (the trainer does)")
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)      # Σ/(B·L) by default
    H_p = top_p_entropy(extra.logits, config.entropy_topp, config.entropy_topk,
                        config.nucleus_includes_crossing)                        # (B, T)
    m = peak_mask(H_p, mask, config.mask_ratio)                                  # (B, T)
    H_hat = aggregate_loss(H_p, m, config.entropy_agg_mode, config.loss_scale_factor)
    state = extra.state if extra.state is not None else SirenState()
    if config.entropy_anchor is not None:
        state.anchor = config.entropy_anchor
    elif state.anchor is None:
        state.anchor = H_hat.item()                                              # step 1, first call
    reg = config.entropy_coeff * (H_hat - state.anchor) ** 2
    loss = pg_loss + reg
    metrics = {
        **pg_metrics,
        "entropy_loss": H_hat.item(),
        "entropy_anchor": state.anchor,
        "reg": reg.item(),
        "peak_frac": (m.sum() / mask.sum().clamp(min=1)).item(),
        "topp_entropy": masked_mean(H_p.detach(), mask).item(),
    }
    return loss, metrics
