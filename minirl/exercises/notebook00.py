"""Checks for notebook 00's exercise (the unbiased pass@k estimator the course's curves plot)."""
from __future__ import annotations

import math

from ..diagnostics import pass_at_k
from . import answered, passed


def check_pass_at_k(fn) -> bool:
    """Exercise 0.1: fn(n, c, k) = 1 − C(n − c, k) / C(n, k), the chance that k of n samples, c of them
    right, hold at least one right one (Chen et al. 2021, arXiv 2107.03374)."""
    cases = [(16, 0, 8), (16, 1, 1), (16, 1, 8), (16, 4, 8), (16, 9, 8), (16, 16, 8), (8, 3, 8), (5, 2, 3)]
    for n, c, k in cases:
        got = fn(n, c, k)
        if not answered(got, "Exercise 0.1"):
            return False
        expected = pass_at_k(n, c, k)
        assert math.isclose(got, expected, abs_tol=1e-9), (
            f"not yet: for n={n}, c={c}, k={k} expected {expected:.4f}, got {got:.4f}; count the ways to draw k "
            "samples that are all wrong, C(n − c, k), against all ways, C(n, k)")
    return passed("Exercise 0.1", "your pass@k matches minirl.diagnostics.pass_at_k")


def _one_minus_miss_rate_power(n, c, k):
    return 1 - (1 - c / n) ** k              # sampling with replacement: biased for k samples out of n


def _fraction_right(n, c, k):
    return c / n                             # pass@1 for every k


MISTAKES = {"check_pass_at_k": [_one_minus_miss_rate_power, _fraction_right]}
