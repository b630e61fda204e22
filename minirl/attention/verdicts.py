"""What notebook 05 concludes from its runs, computed from their held-out evaluations (`evaluate_lm`)
rather than written into the text: which layers collapsed or are overloaded, and whether one setting
kept more attention entropy, or reached a lower loss, than another: a difference counts when its
95 % Welch interval over seeds excludes 0 (`minirl.intervals.difference`).

    uniform = uniform_entropy(T)                      # entropy of uniform causal attention, nats
    plateau = unigram_entropy(train_data)             # the loss of a model that knows only the letter frequencies
    layer_states(evaluation, uniform)                 # ["collapsed", "between", "overloaded"], one a layer
    sentence, word = versus("held-out loss", "lr 0.01", [1.7, 2.0], "lr 0.003", [0.9, 0.9])

A layer is **collapsed** when its held-out attention entropy (mean over heads and queries) is below
`COLLAPSED` = 10 % of the entropy of uniform causal attention, mean_q log n_q (Zhai et al.'s collapse:
every query looks at about one key), and **overloaded** when it is above `OVERLOADED` = 80 % of it
(Jha & Reagen's entropic overload: every query spreads over nearly all it can see). Both fractions are
our choices: they name the two ends of the scale, and the notebook prints the entropies beside them.
"""
from __future__ import annotations

import math
import statistics

import torch

from ..compare import seed_verdict

COLLAPSED, OVERLOADED = 0.1, 0.8
RELATION = {"higher": "higher than", "lower": "lower than", "no clear difference": "not clearly different from",
            "undecided (1 seed)": "not compared (1 seed) with"}
"""`versus`'s word as it reads in a sentence: f"its loss was {RELATION[word]} the plain model's"."""


def uniform_entropy(seq_len: int) -> float:
    """mean over the queries q = 1..T of log n_q (n_q = q keys under the causal mask), in nats."""
    return sum(math.log(n) for n in range(1, seq_len + 1)) / seq_len


def unigram_entropy(data: torch.Tensor) -> float:
    """−Σ_c p_c log p_c of the token frequencies of `data` (N, T), nats: the loss of a model that predicts
    every character from the frequencies alone, where a tiny LM waits before it learns to copy."""
    p = torch.bincount(data.flatten()).float()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def layer_states(evaluation: dict, uniform: float, collapsed: float = COLLAPSED,
                 overloaded: float = OVERLOADED) -> list[str]:
    """'collapsed', 'overloaded' or 'between' for every layer of an `evaluate_lm` result."""
    return ["collapsed" if h < collapsed * uniform else "overloaded" if h > overloaded * uniform else "between"
            for h in evaluation["attn_entropy"]]


def count_states(evaluations: list[dict | None], uniform: float, state: str) -> list[int]:
    """Per seed (diverged ones skipped), how many layers are in `state`."""
    return [layer_states(e, uniform).count(state) for e in evaluations if e is not None]


def mean_entropy(evaluation: dict) -> float:
    """Held-out attention entropy, mean over layers (nats)."""
    return statistics.mean(evaluation["attn_entropy"])


def versus(quantity: str, label: str, values: list[float], base_label: str, base: list[float],
           digits: int = 3) -> tuple[str, str]:
    """A printable comparison of `values` (one per seed) with `base`, and its word: 'higher' / 'lower'
    when the 95 % Welch interval of the difference of the means excludes 0 (`compare.seed_verdict`),
    'no clear difference' when it does not, 'undecided (1 seed)' with one seed."""
    d = seed_verdict(values, base)
    per_seed = ", ".join(f"{v:.{digits}f}" for v in values)
    base_seeds = ", ".join(f"{v:.{digits}f}" for v in base)
    interval = f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]" if min(d.n) > 1 else ""
    return (f"{quantity}: {label} [{per_seed}] against {base_label} [{base_seeds}], difference of the means "
            f"{d.estimate:+.{digits}f}{interval}: {d.verdict}"), d.verdict
