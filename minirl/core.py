"""The shared math of policy-gradient RL for LMs: advantages, PPO-clip, loss aggregation, KL.

Notation, shared by every method file: `logp`, `old_logp`, `adv`, `ratio`, `eps_low`, `eps_high`,
`mask`, and `ell` for ℓ, the per-token loss before aggregation; tensors are (B, T) = (sequences,
response tokens) unless noted. Every function takes the new log-probs before the old ones:
`(logp, old_logp, adv, mask, ...)`, as every method's loss does (`minirl.methods.registry`).
No loops over training steps, no files, no plots live here.
"""
from __future__ import annotations

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
             "seq-sum-token-sum-norm")


def group_advantages(rewards: torch.Tensor, group_size: int, scale_by_std: bool = True,
                     eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO outcome advantages  A_i = (R_i − mean_g R) / (std_g R + eps)  within each group.

    `rewards` is (B,) with the G completions of a prompt next to each other. Returns the
    advantages (B,) and a (B // G,) boolean mask of the groups whose rewards are all equal:
    those groups carry no learning signal, and their advantages are exactly 0 (not 0/eps
    noise), with or without std scaling. `scale_by_std=False` is Dr. GRPO's choice.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)                               # (n_groups, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    all_equal = (grouped == grouped[:, :1]).all(dim=1)                  # (n_groups,)
    if scale_by_std:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)   # unbiased std, as in GRPO
    centred = torch.where(all_equal[:, None], torch.zeros_like(centred), centred)
    return centred.reshape(-1), all_equal


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim).clamp(min=1.0)


def aggregate_loss(ell: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean",
                   loss_scale_factor: float | None = None) -> torch.Tensor:
    """Reduce a (B, T) per-token loss ℓ to a scalar: verl 0.9.1's `actor.loss_agg_mode`s, as its
    `agg_loss` (verl/trainer/ppo/core_algos.py) computes them on one batch, plus one older form.

    With M the mask, n the number of rows that hold a token, L = `loss_scale_factor` or T (the
    padded length):

    token-mean               Σ M ℓ / Σ M
    seq-mean-token-mean      (1/n) Σ_i (Σ_t M ℓ / Σ_t M)
    seq-mean-token-sum       (1/n) Σ_i Σ_t M ℓ
    seq-mean-token-sum-norm  (1/n) Σ_i Σ_t M ℓ / L      the Dr. GRPO objective (arXiv 2503.20783)
    seq-sum-token-sum-norm   Σ_i Σ_t M ℓ / L            not a verl 0.9.1 mode: what verl's
                             seq-mean-token-sum-norm computed before verl PR #4510 (Dec. 2025),
                             and so what code built on those releases (SPEAR's) trains with.

    Rows without a token are in no mean; a loss without any token is 0. verl's trainer passes
    global counts instead (`minirl.integrations.verl` rescales to them).
    """
    mask = mask.to(ell.dtype)
    if mode == "token-mean":
        return (ell * mask).sum() / mask.sum().clamp(min=1.0)
    has_tokens = mask.sum(dim=1) > 0                                             # (B,)
    if mode == "seq-mean-token-mean":
        per_seq = (ell * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return per_seq[has_tokens].mean() if has_tokens.any() else per_seq.sum() * 0.0
    if mode == "seq-mean-token-sum":
        per_seq = (ell * mask).sum(dim=1)                                        # Σ_t M ℓ (B,)
        return per_seq[has_tokens].mean() if has_tokens.any() else per_seq.sum() * 0.0
    if mode in ("seq-mean-token-sum-norm", "seq-sum-token-sum-norm"):
        L = loss_scale_factor if loss_scale_factor is not None else ell.shape[1]
        total = (ell * mask).sum() / L
        if mode == "seq-sum-token-sum-norm":
            return total
        return total / max(int(has_tokens.sum()), 1)
    raise ValueError(f"unknown loss_agg_mode {mode!r}; choose one of: {', '.join(AGG_MODES)}")


def aggregation_count(mask: torch.Tensor, mode: str) -> float | None:
    """What `aggregate_loss` averages over in `mode`: valid tokens (token-mean), rows that hold a
    token (the three seq-mean modes); None where it only sums (seq-sum-token-sum-norm). A loss on
    part of a batch, weighted by its count over the batch's, adds up to the batch's loss
    (micro-batches, gradient accumulation)."""
    if mode == "token-mean":
        return mask.sum().item()
    if mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        return (mask.sum(dim=1) > 0).sum().item()
    if mode == "seq-sum-token-sum-norm":
        return None
    raise ValueError(f"unknown loss_agg_mode {mode!r}; choose one of: {', '.join(AGG_MODES)}")


def ppo_clip_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                        eps_low: float = 0.2, eps_high: float = 0.2, clip_ratio_c: float | None = 3.0):
    """Per-token PPO-clip loss (to minimise), with dual-clip for negative advantages.

        ratio = exp(logp − old_logp)
        ℓ     = max(−A·ratio, −A·clip(ratio, 1 − eps_low, 1 + eps_high))
        ℓ     = min(ℓ, −A·c)      where A < 0 (dual-clip, Ye et al. 2020; c = clip_ratio_c)

    Returns ℓ (B, T) and two (B, T) booleans: where the clipped branch is active, and where the
    dual-clip bound is active.
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    is_clipped = clipped > unclipped
    loss, dual = dual_clip(loss, adv, clip_ratio_c)
    return loss, is_clipped, dual


def dual_clip(loss: torch.Tensor, adv: torch.Tensor, clip_ratio_c: float | None):
    """Dual-clip (Ye et al. 2020): where A < 0, cap the per-token loss at −A·c. Returns the
    capped loss and where the cap is active; c = None leaves the loss as it is."""
    if clip_ratio_c is None:
        return loss, torch.zeros_like(loss, dtype=torch.bool)
    if clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (got {clip_ratio_c})")
    bound = -adv * clip_ratio_c
    dual = (adv < 0) & (loss > bound)
    return torch.where(dual, bound, loss), dual


def ppo_metrics(pg_loss: torch.Tensor, logp: torch.Tensor, old_logp: torch.Tensor,
                is_clipped: torch.Tensor, dual: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """The update metrics every PPO-clip loss reports (their meaning: docs/metrics.md)."""
    return {
        "pg_loss": pg_loss.item(),
        "clip_frac": masked_mean(is_clipped.float(), mask).item(),
        "clip_frac_lower": masked_mean(dual.float(), mask).item(),
        "ppo_kl": masked_mean(old_logp - logp, mask).item(),
    }


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                  agg_mode: str, config) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO-clip loss, aggregated, with its metrics: GRPO's whole loss, and the part most methods
    add a term to.

        ℓ = ppo_clip_token_loss(logp, old_logp, adv, ε_low, ε_high, c)        (B, T)
        L = aggregate(ℓ, mask)                                               in `agg_mode`

    `config` holds the settings of `minirl.methods.PolicyLossConfig` (clip_ratio_low, clip_ratio_high,
    clip_ratio_c, loss_scale_factor). Returns L and `ppo_metrics` (whose `pg_loss` is L).
    """
    ell, is_clipped, dual = ppo_clip_token_loss(logp, old_logp, adv, eps_low=config.clip_ratio_low,
                                                eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    loss = aggregate_loss(ell, mask, agg_mode, config.loss_scale_factor)
    return loss, ppo_metrics(loss, logp, old_logp, is_clipped, dual, mask)


KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from samples of π_θ (Schulman's k1, k2, k3).

    with  log_r = ref_logp − logp:   k1 = −log_r,   k2 = ½ log_r²,   k3 = exp(log_r) − 1 − log_r
    """
    log_r = ref_logp - logp
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r**2
    if estimator == "k3":
        return torch.exp(log_r) - 1.0 - log_r
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of: {', '.join(KL_ESTIMATORS)}")
