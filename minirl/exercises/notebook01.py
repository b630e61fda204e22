"""Checks for notebook 01's exercises (the entropy-covariance law on a softmax)."""
from __future__ import annotations

import numpy as np
import torch

from .. import theory
from ..diagnostics import centred_covariance, softmax_entropy_change
from . import answered, passed


def check_first_order_entropy_change(fn) -> bool:
    """Exercise 1.1: fn(z, dz) = -Cov_{a~π}(log π_a, δz_a) for π = softmax(z)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        z, dz = rng.normal(size=6), 0.01 * rng.normal(size=6)
        got = fn(z, dz)
        if not answered(got, "Exercise 1.1"):
            return False
        expected = softmax_entropy_change(z, dz)[1]
        assert np.allclose(got, expected), (
            f"not yet: got {float(got):.3g}, expected {expected:.3g}; compare with the boxed equation "
            "(both centrings are under π, and the sign is minus)")
    return passed("Exercise 1.1", "your prediction matches minirl.diagnostics.softmax_entropy_change")


def check_fisher_matrix(fn) -> bool:
    """Exercise 1.2: fn(p) = E_{a~π}[s_a s_aᵀ] with the score s_a = e_a − π, i.e. diag(π) − ππᵀ."""
    rng = np.random.default_rng(3)
    for k in (2, 5, 8):
        p = theory.softmax(rng.normal(size=k))
        got = fn(p)
        if not answered(got, "Exercise 1.2"):
            return False
        assert np.shape(got) == (k, k), f"not yet: F is K × K = ({k}, {k}), got shape {np.shape(got)}"
        assert np.allclose(got, theory.fisher_matrix(p)), (
            "not yet: F = Σ_a π_a s_a s_aᵀ, each outer product weighted by the arm's probability, with "
            "s_a = e_a − π (the row of Step 1's Jacobian ∂ log π_a / ∂z)")
    return passed("Exercise 1.2", "F = diag(π) − ππᵀ; its rows sum to 0 (F·1 = 0), so F δz = η π⊙A fixes δz "
                  "only up to a constant c·1, which the softmax ignores")


def check_predicted_pg_entropy_changes(fn) -> bool:
    """Exercise 1.3: fn(z, adv, eta) = (ΔH of a vanilla step, ΔH of a natural step), first order."""
    rng = np.random.default_rng(1)
    z, adv = rng.normal(size=6), rng.normal(size=6)
    for eta in (1e-3, 1e-2, 0.1):
        got = fn(z, adv, eta)
        if not answered(got, "Exercise 1.3"):
            return False
        vanilla, natural = got
        assert np.allclose(vanilla, theory.entropy_change(z, adv, eta, "vanilla")[1]), \
            "vanilla: the logits move by δz = η π ⊙ A"
        assert np.allclose(natural, theory.entropy_change(z, adv, eta, "natural")[1]), \
            "natural: the logits move by δz = η A"
    return passed("Exercise 1.3", "both predictions match minirl.theory.entropy_change")


def check_token_covariance(fn) -> bool:
    """Exercise 1.4: fn(logp, adv, mask) = (logp_t - mean logp)(A_t - mean A) on valid tokens, 0 elsewhere."""
    rng = np.random.default_rng(2)
    logp, adv = -rng.exponential(size=(4, 6)), rng.normal(size=(4, 6))
    mask = (rng.uniform(size=(4, 6)) < 0.7).astype(float)
    got = fn(logp, adv, mask)
    if not answered(got, "Exercise 1.4"):
        return False
    expected = centred_covariance(torch.tensor(logp), torch.tensor(adv), torch.tensor(mask)).numpy()
    assert np.shape(got) == expected.shape, f"not yet: expected shape {expected.shape}, got {np.shape(got)}"
    assert np.allclose(got, expected), "not yet: means over valid tokens only, 0 on padding"
    return passed("Exercise 1.4", "your token covariance matches minirl.diagnostics.centred_covariance")


def _softmax(z):
    p = np.exp(z - z.max())
    return p / p.sum()


def _uncentred(z, dz):
    p = _softmax(z)
    return -np.sum(p * np.log(p) * dz)  # forgets to centre: not a covariance


def _score_outer_products(p, weighted):
    scores = np.eye(len(p)) - p  # row a: s_a = e_a − π
    return sum((p[a] if weighted else 1.0) * np.outer(scores[a], scores[a]) for a in range(len(p)))


def _swapped(z, adv, eta):
    p = _softmax(z)
    logp = np.log(p)
    cov = lambda x, y: np.sum(p * (x - p @ x) * (y - p @ y))  # noqa: E731
    return -eta * cov(logp, adv), -eta * cov(logp, p * adv)  # vanilla and natural swapped


def _means_over_padding(logp, adv, mask):
    return (logp - logp.mean()) * (adv - adv.mean()) * mask  # means include padding


MISTAKES = {
    "check_first_order_entropy_change": [_uncentred, lambda z, dz: -_uncentred(z, dz)],
    "check_fisher_matrix": [np.diag, lambda p: np.outer(p, p) - np.diag(p),
                            lambda p: _score_outer_products(p, weighted=False)],  # diag(π) only, sign, unweighted
    "check_predicted_pg_entropy_changes": [_swapped],
    "check_token_covariance": [_means_over_padding],
}
