"""What the theory talks about, measured: entropy, the log-prob/advantage covariance, pass@k,
and the entropy-performance law R = −a·exp(H) + b (Cui et al., "The Entropy Mechanism of
Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617).
"""
from __future__ import annotations

import math

import numpy as np
import torch

# the law's fit lives where reading results finds it without torch; imported from here as before
from .entropy_law import entropy_law_r_squared, fit_entropy_law  # noqa: F401


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary entropy in nats, H = −Σ_v π(v) log π(v), of each row of logits (..., V)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def centred_covariance(logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                       means: tuple[float, float] | None = None) -> torch.Tensor:
    """Per-token covariance term used by Clip-Cov / KL-Cov (Cui et al., arXiv 2505.22617; the
    estimator of the official code, github.com/PRIME-RL/Entropy-Mechanism-of-RL):

        Cov_t = (logp_t − mean logp) · (A_t − mean A)      means over the valid tokens

    `means` = (mean logp, mean A) taken over a larger batch than the rows given (the whole
    rollout, when a loss sees one mini-batch of it); by default the means of these rows.
    Returns a (B, T) tensor, 0 on padding. Its mean over valid tokens is the batch covariance
    that, by the entropy law, predicts −ΔH (up to the step size).
    """
    mask = mask.bool()
    n = mask.sum().clamp(min=1)
    if means is None:
        means = ((logp * mask).sum() / n, (adv * mask).sum() / n)
    mean_logp, mean_adv = means
    cov = (logp - mean_logp) * (adv - mean_adv)
    return torch.where(mask, cov, torch.zeros_like(cov))


def covariance_summary(logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                       top_fraction: float = 0.002) -> tuple[float, float]:
    """(cov_mean, cov_top): the mean Cov_t over valid tokens, and the mean of its top
    `top_fraction` (at least one token)."""
    cov = centred_covariance(logp, adv, mask)[mask.bool()]
    if cov.numel() == 0:
        return 0.0, 0.0
    k = max(1, int(top_fraction * cov.numel()))
    return cov.mean().item(), cov.topk(k).values.mean().item()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021):
    1 − C(n−c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def softmax_entropy_change(z: np.ndarray, dz: np.ndarray) -> tuple[float, float]:
    """Exact and first-order entropy change of softmax(z) under logits z → z + dz.

    The first-order term is −Cov_{a∼π}(log π(a), dz_a): the lemma of Cui et al. (arXiv 2505.22617)
    for a softmax policy in one state (its policy-gradient forms are in `minirl.theory`)."""
    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    def entropy(p):
        return float(-(p * np.log(p)).sum())

    p = softmax(z)
    logp = np.log(p)
    predicted = -float((p * (logp - (p * logp).sum()) * (dz - (p * dz).sum())).sum())
    return entropy(softmax(z + dz)) - entropy(p), predicted


def covariance_share(cov: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """How few tokens carry the batch covariance. Sort the valid tokens' Cov_t from largest to
    smallest; return (fraction of tokens taken, their running sum Σ_{top} Cov_t as a share of
    the total Σ_t Cov_t). The share ends at 1; it rises above 1 on the way when the tokens
    left at the bottom are negative on balance."""
    values = cov[mask.bool()].detach().double().sort(descending=True).values.numpy()
    if values.size == 0 or values.sum() == 0:
        raise ValueError("need at least one valid token with a non-zero total covariance")
    fraction = np.arange(1, values.size + 1) / values.size
    return fraction, np.cumsum(values) / values.sum()


# ------------------------------------------------------------------ the story a run tells
def change_text(first: float, last: float, unit: str = "") -> str:
    """How a measured value moved, as a notebook prints it: 'fell from 0.457 to 0.205 nats (−55 %)'."""
    unit = f" {unit}" if unit else ""
    if last == first:
        return f"stayed at {first:.3f}{unit}"
    relative = f" ({100 * (last - first) / abs(first):+.0f} %)".replace("-", "−") if first else ""
    return f"{'rose' if last > first else 'fell'} from {first:.3f} to {last:.3f}{unit}{relative}"


def collapse_checks(summary: dict, k: int) -> dict[str, bool]:
    """Which parts of the entropy-collapse story a run shows, from `minirl.report.summarize(rows)`
    (first and last values): the entropy fell by at least half, pass@1 rose, pass@k fell."""
    s = summary
    return {"the entropy fell by at least half": s["entropy_last"] <= 0.5 * s["entropy_first"],
            "pass@1 rose": s["pass_at_1_last"] > s["pass_at_1_first"],
            f"pass@{k} fell": s["pass_at_k_last"] < s["pass_at_k_first"]}
