"""The weights of a particle filter, their diversity, ePF's resampling temperature, and resampling.

Giannone et al., "Mitigating Premature Exploitation in Particle-based Monte Carlo for Inference-Time
Scaling", arXiv 2510.05825; official code github.com/Red-Hat-AI-Innovation-Team/its_hub,
`its_hub/core/algorithms/particle_gibbs.py` @2d340bb (read, not copied).
At step t each of the N particles x_i has a process-reward score r_i ∈ [0, 1] of its whole partial
trajectory (re-scored every step, not accumulated). Its log-weight and the weight distribution:

    ℓ_i = logit(r_i) = log(r_i / (1 − r_i)),   r_i clipped to [1e-7, 1 − 1e-7]
    p   = softmax(ℓ)
    ESS = 1 / Σ_i p_i²        ρ = ESS / N        (p clipped to [1e-7, 1 − 1e-7], as the code does)
    Ĥ   = H(p) / ln N         (normalised weight entropy; the raw H(p) when N ≤ 2, as the code does)
    u   = t / T_max           (T_max: the step generator's maximum number of steps)

Entropic annealing (EA) flattens the resampling distribution while the weights are degenerate and
the search is young; otherwise τ = 1:

    τ = 1                                        unless ρ < ess_threshold and u < early_phase
    τ_ess     = max(1, (1/ρ)·(1 − u))            (default, `temperature_method="ess"`)
    τ_entropy = max(1, 1/β),  β = Ĥ + (1 − Ĥ)·u
    τ_base    = max(1, value_max − u),  value_max = 2
    resample N ancestors from softmax(ℓ / τ)

Plain PF resamples from softmax(ℓ) (τ ≡ 1) with multinomial draws; ePF uses systematic
resampling (one uniform U, positions (k + U)/N), which keeps every particle whose weight exceeds
1/N at least once. Both resample at every step (no ESS-triggered skipping), as the code does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLIP = 1e-7
TEMPERATURE_METHODS = ("ess", "entropy", "base")
RESAMPLING_METHODS = ("systematic", "multinomial")


def logit(r) -> np.ndarray:
    """ℓ = log(r / (1 − r)) with r clipped to [1e-7, 1 − 1e-7]: a score of 1 is ℓ ≈ 16.1."""
    r = np.clip(np.asarray(r, dtype=np.float64), CLIP, 1 - CLIP)
    return np.log(r / (1 - r))


def softmax(x, temperature: float = 1.0) -> np.ndarray:
    """softmax(x / τ), shifted by the maximum for stability."""
    z = np.asarray(x, dtype=np.float64) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def effective_sample_size(p) -> float:
    """ESS = 1 / Σ p_i²: N for uniform weights, 1 when one particle holds all the weight."""
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP)
    return float(1.0 / np.sum(p ** 2))


def weight_entropy(p) -> float:
    """Ĥ = −Σ p log p / ln N in [0, 1] (the raw entropy in nats when N ≤ 2, as the released code)."""
    p = np.clip(np.asarray(p, dtype=np.float64), CLIP, 1 - CLIP)
    h = float(-np.sum(p * np.log(p)))
    return float(h / np.log(len(p))) if len(p) > 2 else h


def annealing_temperature(p, t: int, max_steps: int, method: str = "ess", ess_threshold: float = 0.5,
                          early_phase: float = 0.5, value_max: float = 2.0) -> float:
    """τ of entropic annealing at step t (1-based: the first resampling happens at t = 1)."""
    if method not in TEMPERATURE_METHODS:
        raise ValueError(f"unknown temperature_method {method!r}; choose one of: {', '.join(TEMPERATURE_METHODS)}")
    n = len(p)
    if n <= 1:
        return 1.0
    u = t / max_steps
    rho = effective_sample_size(p) / n
    if not (rho < ess_threshold and u < early_phase):
        return 1.0
    if method == "ess":
        return max(1.0, (1.0 / rho) * (1 - u)) if rho > 0 else 1.0
    if method == "entropy":
        h = weight_entropy(p)
        beta = h + (1 - h) * u
        return max(1.0, 1.0 / beta) if beta > 0 else 1.0
    return max(1.0, value_max - u)


def systematic_resample(p, u: float) -> np.ndarray:
    """N ancestor indices: position k = (k + u)/N takes the first i with cumsum(p)_i > position."""
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    positions = (np.arange(n) + u) / n
    cumulative = np.cumsum(p)
    cumulative[-1] = max(cumulative[-1], 1.0)       # rounding must never push a position past the end
    return np.searchsorted(cumulative, positions, side="right")


def multinomial_resample(p, rng: np.random.Generator) -> np.ndarray:
    """N independent draws from p."""
    p = np.asarray(p, dtype=np.float64)
    return rng.choice(len(p), size=len(p), p=p / p.sum())


@dataclass
class ResampleStep:
    """What one resampling did: ancestors, ESS ratio, τ and weight entropy, the per-step quantities that
    show particle impoverishment."""

    ancestors: np.ndarray      # (N,) index of the particle each new particle copies
    ess_ratio: float           # ρ = ESS/N of softmax(ℓ), before annealing
    temperature: float         # τ
    weight_entropy: float      # Ĥ of softmax(ℓ), before annealing
    ess_ratio_after: float     # ρ of softmax(ℓ/τ), the distribution actually resampled from


def resample(log_weights, t: int, max_steps: int, rng: np.random.Generator, annealing: bool = False,
             resampling: str = "multinomial", temperature_method: str = "ess", ess_threshold: float = 0.5,
             early_phase: float = 0.5) -> ResampleStep:
    """One resampling of N particles with log-weights ℓ at step t (plain PF: annealing off)."""
    if resampling not in RESAMPLING_METHODS:
        raise ValueError(f"unknown resampling {resampling!r}; choose one of: {', '.join(RESAMPLING_METHODS)}")
    p = softmax(log_weights)
    tau = annealing_temperature(p, t, max_steps, temperature_method, ess_threshold, early_phase) if annealing else 1.0
    q = softmax(log_weights, tau)
    if resampling == "systematic":
        ancestors = systematic_resample(q, rng.uniform())
    else:
        ancestors = multinomial_resample(q, rng)
    return ResampleStep(ancestors, effective_sample_size(p) / len(p), tau, weight_entropy(p),
                        effective_sample_size(q) / len(q))
