"""Checks for notebook 02's exercises (the entropy law on a network; which tokens drain the entropy)."""
from __future__ import annotations

import numpy as np
import torch

from .. import theory
from ..law_check import token_drain
from . import answered, passed


def _linear_policy(seed: int, scale: float):
    """Features x (S, d), weights W (d, V) and a step dW, float64: the logits of state s are x_s W."""
    g = torch.Generator().manual_seed(seed)
    S, d, V = 5, 3, 6
    x = torch.randn(S, d, generator=g, dtype=torch.float64)
    W = torch.randn(d, V, generator=g, dtype=torch.float64)
    dW = scale * torch.randn(d, V, generator=g, dtype=torch.float64)
    return W, x, dW


def check_network_prediction(fn) -> bool:
    """Exercise 2.1: fn(W, x, dW) = ⟨∇_W H̄(W), dW⟩ for H̄ = the mean over states of H(softmax(x_s W))."""
    for seed, scale in ((0, 0.3), (1, 0.3), (2, 1e-3)):
        W, x, dW = _linear_policy(seed, scale)
        got = fn(W.clone(), x.clone(), dW.clone())
        if not answered(got, "Exercise 2.1"):
            return False
        got = float(got)
        # independent: the logits of state s move by δz_s = x_s dW (linear), and the lemma per state
        z, dz = (x @ W).numpy(), (x @ dW).numpy()
        expected = np.mean([theory.predicted_entropy_change(z[s], dz[s]) for s in range(len(z))])
        exact = np.mean([theory.exact_entropy_change(z[s], dz[s]) for s in range(len(z))])
        assert not np.isclose(got, exact, rtol=1e-3) or np.isclose(expected, exact, rtol=1e-3), (
            "not yet: that is the exact change H̄(W + dW) − H̄(W); the prediction is first order: the "
            "gradient at W dotted with dW")
        assert np.isclose(got, expected, rtol=1e-6, atol=1e-12), (
            f"not yet: got {got:.4g}, expected {expected:.4g}; take the mean (not the sum) of the states' "
            "entropies, differentiate it with torch.autograd.grad, and return Σ grad · dW (sign: +)")
    return passed("Exercise 2.1", "⟨∇H̄, ΔW⟩ equals the lemma with the realised logit change x dW, state by state")


def check_drain_weights(fn) -> bool:
    """Exercise 2.2: fn(logp, H, adv) = (natural, vanilla) per-token drains A(log π + H) and A·π·(log π + H)."""
    rng = np.random.default_rng(3)
    H = rng.uniform(0.2, 2.0, size=(4, 7))
    logp = -rng.exponential(1.5, size=(4, 7))
    adv = rng.normal(size=(4, 7))
    got = fn(logp.copy(), H.copy(), adv.copy())
    if not answered(got, "Exercise 2.2"):
        return False
    natural, vanilla = (np.asarray(value, dtype=float) for value in got)
    tensors = [torch.tensor(a) for a in (logp, H, adv)] + [torch.ones(4, 7)]
    for name, value in (("natural", natural), ("vanilla", vanilla)):
        expected = token_drain(*tensors, weighting=name).numpy()
        assert value.shape == expected.shape, f"not yet: the {name} drain should have shape {expected.shape}"
        assert np.allclose(value, expected), (
            f"not yet: the {name} drain is wrong; natural: A (log π + H); vanilla: the same times π = exp(log π) "
            "(a token's gradient moves its state's logits by A (e_y − π))")
    return passed("Exercise 2.2", "both weightings match minirl.law_check.token_drain")


def _exact_change(W, x, dW):                    # the realised change, not the first-order prediction
    def mean_entropy(weights):
        logp = torch.log_softmax(x @ weights, dim=-1)
        return -(logp.exp() * logp).sum(-1).mean()
    return float(mean_entropy(W + dW) - mean_entropy(W))


def _summed_over_states(W, x, dW):              # Σ over states instead of the mean
    W = W.clone().requires_grad_(True)
    logp = torch.log_softmax(x @ W, dim=-1)
    (g,) = torch.autograd.grad(-(logp.exp() * logp).sum(), W)
    return float((g * dW).sum())


def _minus_sign(W, x, dW):                      # −⟨∇H̄, ΔW⟩: the sign of a gradient-descent step written twice
    return -_summed_over_states(W, x, dW) / len(x)


def _vanilla_without_pi(logp, H, adv):          # forgets that vanilla PG weighs a token by π_t
    natural = adv * (logp + H)
    return natural, natural


def _batch_mean_not_entropy(logp, H, adv):      # Cui et al.'s Cov_t centring, not the state's −H
    natural = adv * (logp - logp.mean())
    return natural, natural * np.exp(logp)


def _swapped(logp, H, adv):
    natural = adv * (logp + H)
    return natural * np.exp(logp), natural


MISTAKES = {
    "check_network_prediction": [_exact_change, _summed_over_states, _minus_sign],
    "check_drain_weights": [_vanilla_without_pi, _batch_mean_not_entropy, _swapped],
}
