"""Lp-Reg: protect low-probability tokens of negative samples with a KL pull to a min-p proxy
(Huang et al., 2025, "Low-probability Tokens Sustain Exploration in Reinforcement Learning with
Verifiable Reward", arXiv 2510.03222; official code github.com/CarlanLark/Lp-Reg-dev, the
development version used for the paper: `compute_policy_loss_lp_reg` in its verl `core_algos.py`,
`apply_min_p` in `dp_actor.py`).

Negative samples keep pushing down the rare tokens they contain, and with them valuable
low-probability "sparks" of reasoning die out. Lp-Reg builds a proxy policy by deleting the tokens
a min-p filter calls noise and renormalising; the lowest-probability tokens of negative samples
that survived the filter and sit below their proxy probability get a KL pull towards the proxy.

    keep_v      = 1[π(v|s) ≥ κ·max_u π(u|s)]     ("minp"; "fixed": 1[π(v|s) ≥ κ])
    π_proxy     = softmax(logits with the filtered-out entries set to −1e4)
    Neg         = { t valid : A_t < 0 }
    S           = the n = max(1, ⌊ρ·|Neg|⌋) tokens of Neg with the lowest logp_t   (only if n > 1)
    S*          = { t ∈ S : logp_t < log π_proxy(y_t|s_t) }
    ℓ_t         = max(−A_t·r_t, −A_t·clip(r_t, 1 − ε_low, 1 + ε_high))     t ∉ S*
    ℓ_t         = −A_t·r_t + β·k3(logp_t, log π_proxy(y_t|s_t))              t ∈ S*
    k3(a, b)    = exp(b − a) − (b − a) − 1, clamped to [−10, 10]   (≈ KL(π_θ‖π_proxy) on the token)

Its gradient in logp is 1 − π_proxy/π_θ < 0 on S*: the selected rare tokens are pushed up. A token
the filter removed has log π_proxy ≈ −1e4 and never enters S*: noise is not protected.

The proxy. Official (`minp_old_log_prob=True`): from π_old, once per batch, filtering the raw
logits before dividing by the temperature. Here: from the temperature-scaled logits of π_θ the loss
receives, detached (the same filter at temperature 1, the default; π_θ = π_old on a step's first
mini-batch, one to three updates later on the others). The exact version needs the trainer to
compute log π_proxy(y_t) in the rollout pass and hand it to the loss.

Settings (`--set name=value`; official value from recipe/lp_reg/Qwen3_14b_lp_reg_onpolicy_64gpu.sh):
    minp_p_threshold   κ = 0.02 (`actor.minp_p_threshold`).
    regular_type       "minp" (`actor.regular_type`), or "fixed".
    logp_neg_k_percent ρ = 0.01 (Qwen3-14B; 0.005 for Qwen2.5-32B) — a FRACTION despite the name.
                       With ~100-200 negative tokens per mini-batch, 0.01 gives n = 1 and nothing is
                       regularised (n must exceed 1). ρ = 0.1 (`compare.TINY_SCALE_VARIANTS`)
                       regularises a handful of tokens per update, but the pull 1 − π_proxy/π_θ is
                       small when the filter removes little of the mass (`lp_reg/filtered_frac`);
                       a larger β or κ is the lever to try.
    ppo_kl_coef        β = 1 (`actor.ppo_kl_coef`).
    kl_type            "k3" (`actor.kl_type=low_var_kl`, clamped to [−10, 10]); "k1" or "k2".
    clip_ratio_low/high 1.0 / 9.0: the scripts' [0, 10] ratio clamp, PPO clipping practically off.
    clip_ratio_c       None: the official Lp-Reg loss has no dual-clip (the scripts' 10.0 is unused).
The positive-sample branch (`logp_pos_k_percent`) is 0 in every released script and is left out.

Metrics: `lp_reg/n_selected` (|S|), `lp_reg/n_regularised` (|S*|), `lp_reg/kl_proxy` (mean k over
S*), `lp_reg/filtered_frac` (fraction of valid sampled tokens the min-p filter calls noise).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, kl_penalty, masked_mean, ppo_clip_token_loss, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class LpRegConfig(PolicyLossConfig):
    clip_ratio_low: float = 1.0
    """ε_low of the official scripts (ratio floor 0)."""
    clip_ratio_high: float = 9.0
    """ε_high of the official scripts (ratio cap 10)."""
    clip_ratio_c: float | None = None
    """Dual-clip bound; None, as the official Lp-Reg loss has none."""
    minp_p_threshold: float = 0.02
    """κ: min-p threshold of the proxy (`minp_p_threshold`)."""
    regular_type: str = "minp"
    """"minp": keep π(v) ≥ κ·max π; "fixed": keep π(v) ≥ κ (`regular_type`)."""
    logp_neg_k_percent: float = 0.01
    """ρ: fraction of negative-advantage tokens considered, lowest logp first (`logp_neg_k_percent`)."""
    ppo_kl_coef: float = 1.0
    """β: weight of the KL pull to the proxy (`ppo_kl_coef`)."""
    kl_type: str = "k3"
    """KL estimator to the proxy: "k3" (official low_var_kl, clamped to [−10, 10]), "k1", "k2"."""


def min_p_proxy_log_prob(logits: torch.Tensor, logp: torch.Tensor, kappa: float, regular_type: str = "minp"):
    """log π_proxy(y_t|s_t) (B, T), no gradient, from logits (B, T, V) and the sampled tokens' log π (B, T).

    π_proxy(y) = π(y) / Σ_{v kept} π(v) for a kept token, so log π_proxy(y) = log π(y) − log Z_keep;
    a filtered-out sampled token gets −1e4 (its official value is about −1e4 too)."""
    log_pi = torch.log_softmax(logits.detach().float(), dim=-1)                 # (B, T, V)
    logp = logp.detach().float()
    if regular_type == "minp":
        log_floor = torch.log(torch.tensor(kappa, device=logp.device)) + log_pi.amax(dim=-1)   # log(κ·max π)
    elif regular_type == "fixed":
        log_floor = torch.log(torch.tensor(kappa, device=logp.device)).expand_as(logp)        # log κ
    else:
        raise ValueError(f"unknown regular_type {regular_type!r}; choose one of: minp, fixed")
    keep_v = log_pi >= log_floor[..., None]                                       # (B, T, V)
    log_Z_keep = torch.logsumexp(log_pi.masked_fill(~keep_v, float("-inf")), dim=-1)
    return torch.where(logp >= log_floor, logp - log_Z_keep, torch.full_like(logp, -1e4))


def lowest_logp_negatives(logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, rho: float) -> torch.Tensor:
    """S (B, T) bool: the max(1, ⌊ρ·|Neg|⌋) negative-advantage tokens with the lowest logp, if that is > 1."""
    neg = mask.bool() & (adv < 0)
    n = max(1, int(rho * neg.sum().item()))
    S = torch.zeros_like(neg)
    if n > 1:
        index = neg.flatten().nonzero().squeeze(1)                                # row-major
        lowest = torch.topk(logp.detach().flatten()[index], n, largest=False).indices
        S.view(-1)[index[lowest]] = True
    return S


@register_method("lp_reg", config_cls=LpRegConfig, default_agg_mode="token-mean", needs=("logits",),
                 summary="Lp-Reg: KL pull to a min-p proxy on the rarest tokens of negative samples")
def lp_reg_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                config: LpRegConfig | None = None, extra: LossExtras | None = None):
    config = config or LpRegConfig()
    if extra is None or extra.logits is None:
        raise ValueError("lp_reg needs the logits: pass LossExtras(logits=...) (the trainer does)")
    proxy_logp = min_p_proxy_log_prob(extra.logits, logp, config.minp_p_threshold, config.regular_type)
    ell, is_clipped, dual = ppo_clip_token_loss(
        logp, old_logp, adv,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    S = lowest_logp_negatives(logp, adv, mask, config.logp_neg_k_percent)
    S_star = S & (logp.detach() < proxy_logp)                                   # (B, T)
    kl = kl_penalty(logp, proxy_logp, config.kl_type)
    if config.kl_type == "k3":
        kl = kl.clamp(-10.0, 10.0)
    r = torch.exp(logp - old_logp)
    ell = torch.where(S_star, -adv * r + config.ppo_kl_coef * kl, ell)
    loss = aggregate_loss(ell, mask, agg_mode, config.loss_scale_factor)
    metrics = {
        **ppo_metrics(loss, logp, old_logp, is_clipped, dual, mask),
        "n_selected": float(S.sum().item()),
        "n_regularised": float(S_star.sum().item()),
        "kl_proxy": (kl.detach()[S_star].mean().item() if S_star.any() else 0.0),
        "filtered_frac": masked_mean((proxy_logp < -1e3).float(), mask).item(),
    }
    return loss, metrics

