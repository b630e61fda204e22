"""The entropy-performance law R = −a·exp(H) + b (Cui et al., "The Entropy Mechanism of
Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617), fitted to logged
entropies and rewards: numpy only, so that reading results needs no torch.
"""
from __future__ import annotations

import numpy as np


def fit_entropy_law(entropy, reward) -> tuple[float, float, float]:
    """Least-squares fit of R = −a·exp(H) + b. Returns (a, b, R_max = b − a), the
    performance the law predicts once entropy is exhausted (H = 0)."""
    H = np.asarray(entropy, dtype=float)
    R = np.asarray(reward, dtype=float)
    if H.shape != R.shape or H.size < 2:
        raise ValueError("need two equally long series with at least two points")
    design = np.stack([-np.exp(H), np.ones_like(H)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, R, rcond=None)
    return float(a), float(b), float(b - a)


def entropy_law_r_squared(entropy, reward, a: float, b: float) -> float:
    """Coefficient of determination of the fitted law R = −a·exp(H) + b on the series:
    1 − Σ (R − R̂)² / Σ (R − mean R)²  (1 is a perfect fit, 0 no better than the mean)."""
    H = np.asarray(entropy, dtype=float)
    R = np.asarray(reward, dtype=float)
    residual = R - (-a * np.exp(H) + b)
    return float(1.0 - (residual ** 2).sum() / ((R - R.mean()) ** 2).sum())
