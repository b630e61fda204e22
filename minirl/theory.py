"""The entropy-covariance lemma on a one-state softmax bandit (Cui et al., "The Entropy
Mechanism of Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617), in numpy only.

A policy over K arms with logits z:  π = softmax(z),  H(π) = −Σ_a π_a log π_a  (nats).
Move the logits by a small δz; to first order the entropy changes by

    H(softmax(z + δz)) − H(softmax(z)) ≈ −Cov_{a∼π}(log π_a, δz_a)                    (Lemma)

Exact policy gradient on J(z) = Σ_a π_a r_a moves logit a by δz_a = η π_a A_a, with the
advantage A_a = r_a − Σ_b π_b r_b; natural policy gradient moves it by δz_a = η A_a. So

    vanilla PG:  ΔH ≈ −η Cov_{a∼π}(log π_a, π_a A_a)
    natural PG:  ΔH ≈ −η Cov_{a∼π}(log π_a, A_a)

The error of the first-order prediction is O(η²). `minirl.diagnostics.softmax_entropy_change`
computes the same two numbers for any δz; this module adds the policy-gradient updates, the
η sweep and the sign map that the theory notebook plots.
"""
from __future__ import annotations

import numpy as np

UPDATES = ("vanilla", "natural")


def softmax(z: np.ndarray) -> np.ndarray:
    """π_a = exp(z_a) / Σ_b exp(z_b)  (shifted by max z for stability)."""
    e = np.exp(z - np.max(z))
    return e / e.sum()


def entropy(p: np.ndarray) -> float:
    """H(π) = −Σ_a π_a log π_a  in nats (arms with π_a = 0 contribute 0)."""
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def covariance(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Cov_{a∼π}(x_a, y_a) = Σ_a π_a (x_a − E_π x)(y_a − E_π y)."""
    return float((p * (x - p @ x) * (y - p @ y)).sum())


def advantages(p: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """A_a = r_a − V  with the value V = Σ_b π_b r_b, so that E_π A = 0."""
    return rewards - p @ rewards


def logit_step(z: np.ndarray, adv: np.ndarray, eta: float, update: str = "vanilla") -> np.ndarray:
    """The logit change δz of one policy-gradient step of size η:

        vanilla PG  δz_a = η π_a A_a      (the exact gradient ∂J/∂z_a = π_a A_a)
        natural PG  δz_a = η A_a
    """
    if update == "vanilla":
        return eta * softmax(z) * adv
    if update == "natural":
        return eta * adv
    raise ValueError(f"unknown update {update!r}; choose one of: {', '.join(UPDATES)}")


def exact_entropy_change(z: np.ndarray, dz: np.ndarray) -> float:
    """ΔH = H(softmax(z + δz)) − H(softmax(z)), computed exactly."""
    return entropy(softmax(z + dz)) - entropy(softmax(z))


def predicted_entropy_change(z: np.ndarray, dz: np.ndarray) -> float:
    """The Lemma's first-order term:  ΔH ≈ −Cov_{a∼π}(log π_a, δz_a)."""
    p = softmax(z)
    return -covariance(p, np.log(p), dz)


def entropy_change(z: np.ndarray, adv: np.ndarray, eta: float, update: str = "vanilla") -> tuple[float, float]:
    """(exact, predicted) ΔH of one step; predicted = −η Cov(log π, π A) (vanilla) or
    −η Cov(log π, A) (natural)."""
    dz = logit_step(z, adv, eta, update)
    return exact_entropy_change(z, dz), predicted_entropy_change(z, dz)


def eta_sweep(z: np.ndarray, adv: np.ndarray, etas, update: str = "vanilla") -> dict[str, np.ndarray]:
    """Exact and predicted ΔH over step sizes η, with |error| (∝ η²) and relative error (∝ η):

        abs_error = |ΔH_exact − ΔH_pred|,   rel_error = abs_error / |ΔH_exact|
    """
    etas = np.asarray(etas, dtype=float)
    exact, predicted = np.array([entropy_change(z, adv, eta, update) for eta in etas]).T
    abs_error = np.abs(exact - predicted)
    return {"eta": etas, "exact": exact, "predicted": predicted,
            "abs_error": abs_error, "rel_error": abs_error / np.abs(exact)}


def one_arm_policy(p_arm: float, n_arms: int) -> np.ndarray:
    """Logits of a policy whose arm 0 has probability `p_arm` and the other K − 1 arms share
    the rest equally."""
    rest = (1.0 - p_arm) / (n_arms - 1)
    return np.log(np.array([p_arm] + [rest] * (n_arms - 1)))


def sign_map(probs, advs, n_arms: int = 10, eta: float = 0.1, update: str = "natural") -> np.ndarray:
    """Exact ΔH when only arm 0 is pushed: π_0 = p for p in `probs`, advantage A on arm 0
    and 0 on the others. Returns an array (len(advs), len(probs)).

    Here Cov(log π, δz) = δz_0 π_0 (log π_0 + H(π)), so the Lemma predicts
    ΔH ≈ −δz_0 π_0 (log π_0 + H): entropy falls when a likely arm (log π_0 > −H) is pushed
    up or an unlikely one (log π_0 < −H) is pushed down, and rises in the other two cases.
    In this family log π_0 + H = (1 − π_0)(log π_0 − log π_1), so the border is π_0 = 1/K.
    """
    grid = np.zeros((len(advs), len(probs)))
    for j, p in enumerate(probs):
        z = one_arm_policy(p, n_arms)
        for i, a in enumerate(advs):
            adv = np.zeros(n_arms)
            adv[0] = a
            grid[i, j] = exact_entropy_change(z, logit_step(z, adv, eta, update))
    return grid

