"""High-entropy minority tokens only, the "80/20 rule" (Wang et al., 2025, "Beyond the 80/20 Rule:
High-Entropy Minority Tokens Drive Effective RLVR", arXiv 2506.01939; official code
github.com/Shenzhi-Wang/Beyond-the-80-20-Rule-RLVR).

Only a minority of positions are "forks" where the model is genuinely undecided; the paper trains on
the top ρ = 20 % of tokens by entropy and leaves the confident 80 % untouched, which matches or beats
full-gradient DAPO. The gradient of the other tokens is dropped, not reweighted.

    H_{i,t} = entropy of π_θ at s_{i,t}, computed in the training forward (current policy, detached)
    τ       = the ⌈ρ·N⌉-th largest H among the N valid tokens of the batch passed to the loss
    I_{i,t} = 1[H_{i,t} ≥ τ] (exactly ⌈ρ·N⌉ tokens, ties broken by `topk`)
    L       = Σ M·I·ℓ / Σ M·I              (token-mean over M ⊙ I: the paper's DAPO objective
                                            restricted to I; equation number not checked here)

with ℓ the PPO-clip token loss and DAPO's settings, as in the official scripts
(`run_only_top20_high_entropy_tokens_dapo_qwen3_14b.sh`): clip 0.2/0.28, dual-clip 10, token-mean,
dynamic sampling (train_defaults). Compare it with `dapo`, whose loss is this one at ρ = 1.

Where τ is computed. Official code (`get_global_entropy_top_mask` in the repo's verl `core_algos.py`,
called in `dp_actor.update_policy`): over the micro-batch handed to the loss, despite "global" in its
name. Here the trainer hands the loss one whole mini-batch (no micro-batches): τ is over the mini-batch,
a quarter of the step's rollout with the default `num_mini_batches=4`. TRL (`top_entropy_quantile`):
over each micro-batch gathered across processes, τ = torch.quantile(H, 1 − ρ) (linear interpolation),
keep H ≥ τ: N − ⌈(1 − ρ)(N − 1)⌉ tokens without ties, which is ⌈ρN⌉ for ρ = 0.2 but can be one fewer
for other ρ (ρ = 0.3, N = 4: 1 token, not 2). TRL also divides the masked loss by ALL valid tokens (so
it is about ρ times smaller), where the official code divides by the kept ones.

Settings (`--set name=value`):
    top_ratio         0.2 — ρ (official `actor.entropy_top_ratio`; TRL `top_entropy_quantile`). At the
                      tiny CPU scale (~200-400 tokens per mini-batch) 0.2 still keeps 40-80 tokens.
    selection         "top_k" — the official ⌈ρN⌉ rule; "quantile" — TRL's torch.quantile rule.
    normalise_by_kept True — divide by Σ M·I (official); False divides by Σ M (TRL).
    clip_ratio_low/high 0.2/0.28, clip_ratio_c 10.0 — the DAPO recipe the official scripts use.

Metrics: `high_entropy_tokens/threshold` (τ, nats), `high_entropy_tokens/frac_kept` (Σ M·I / Σ M),
`high_entropy_tokens/entropy_kept` (mean H of the kept tokens). `clip_frac`, `clip_frac_lower` and
`ppo_kl` are over all valid tokens, as in the official code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_token_loss, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class HighEntropyTokensConfig(PolicyLossConfig):
    clip_ratio_high: float = 0.28
    """ε_high, DAPO's clip-higher, as in the official run scripts."""
    clip_ratio_c: float | None = 10.0
    """Dual-clip bound (DAPO recipe 10.0)."""
    top_ratio: float = 0.2
    """ρ: fraction of valid tokens trained on (official `actor.entropy_top_ratio`, TRL `top_entropy_quantile`)."""
    selection: str = "top_k"
    """"top_k": the ⌈ρN⌉ highest-entropy tokens (official); "quantile": H ≥ torch.quantile(H, 1 − ρ) (TRL)."""
    normalise_by_kept: bool = True
    """True: aggregate over M ⊙ I (official verl); False: zero the dropped tokens' loss but keep M (TRL)."""


def high_entropy_mask(H: torch.Tensor, mask: torch.Tensor, rho: float, selection: str = "top_k"):
    """I (B, T) bool: the top-ρ valid tokens by entropy H (B, T), and the threshold τ."""
    valid = mask.bool()
    H_valid = H.detach()[valid]                                                  # (N,)
    if H_valid.numel() == 0:
        return torch.zeros_like(valid), float("nan")
    if selection == "top_k":
        k = max(1, int(rho * H_valid.numel() + 0.9999))      # ⌈ρ·N⌉ rounded as the official code does, ≥ 1
        top = torch.topk(H_valid, k).indices
        keep = torch.zeros_like(H_valid, dtype=torch.bool)
        keep[top] = True
        tau = H_valid[top].min()
    elif selection == "quantile":
        tau = torch.quantile(H_valid.float(), 1.0 - rho)
        keep = H_valid >= tau
    else:
        raise ValueError(f"unknown selection {selection!r}; choose one of: top_k, quantile")
    I = torch.zeros_like(valid)
    I[valid] = keep
    return I, tau.item()


@register_method("high_entropy_tokens", config_cls=HighEntropyTokensConfig, default_agg_mode="token-mean",
                 needs=("entropy",), train_defaults={"dynamic_sampling": True},
                 summary="policy gradient only on the top-20% highest-entropy tokens (80/20 rule, on DAPO)")
def high_entropy_tokens_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                             config: HighEntropyTokensConfig | None = None, extra: LossExtras | None = None):
    config = config or HighEntropyTokensConfig()
    if not 0.0 <= config.top_ratio <= 1.0:
        raise ValueError(f"top_ratio must be in [0, 1] (got {config.top_ratio})")
    ell, is_clipped, dual = ppo_clip_token_loss(                                  # ℓ (B, T)
        logp, old_logp, adv,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    H = extra.entropy                                                             # (B, T)
    I, tau = high_entropy_mask(H, mask, config.top_ratio, config.selection)
    M = mask.to(ell.dtype)
    if config.normalise_by_kept:
        loss = aggregate_loss(ell, M * I, agg_mode, config.loss_scale_factor)
    else:
        loss = aggregate_loss(ell * I, M, agg_mode, config.loss_scale_factor)
    metrics = {
        **ppo_metrics(loss, logp, old_logp, is_clipped, dual, mask),
        "threshold": tau,
        "frac_kept": (I.sum() / M.sum().clamp(min=1)).item(),
        "entropy_kept": masked_mean(H.detach(), I).item(),
    }
    return loss, metrics
