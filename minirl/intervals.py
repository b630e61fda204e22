"""Interval estimates for comparisons over a few seeds.

A comparison of two methods over a handful of seeds is read as an interval, not as a rule of thumb
such as "the means differ by more than the two standard deviations" (Agarwal et al. 2021, *Deep
Reinforcement Learning at the Edge of the Statistical Precipice*, arXiv 2108.13264). For each
method against a baseline, over seeds:

* the difference of the means with its 95 % Welch interval (Student's t with Welch's degrees of
  freedom: the two methods' seeds are independent and may spread differently; `welch_interval`, the
  interval of scipy.stats.ttest_ind(equal_var=False)); the verdict says "higher" or "lower" only when this
  interval excludes 0;
* the same difference's 95 % percentile-bootstrap interval (each method's seeds resampled with
  replacement, independently; scipy.stats.bootstrap, method "percentile", the interval rliable
  reports). With 3-5 seeds it is too narrow to decide on: a resampled mean never leaves the range of
  the seeds (with 2 seeds the 95 % interval of a mean is exactly their range), so it is printed, not
  used for verdicts;
* the probability of improvement P(X > Y) + ½·P(X = Y), rliable's measure: how often a random seed of
  one method beats a random seed of the other (the Mann-Whitney U statistic over n·m; 0.5: no
  difference).

With many comparisons some intervals exclude 0 by chance (about 5 in 100 at the 95 % level);
`bonferroni` gives the level at which all m intervals hold at once with 95 % probability, and the
comparisons say which verdicts survive it.

Why scipy rather than the rliable package: rliable's stratified bootstrap resamples runs within each
task, and every comparison here is on one task, where it reduces to the percentile bootstrap above;
scipy is already installed with scikit-learn, while rliable would add arch (< 8), pandas, seaborn and
absl-py, and offers no small-sample interval.

    d = difference(entropy_kept["kl_cov"], entropy_kept["grpo"])
    d.verdict, d.text()                    # ('higher', '+0.369 [+0.326, +0.411]')
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 10_000
WORDS = ("higher", "no clear difference", "lower", "undecided (1 seed)")


@dataclass(frozen=True)
class Difference:
    """mean(x) − mean(y) over seeds, its Welch and bootstrap intervals at `level`, and P(x beats y)."""
    estimate: float
    low: float                  # Welch interval at `level`
    high: float
    improvement: float          # P(a seed of x beats a seed of y) + ½·P(tie)
    n: tuple[int, int]
    boot_low: float             # percentile-bootstrap interval at `level` (narrow at few seeds)
    boot_high: float
    level: float = LEVEL

    @property
    def verdict(self) -> str:
        if min(self.n) < 2:
            return WORDS[3]
        return WORDS[0] if self.low > 0 else WORDS[2] if self.high < 0 else WORDS[1]

    def text(self, fmt: str = ".3f") -> str:
        """'+0.120 [+0.080, +0.160]'."""
        return f"{self.estimate:+{fmt}} [{self.low:+{fmt}}, {self.high:+{fmt}}]"


def _array(values) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"need a non-empty list of finite numbers, one a seed; got {list(values)!r}")
    return array


def mean_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds and its Student-t interval at `level`."""
    x = _array(values)
    if x.size < 2 or np.ptp(x) == 0:            # no spread to scale: the interval is the point
        return float(x.mean()), float(x.mean()), float(x.mean())
    low, high = stats.t.interval(level, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float(low), float(high)


def bootstrap_interval(x, y, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """The percentile-bootstrap interval of mean(x) − mean(y), x and y resampled independently."""
    x, y = _array(x), _array(y)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return float(x.mean() - y.mean()), float(x.mean() - y.mean())
    result = stats.bootstrap((x, y), lambda a, b, axis: a.mean(axis) - b.mean(axis), vectorized=True,
                             paired=False, confidence_level=level, n_resamples=RESAMPLES,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + ½·P(X = Y) for a random seed X of x and Y of y (0.5: no difference)."""
    x, y = _array(x), _array(y)
    return float(stats.mannwhitneyu(x, y).statistic / (x.size * y.size))


def welch_interval(mean: float, sd: float, n: int, base_mean: float, base_sd: float, base_n: int,
                   level: float = LEVEL) -> tuple[float, float]:
    """The Welch interval of mean − base_mean from the two samples' means, standard deviations
    (n − 1 in the denominator) and sizes: d ± t·se, se² = sd²/n + base_sd²/base_n, with the
    Welch-Satterthwaite degrees of freedom se⁴ / Σ (sd²/n)² / (n − 1)."""
    if min(n, base_n) < 2:
        raise ValueError(f"a Welch interval needs two seeds on each side, got {n} and {base_n}")
    parts = (sd ** 2 / n, base_sd ** 2 / base_n)
    se2, d = sum(parts), mean - base_mean
    if se2 == 0:
        return d, d
    dof = se2 ** 2 / (parts[0] ** 2 / (n - 1) + parts[1] ** 2 / (base_n - 1))
    half = float(stats.t.ppf((1 + level) / 2, dof)) * se2 ** 0.5
    return d - half, d + half


def difference(x, y, level: float = LEVEL, seed: int = 0) -> Difference:
    """mean(x) − mean(y) with its Welch interval (the verdict's), its bootstrap interval and P(x beats y)."""
    x, y = _array(x), _array(y)
    estimate = float(x.mean() - y.mean())
    improvement = probability_of_improvement(x, y)
    if min(x.size, y.size) < 2:
        return Difference(estimate, estimate, estimate, improvement, (x.size, y.size), estimate, estimate, level)
    low, high = welch_interval(x.mean(), x.std(ddof=1), x.size, y.mean(), y.std(ddof=1), y.size, level)
    boot_low, boot_high = bootstrap_interval(x, y, level, seed)
    return Difference(estimate, float(low), float(high), improvement, (x.size, y.size), boot_low, boot_high, level)


def welch_verdict(x, y, level: float = LEVEL) -> str:
    """`difference(x, y, level).verdict` from the Welch interval alone (no bootstrap, no probability of
    improvement): what a check at another level, such as Bonferroni's, needs."""
    x, y = _array(x), _array(y)
    if min(x.size, y.size) < 2:
        return WORDS[3]
    low, high = welch_interval(x.mean(), x.std(ddof=1), x.size, y.mean(), y.std(ddof=1), y.size, level)
    return WORDS[0] if low > 0 else WORDS[2] if high < 0 else WORDS[1]


def bonferroni(comparisons: int, level: float = LEVEL) -> float:
    """The per-comparison level at which `comparisons` intervals all hold at once with probability `level`."""
    if comparisons < 1:
        raise ValueError(f"comparisons must be at least 1, got {comparisons}")
    return 1 - (1 - level) / comparisons
