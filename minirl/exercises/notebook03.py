"""Checks for notebook 03's exercises (what the loss-level interventions do to single tokens)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core import ppo_clip_token_loss
from ..diagnostics import centred_covariance
from ..methods.clip_cov import clip_cov_selection
from ..methods.kl_cov import kl_cov_selection
from . import answered, passed


def _batch(seed: int, rows: int = 4, cols: int = 9):
    """logp, old_logp (B, T): log-probs whose ratios reach past both clip bounds; adv (B, T): one
    advantage per sequence; mask (B, T): a few padded positions at the end of some rows."""
    g = torch.Generator().manual_seed(seed)
    old_logp = -2 * torch.rand(rows, cols, generator=g, dtype=torch.float64) - 0.05
    logp = old_logp + 0.4 * torch.randn(rows, cols, generator=g, dtype=torch.float64)
    adv = torch.randn(rows, 1, generator=g, dtype=torch.float64).expand(rows, cols).clone()
    lengths = torch.randint(cols // 2, cols + 1, (rows,), generator=g)
    mask = (torch.arange(cols)[None, :] < lengths[:, None]).double()
    return logp, old_logp, adv, mask


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def check_clip_higher_token_loss(fn) -> bool:
    """Exercise 3.1: fn(logp, old_logp, adv, eps_low, eps_high) = the PPO-clip token loss ℓ (B, T)
    with asymmetric bounds and no dual-clip."""
    for seed, (eps_low, eps_high) in enumerate([(0.2, 0.28), (0.1, 0.4), (0.3, 0.15)]):
        logp, old_logp, adv, _ = _batch(seed)
        got = fn(logp, old_logp, adv, eps_low, eps_high)
        if not answered(got, "Exercise 3.1"):
            return False
        expected = ppo_clip_token_loss(logp, old_logp, adv, eps_low, eps_high, clip_ratio_c=None)[0].numpy()
        assert np.shape(got) == expected.shape, f"not yet: expected one loss per token, shape {expected.shape}"
        assert np.allclose(_numpy(got), expected), (
            f"not yet (ε_low = {eps_low}, ε_high = {eps_high}): ℓ = max(−A·r, −A·clip(r, 1 − ε_low, 1 + ε_high)) "
            "with r = exp(logp − old_logp); a loss to minimise, so the pessimistic (larger) of the two")
    return passed("Exercise 3.1", "your token loss matches minirl.core.ppo_clip_token_loss (no dual-clip)")


def check_clip_cov_candidates(fn) -> bool:
    """Exercise 3.2: fn(logp, adv, mask, is_clipped, lb, ub) = Clip-Cov's candidate set C (B, T) bool."""
    for seed in range(6):
        logp, old_logp, adv, mask = _batch(10 + seed, rows=6, cols=10)
        adv = 3 * adv
        is_clipped = ppo_clip_token_loss(logp, old_logp, adv, 0.2, 0.2, clip_ratio_c=None)[1] & mask.bool()
        lb, ub = 0.5, 2.0
        got = fn(logp, adv, mask, is_clipped, lb, ub)
        if not answered(got, "Exercise 3.2"):
            return False
        cov = centred_covariance(logp, adv, mask)
        expected = clip_cov_selection(cov, mask, is_clipped, 0.0, lb, ub)[1].numpy()
        assert np.shape(got) == expected.shape, f"not yet: expected one True/False per token, shape {expected.shape}"
        wrong = int((_numpy(got).astype(bool) != expected).sum())
        assert wrong == 0, (
            f"not yet: {wrong} of {expected.size} tokens wrong. Cov_t = (logp_t − mean logp)(A_t − mean A), "
            "means over the valid tokens only; a candidate is valid, not clipped by PPO already, and "
            "strictly inside the band lb < Cov_t < ub")
    return passed("Exercise 3.2", "your candidates match minirl.methods.clip_cov.clip_cov_selection")


def check_kl_cov_token_loss(fn) -> bool:
    """Exercise 3.3: fn(logp, old_logp, adv, mask, k, beta) = KL-Cov's token loss ℓ (B, T) on the
    valid tokens (padding is not checked)."""
    for seed, (k, beta) in enumerate([(0.1, 1.0), (0.15, 5.0), (0.01, 2.0)]):
        logp, old_logp, adv, mask = _batch(20 + seed, rows=5, cols=8)
        got = fn(logp, old_logp, adv, mask, k, beta)
        if not answered(got, "Exercise 3.3"):
            return False
        I_KL = kl_cov_selection(centred_covariance(logp, adv, mask), mask, k)
        expected = (-adv * torch.exp(logp - old_logp) + beta * (logp - old_logp).abs() * I_KL).numpy()
        assert np.shape(got) == expected.shape, f"not yet: expected one loss per token, shape {expected.shape}"
        valid = mask.bool().numpy()
        n = int(valid.sum())
        assert np.allclose(_numpy(got)[valid], expected[valid]), (
            f"not yet (k = {k}, β = {beta}, N = {n} valid tokens, so max(1, ⌊kN⌋) = {max(1, math.floor(k * n))} "
            "penalised): ℓ = −A·r + β·|logp − old_logp| on the tokens with the LARGEST Cov_t (computed with "
            "the current logp, means over valid tokens), no clipping anywhere")
    return passed("Exercise 3.3", "your token loss matches minirl.methods.kl_cov (kl_cov_selection and its loss)")


# ------------------------------------------------------------------ typical wrong answers
def _ratio(logp, old_logp):
    return torch.exp(logp - old_logp)


def _symmetric(logp, old_logp, adv, eps_low, eps_high):
    r = _ratio(logp, old_logp)
    return torch.maximum(-adv * r, -adv * r.clamp(1 - eps_low, 1 + eps_low))       # ε_high ignored


def _swapped_bounds(logp, old_logp, adv, eps_low, eps_high):
    r = _ratio(logp, old_logp)
    return torch.maximum(-adv * r, -adv * r.clamp(1 - eps_high, 1 + eps_low))


def _optimistic(logp, old_logp, adv, eps_low, eps_high):
    r = _ratio(logp, old_logp)
    return torch.minimum(-adv * r, -adv * r.clamp(1 - eps_low, 1 + eps_high))     # min instead of max


def _clip_only(logp, old_logp, adv, eps_low, eps_high):
    return -adv * _ratio(logp, old_logp).clamp(1 - eps_low, 1 + eps_high)


def _cov(logp, adv, mask, over_padding=False):
    m = torch.ones_like(mask) if over_padding else mask
    n = m.sum()
    return (logp - (logp * m).sum() / n) * (adv - (adv * m).sum() / n)


def _candidates_means_over_padding(logp, adv, mask, is_clipped, lb, ub):
    cov = _cov(logp, adv, mask, over_padding=True)
    return mask.bool() & ~is_clipped & (cov > lb) & (cov < ub)


def _candidates_ignore_ppo_clip(logp, adv, mask, is_clipped, lb, ub):
    cov = _cov(logp, adv, mask)
    return mask.bool() & (cov > lb) & (cov < ub)


def _candidates_no_upper_bound(logp, adv, mask, is_clipped, lb, ub):
    cov = _cov(logp, adv, mask)
    return mask.bool() & ~is_clipped & (cov > lb)


def _kl_cov(logp, old_logp, adv, mask, k, beta, count=None, on=None, score=None):
    cov = _cov(on if on is not None else logp, adv, mask) if score is None else score
    valid = mask.bool()
    n = int(valid.sum())
    n_kl = count(k * n) if count else max(1, math.floor(k * n))
    top = torch.zeros_like(valid)
    top[valid] = torch.zeros(n, dtype=torch.bool).index_fill(0, cov[valid].topk(n_kl).indices, True)
    return -adv * _ratio(logp, old_logp) + beta * (logp - old_logp).abs() * top


def _kl_cov_every_token(logp, old_logp, adv, mask, k, beta):
    return -adv * _ratio(logp, old_logp) + beta * (logp - old_logp).abs()


def _kl_cov_ceil(logp, old_logp, adv, mask, k, beta):
    return _kl_cov(logp, old_logp, adv, mask, k, beta, count=lambda x: max(1, math.ceil(x)))


def _kl_cov_largest_abs(logp, old_logp, adv, mask, k, beta):
    return _kl_cov(logp, old_logp, adv, mask, k, beta, score=_cov(logp, adv, mask).abs())


def _kl_cov_old_logp(logp, old_logp, adv, mask, k, beta):
    return _kl_cov(logp, old_logp, adv, mask, k, beta, on=old_logp)


MISTAKES = {
    "check_clip_higher_token_loss": [_symmetric, _swapped_bounds, _optimistic, _clip_only],
    "check_clip_cov_candidates": [_candidates_means_over_padding, _candidates_ignore_ppo_clip, _candidates_no_upper_bound],
    "check_kl_cov_token_loss": [_kl_cov_every_token, _kl_cov_ceil, _kl_cov_largest_abs, _kl_cov_old_logp],
}
