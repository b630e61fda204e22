"""Checks for notebook 07's exercises (particle weights and ePF's temperature, systematic resampling,
the ROC AUC of a membership score)."""
from __future__ import annotations

import math

import numpy as np

from ..contamination import auc
from ..search.resampling import annealing_temperature, effective_sample_size, logit, softmax, systematic_resample
from . import answered, passed


def check_ess_and_temperature(fn) -> bool:
    """Exercise 7.1: fn(scores, t, max_steps) = (ρ = ESS/N of p = softmax(logit(r)), ePF's τ by the `ess` rule)."""
    rng = np.random.default_rng(7)
    cases = [(np.full(8, 0.4), 1, 3), (np.r_[0.95, np.full(7, 0.1)], 1, 3), (np.r_[0.95, np.full(7, 0.1)], 2, 3),
             (np.r_[0.9, 0.85, np.full(6, 0.2)], 1, 3), (np.r_[0.97, np.full(15, 0.05)], 3, 32)]
    cases += [(rng.uniform(0.02, 0.98, size=n), t, T) for n, t, T in [(4, 1, 3), (8, 1, 3), (16, 5, 32), (8, 2, 3)]]
    for scores, t, max_steps in cases:
        got = fn(scores.copy(), t, max_steps)
        if not answered(got, "Exercise 7.1"):
            return False
        rho, tau = (float(v) for v in got)
        p = softmax(logit(scores))
        expected = effective_sample_size(p) / len(p), annealing_temperature(p, t, max_steps)
        where = f"scores {np.round(scores, 2).tolist()}, t = {t}, T_max = {max_steps}"
        assert math.isclose(rho, expected[0], rel_tol=1e-5), (
            f"not yet: ρ = {rho:.4f}, expected {expected[0]:.4f} for {where}; the weights are p = softmax(logit(r)), "
            "not r normalised, and ESS = 1 / Σ p_i²")
        assert math.isclose(tau, expected[1], rel_tol=1e-5), (
            f"not yet: τ = {tau:.4f}, expected {expected[1]:.4f} for {where}; τ = max(1, (1/ρ)(1 − t/T_max)) only "
            "while ρ < 0.5 and t/T_max < 0.5, else 1")
    return passed("Exercise 7.1", "ρ and τ match minirl.search.resampling (effective_sample_size, annealing_temperature)")


def check_systematic_resample(fn) -> bool:
    """Exercise 7.2: fn(p, u) = the N ancestor indices of systematic resampling with the one uniform u."""
    rng = np.random.default_rng(70)
    cases = [(np.full(4, 0.25), 0.5), (np.array([0.7, 0.1, 0.1, 0.1]), 0.3), (np.array([0.05, 0.05, 0.6, 0.3]), 0.9)]
    cases += [(rng.dirichlet(np.full(n, a)), rng.uniform()) for n, a in [(8, 0.3), (8, 3.0), (16, 0.5), (5, 1.0)]]
    for p, u in cases:
        got = fn(p.copy(), u)
        if not answered(got, "Exercise 7.2"):
            return False
        expected = systematic_resample(p, u)
        got = np.asarray(got)
        assert got.shape == expected.shape and np.array_equal(got.astype(int), expected), (
            f"not yet: p = {np.round(p, 3).tolist()}, u = {u:.3f} gives ancestors {expected.tolist()}, you said "
            f"{got.tolist()}; position k = (k + u)/N for k = 0 .. N−1 takes the first i whose cumulative weight "
            "exceeds it")
    return passed("Exercise 7.2", "your ancestors match minirl.search.resampling.systematic_resample; every particle "
                  "whose weight is above 1/N survived")


def check_roc_auc(fn) -> bool:
    """Exercise 7.3: fn(scores, labels) = P(member's score > held-out's) + ½ P(equal)."""
    rng = np.random.default_rng(700)
    cases = [(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0])), (np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1])),
             (np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))]
    for n in (20, 64):
        labels = rng.permutation(np.r_[np.ones(n // 2), np.zeros(n // 2)]).astype(int)
        cases.append((np.round(rng.normal(size=n) + 0.7 * labels, 1), labels))            # rounded: many ties
    for scores, labels in cases:
        got = fn(scores.copy(), labels.copy())
        if not answered(got, "Exercise 7.3"):
            return False
        expected = auc(scores, labels)
        assert math.isclose(float(got), expected, abs_tol=1e-9), (
            f"not yet: AUC {float(got):.4f}, expected {expected:.4f} for {len(scores)} prompts; count every "
            "(member, held-out) pair, a higher member score as 1 and a tie as ½")
    return passed("Exercise 7.3", "your AUC matches minirl.contamination.auc")


def _scores_as_weights(scores, t, max_steps):
    p = np.asarray(scores) / np.sum(scores)
    rho = 1 / np.sum(p ** 2) / len(p)
    u = t / max_steps
    return rho, max(1.0, (1 / rho) * (1 - u)) if rho < 0.5 and u < 0.5 else 1.0


def _always_annealed(scores, t, max_steps):
    ell = np.log(scores / (1 - scores))
    p = np.exp(ell - ell.max())
    p = p / p.sum()
    rho = 1 / np.sum(p ** 2) / len(p)
    return rho, max(1.0, (1 / rho) * (1 - t / max_steps))


def _positions_without_u(p, u):
    return np.searchsorted(np.cumsum(p), (np.arange(len(p)) + 0.5) / len(p), side="right")


def _positions_not_divided(p, u):
    return np.minimum(np.searchsorted(np.cumsum(p), np.arange(len(p)) * u / len(p), side="right"), len(p) - 1)


def _ties_ignored(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float((pos[:, None] > neg[None, :]).mean())


def _flipped(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float((pos[:, None] < neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


MISTAKES = {
    "check_ess_and_temperature": [_scores_as_weights, _always_annealed],
    "check_systematic_resample": [_positions_without_u, _positions_not_divided],
    "check_roc_auc": [_ties_ignored, _flipped],
}
