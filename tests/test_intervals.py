"""minirl.intervals against numbers worked out by hand."""
import numpy as np
import pytest

from scipy import stats

from minirl.intervals import (Difference, bonferroni, bootstrap_interval, difference, mean_interval,
                              probability_of_improvement, welch_interval)

T_975_1DF = 12.7062  # Student's t, 97.5 % quantile, 1 degree of freedom (printed tables)


def test_probability_of_improvement_counts_pairs_and_half_ties():
    # pairs (x, y) for x in 1, 2, 3 and y in 0, 2, 5: wins 1 + 1 + 2, one tie (2, 2) → (4 + 0.5) / 9
    assert probability_of_improvement([1, 2, 3], [0, 2, 5]) == pytest.approx(0.5)
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0


def test_mean_interval_is_students_t():
    # [0, 1]: mean 0.5, s = √0.5, standard error s/√2 = 0.5, 1 degree of freedom
    mean, low, high = mean_interval([0.0, 1.0])
    assert mean == 0.5
    assert (low, high) == pytest.approx((0.5 - T_975_1DF * 0.5, 0.5 + T_975_1DF * 0.5), abs=1e-3)


def test_welch_interval_against_a_constant_baseline():
    # y has no spread, so Welch's degrees of freedom are x's alone (n − 1 = 1) and the standard error is x's
    d = difference([0.0, 1.0], [0.0, 0.0, 0.0])
    assert d.estimate == 0.5
    assert (d.low, d.high) == pytest.approx((0.5 - T_975_1DF * 0.5, 0.5 + T_975_1DF * 0.5), abs=1e-3)
    assert d.verdict == "no clear difference"


def test_bootstrap_interval_of_two_seeds_is_their_range():
    # resampling [0, 1]: the mean is 0 with probability 1/4, 0.5 with 1/2, 1 with 1/4, so the central
    # 95 % of the bootstrap means runs from 0 to 1 (the constant baseline adds nothing)
    assert bootstrap_interval([0.0, 1.0], [0.0, 0.0, 0.0]) == (0.0, 1.0)


def test_verdicts_follow_the_welch_interval():
    assert difference([1.0, 1.1, 1.2], [0.0, 0.1, 0.2]).verdict == "higher"
    assert difference([0.0, 0.1, 0.2], [1.0, 1.1, 1.2]).verdict == "lower"
    assert difference([0.0, 1.0, 0.5], [0.4, 0.6, 0.5]).verdict == "no clear difference"
    assert difference([1.0], [0.0, 0.1]).verdict == "undecided (1 seed)"
    assert difference([1.0, 1.0], [0.0, 0.0]) == Difference(1.0, 1.0, 1.0, 1.0, (2, 2), 1.0, 1.0)
    # three seeds each, means 0.15 apart: the bootstrap interval excludes 0, the Welch interval does not
    d = difference([0.2, 0.25, 0.3], [0.0, 0.1, 0.2])
    assert d.boot_low > 0 and d.low < 0 and d.verdict == "no clear difference"


def test_the_bootstrap_matches_a_plain_numpy_bootstrap():
    x, y = np.array([0.61, 0.55, 0.70, 0.58, 0.66]), np.array([0.43, 0.47, 0.41, 0.50, 0.44])
    rng = np.random.default_rng(1)
    diffs = [rng.choice(x, 5).mean() - rng.choice(y, 5).mean() for _ in range(40_000)]
    low, high = np.percentile(diffs, [2.5, 97.5])
    d = difference(x, y)
    assert d.boot_low == pytest.approx(low, abs=0.006) and d.boot_high == pytest.approx(high, abs=0.006)
    assert d.low < d.boot_low and d.high > d.boot_high      # Welch is the wider at 5 seeds
    assert d.text() == f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def test_bonferroni_and_bad_input():
    assert bonferroni(10) == pytest.approx(0.995)
    with pytest.raises(ValueError, match="at least 1"):
        bonferroni(0)
    with pytest.raises(ValueError, match="one a seed"):
        difference([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, float("nan")])


def test_welch_interval_is_scipys_welch_test_interval():
    x, y = [0.61, 0.55, 0.70], [0.43, 0.47, 0.41, 0.50, 0.44]
    expected = stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    low, high = welch_interval(np.mean(x), np.std(x, ddof=1), 3, np.mean(y), np.std(y, ddof=1), 5)
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    with pytest.raises(ValueError, match="two seeds on each side"):
        welch_interval(0.5, 0.1, 1, 0.4, 0.1, 3)


def test_welch_verdict_is_the_verdict_of_the_difference_at_any_level():
    from minirl.intervals import welch_verdict

    pairs = [([1.0, 1.1, 1.2], [0.0, 0.1, 0.2]), ([0.2, 0.25, 0.3], [0.0, 0.1, 0.2]),
             ([0.0, 0.1, 0.2], [1.0, 1.1, 1.2]), ([1.0], [0.0, 0.1])]
    for x, y in pairs:
        for level in (0.95, bonferroni(20)):
            assert welch_verdict(x, y, level) == difference(x, y, level).verdict
    # 1.0 ± 0.23 at 95 %, ± 0.55 at the Bonferroni level of 20 comparisons (se 0.082, 4 dof): both exclude 0
    assert welch_verdict([1.0, 1.1, 1.2], [0.0, 0.1, 0.2], bonferroni(20)) == "higher"
