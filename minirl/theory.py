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
computes the same two numbers for any δz; this module adds the policy-gradient updates (with the
Fisher matrix behind the natural one), the per-token estimate from sampled arms, the η sweep, the
relative error over random bandits, and the sign map with its exact border.

Both updates are tabular: the logits are free parameters and each state's logits move by its
own advantage only. A network shares parameters between states; there the Lemma still holds
for the logit change actually realised, but that change is no longer η π A or η A.
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


def fisher_matrix(p: np.ndarray) -> np.ndarray:
    """Fisher information of softmax(z) in the logits, from its definition with the score
    s_a = ∇_z log π_a = e_a − π:

        F = E_{a∼π}[s_a s_aᵀ] = Σ_a π_a (e_a − π)(e_a − π)ᵀ = diag(π) − ππᵀ      (K, K)

    F·1 = 0 (a constant added to every logit changes nothing), so F has no inverse."""
    return np.diag(p) - np.outer(p, p)


def natural_step(z: np.ndarray, adv: np.ndarray, eta: float) -> np.ndarray:
    """Solve F δz = η ∇J = η π⊙A for δz by least squares (F is singular; the solution returned
    is the one of least norm). For centred advantages (E_π A = 0) every solution is η A + c·1:

        F (η A) = η (π⊙A − π (πᵀA)) = η π⊙A,   and F (c·1) = 0,

    so this is `logit_step(z, adv, eta, "natural")` shifted by a constant, the same policy."""
    p = softmax(z)
    dz, *_ = np.linalg.lstsq(fisher_matrix(p), eta * p * adv, rcond=None)
    return dz


def sampled_gradients(p: np.ndarray, adv: np.ndarray, arms: np.ndarray) -> np.ndarray:
    """One REINFORCE gradient per sampled arm y:  A_y ∇_z log π_y = A_y (e_y − π).   (N, K)

    Their expectation over y ∼ π is the exact gradient:  E_y[A_y (e_y − π)] = π⊙A − π E_π A = π⊙A."""
    return adv[arms, None] * (np.eye(len(p))[arms] - p)


def token_entropy_terms(p: np.ndarray, adv: np.ndarray, arms: np.ndarray, eta: float,
                        update: str = "vanilla") -> np.ndarray:
    """Each sampled arm's (token's) term of the first-order ΔH, with ∇_z H = −π⊙(log π + H):

        vanilla:  −η A_t π_t (log π_t + H)   = ∇H·(η A_t e_t)
        natural:  −η A_t (log π_t + H)       = ∇H·(η A_t e_t / π_t)     (N,)

    Their mean over arms drawn from π estimates −η Cov(log π, π⊙A), resp. −η Cov(log π, A),
    without bias. (The −π part of a vanilla token's gradient adds η A_t ∇H·π, which averages to
    zero because E_π A = 0; F (e_t / π_t) = e_t − π, so the natural term is that token's whole step.)"""
    logp = np.log(p)
    weight = {"vanilla": p[arms], "natural": 1.0}.get(update)
    if weight is None:
        raise ValueError(f"unknown update {update!r}; choose one of: {', '.join(UPDATES)}")
    return -eta * adv[arms] * weight * (logp[arms] + entropy(p))


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


def random_bandit_errors(n_bandits: int, eta: float, update: str = "vanilla", n_arms: int = 6,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Exact and predicted ΔH of one step on `n_bandits` random bandits (logits z ∼ N(0, 1),
    rewards r ∼ U(0, 1)), with the terms that set the relative error:

        first_order = predicted / η          (the covariance: −Cov(log π, δz/η))
        remainder   = exact − predicted      (O(η²): the second-order term and beyond)
        rel_error   = |remainder| / |exact| ≈ η |remainder/η²| / |first_order|

    The relative error is large where the first-order term is near zero, whatever η is."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_bandits):
        z = rng.normal(size=n_arms)
        rows.append(entropy_change(z, advantages(softmax(z), rng.uniform(size=n_arms)), eta, update))
    exact, predicted = np.array(rows).T
    remainder = exact - predicted
    return {"exact": exact, "predicted": predicted, "first_order": predicted / eta, "remainder": remainder,
            "rel_error": np.abs(remainder) / np.abs(exact)}


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
    In this family log π_0 + H = (1 − π_0)(log π_0 − log π_1), so the first-order border is
    π_0 = 1/K; the exact one is `exact_sign_border`.
    """
    grid = np.zeros((len(advs), len(probs)))
    for j, p in enumerate(probs):
        z = one_arm_policy(p, n_arms)
        for i, a in enumerate(advs):
            adv = np.zeros(n_arms)
            adv[0] = a
            grid[i, j] = exact_entropy_change(z, logit_step(z, adv, eta, update))
    return grid



def _one_arm_change(p_arm: float, adv: float, eta: float, n_arms: int, update: str) -> float:
    z = one_arm_policy(p_arm, n_arms)
    return exact_entropy_change(z, logit_step(z, adv * np.eye(n_arms)[0], eta, update))


def exact_sign_border(adv: float, eta: float, n_arms: int = 10, update: str = "natural") -> float:
    """The π_0 where the exact ΔH of `sign_map` changes sign, by bisection on [1e-6, 1 − 1e-6].

    At π_0 = 1/K the policy is uniform, its entropy is the largest possible and any step lowers
    it, for either sign of A: so the exact border lies below 1/K for A > 0 (where ΔH > 0 for rare
    arms) and above it for A < 0, and tends to the first-order border 1/K as η A → 0."""
    if adv == 0:
        raise ValueError("with A = 0 nothing moves and ΔH = 0 for every π_0: there is no border")
    lo, hi = (1e-6, 1.0 / n_arms) if adv > 0 else (1.0 / n_arms, 1.0 - 1e-6)
    low_side = np.sign(_one_arm_change(lo, adv, eta, n_arms, update))
    if low_side == np.sign(_one_arm_change(hi, adv, eta, n_arms, update)):
        raise ValueError(f"ΔH has one sign on [{lo:.0e}, {hi:.3g}] at η = {eta}, A = {adv}: no border to find")
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sign(_one_arm_change(mid, adv, eta, n_arms, update)) == low_side else (lo, mid)
    return 0.5 * (lo + hi)
