"""Checks for notebook 05's exercises (attention entropy of a head, and its lower bound)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..attention.bound import min_entropy_given_spread
from ..attention.entropy import head_entropy
from . import answered, passed


def _causal_attention(T: int, sharpness: float, generator: torch.Generator) -> torch.Tensor:
    """One head's attention map (T, T) of one sequence: softmax of random logits under the causal mask."""
    logits = sharpness * torch.randn(T, T, generator=generator, dtype=torch.float64)
    logits = logits.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return logits.softmax(dim=-1)


def check_head_attention_entropy(fn) -> bool:
    """Exercise 5.1: fn(attn) = (mean Ent(A_i) in nats over every query, mean Ent(A_i)/log n_i over the
    queries with n_i ≥ 2) for one head's causal attention map attn (T, T)."""
    generator = torch.Generator().manual_seed(5)
    for T, sharpness in [(6, 0.3), (9, 2.0), (12, 6.0), (16, 1.0)]:
        attn = _causal_attention(T, sharpness, generator)
        got = fn(attn.clone())
        if not answered(got, "Exercise 5.1"):
            return False
        mean, mean_normalised = (float(v) for v in got)
        maps = [attn[None, None]]                                           # (B=1, heads=1, T, T)
        expected = head_entropy(maps)[0, 0].item(), head_entropy(maps, normalise=True)[0, 0].item()
        assert math.isclose(mean, expected[0], rel_tol=1e-4, abs_tol=1e-5), (
            f"not yet: mean entropy {mean:.4f}, expected {expected[0]:.4f} nats for T = {T}; Ent(A_i) = "
            "−Σ_j A_ij log A_ij with the natural log, averaged over all T queries (the first one has entropy 0)")
        assert math.isclose(mean_normalised, expected[1], rel_tol=1e-4, abs_tol=1e-5), (
            f"not yet: mean normalised entropy {mean_normalised:.4f}, expected {expected[1]:.4f} for T = {T}; "
            "divide each row by log n_i with n_i = i + 1 keys (not log T), and skip the first query (n_i = 1)")
    return passed("Exercise 5.1", "both means match minirl.attention.entropy.head_entropy")


def check_entropy_lower_bound(fn) -> bool:
    """Exercise 5.2: fn(spread, n) = b(Δ, n), the least entropy of a softmax over n keys whose logits
    span at most Δ."""
    for n in (1, 2, 3, 8, 30):
        for spread in (0.0, 0.3, 1.0, 2.5, 6.0, 12.0):
            got = fn(spread, n)
            if not answered(got, "Exercise 5.2"):
                return False
            expected = min_entropy_given_spread(spread, n).item()
            assert math.isclose(float(got), expected, rel_tol=1e-6, abs_tol=1e-9), (
                f"not yet: b(Δ = {spread}, n = {n}) = {float(got):.5f}, expected {expected:.5f}; take the minimum "
                "over every k = 1 .. n − 1 keys on top (for a small Δ the least entropy splits the keys about "
                "half and half, not one on top), and b = 0 for a single key")
    return passed("Exercise 5.2", "your bound matches minirl.attention.bound.min_entropy_given_spread")


def _normalised_by_log_T(attn):
    ent = -(attn * torch.log(attn.clamp(min=1e-30))).sum(-1)
    return ent.mean().item(), (ent[1:] / math.log(attn.shape[0])).mean().item()


def _first_query_counted(attn):
    ent = -(attn * torch.log(attn.clamp(min=1e-30))).sum(-1)
    n = torch.arange(1, attn.shape[0] + 1, dtype=torch.float64)
    return ent.mean().item(), (ent / torch.log(n.clamp(min=2))).mean().item()


def _in_bits(attn):
    ent = -(attn * torch.log2(attn.clamp(min=1e-30))).sum(-1)
    n = torch.arange(1, attn.shape[0] + 1, dtype=torch.float64)
    return ent.mean().item(), (ent[1:] / torch.log2(n[1:])).mean().item()


def _one_key_on_top(spread, n):
    if n == 1:
        return 0.0
    e = (n - 1) * math.exp(-spread)
    return math.log(1 + e) + spread * e / (1 + e)


def _large_spread_approximation(spread, n):
    return (n - 1) * (1 + spread) * math.exp(-spread)


MISTAKES = {
    "check_head_attention_entropy": [_normalised_by_log_T, _first_query_counted, _in_bits],
    "check_entropy_lower_bound": [_one_key_on_top, _large_spread_approximation, lambda spread, n: np.log(n)],
}
