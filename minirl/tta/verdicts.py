"""What notebook 06 concludes from its runs, computed from `evaluate` summaries and `mean_std` tables
instead of written into its text.

    collapsed(top_class_fraction=0.9, final_entropy=0.01)           # True
    word, delta = against(stats, "tent", "source", "label_shift")   # 'worse', −0.33
    describe(summary, source_summary)                               # one printed sentence

A run has **collapsed** when more than `COLLAPSE_TOP_CLASS` (half) of its predictions go to one class
and its final prediction entropy is below `COLLAPSE_ENTROPY` (0.2 nats, under 9 % of ln 10): one
class, predicted with near certainty. Both thresholds are ours; the notebook prints the two numbers
beside every verdict. A difference between two methods counts (`against`) only where its 95 % Welch
interval over seeds excludes 0 (`minirl.intervals.welch_interval`); with one seed nothing is decided.
"""
from __future__ import annotations

from ..intervals import welch_interval

COLLAPSE_TOP_CLASS, COLLAPSE_ENTROPY = 0.5, 0.2


def collapsed(top_class_fraction: float, final_entropy: float) -> bool:
    """More than half of the predictions in one class, and a final entropy below 0.2 nats."""
    return top_class_fraction > COLLAPSE_TOP_CLASS and final_entropy < COLLAPSE_ENTROPY


def against(stats: dict[tuple, tuple[float, float, int]], method: str, base: str, *key) -> tuple[str, float]:
    """(word, difference of the means) of cell (method, *key) against (base, *key) of a `mean_std` table:
    'better' / 'worse' when the 95 % Welch interval of the difference excludes 0, '≈' when it does not,
    'undecided (1 seed)' when either cell has a single seed."""
    mean, sd, n = stats[(method, *key)]
    base_mean, base_sd, base_n = stats[(base, *key)]
    delta = mean - base_mean
    if min(n, base_n) < 2:
        return "undecided (1 seed)", delta
    low, high = welch_interval(mean, sd, n, base_mean, base_sd, base_n)
    return ("better" if low > 0 else "worse" if high < 0 else "≈"), delta


def describe(summary: dict, source: dict | None = None) -> str:
    """One sentence about an `evaluate` summary (and the unadapted model's on the same stream):
    accuracy, final entropy, share of the top class, and whether that is a collapse."""
    name = summary["method"]
    versus = (lambda key, fmt: f" (unadapted {fmt(source[key])})") if source is not None else (lambda key, fmt: "")
    verdict = "collapsed" if collapsed(summary["top_class_fraction"], summary["final_entropy"]) else "not collapsed"
    return (f"{name}: accuracy {100 * summary['accuracy']:.1f} %{versus('accuracy', lambda v: f'{100 * v:.1f} %')}, "
            f"final entropy {summary['final_entropy']:.3f} nats{versus('final_entropy', lambda v: f'{v:.3f}')}, "
            f"{100 * summary['top_class_fraction']:.0f} % of predictions in one class"
            f"{versus('top_class_fraction', lambda v: f'{100 * v:.0f} %')}: {verdict}")
