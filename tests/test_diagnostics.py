"""Entropy, covariance, pass@k and the entropy law, against hand-worked or brute-force numbers."""
import math

import numpy as np
import pytest
import torch

from minirl.diagnostics import (centred_covariance, covariance_summary, fit_entropy_law, pass_at_k,
                                softmax_entropy_change, token_entropy)


def test_entropy_matches_brute_force_sum():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    expected = []
    for row in logits.tolist():
        z = sum(math.exp(v) for v in row)
        expected.append(-sum(math.exp(v) / z * math.log(math.exp(v) / z) for v in row))
    assert torch.allclose(token_entropy(logits), torch.tensor(expected), atol=1e-6)
    assert token_entropy(logits)[1].item() == pytest.approx(math.log(4))  # uniform: log V nats


def test_centred_covariance_hand_worked():
    # valid tokens: logp = [-1, -3], A = [2, 0]  -> means -2, 1 -> products (1)(1), (-1)(-1) = 1, 1
    logp = torch.tensor([[-1.0, -3.0, -9.0]])
    adv = torch.tensor([[2.0, 0.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    cov = centred_covariance(logp, adv, mask)
    assert cov.tolist() == [[1.0, 1.0, 0.0]]
    assert covariance_summary(logp, adv, mask) == (1.0, 1.0)


def test_covariance_top_fraction_takes_the_largest():
    logp = torch.tensor([[0.0, -1.0, -2.0, -3.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    cov = centred_covariance(logp, adv, mask)   # means -1.5, 0 -> [1.5, 0.5, 0.5, 1.5]
    assert cov.tolist() == [[1.5, 0.5, 0.5, 1.5]]
    assert covariance_summary(logp, adv, mask, top_fraction=0.5) == (1.0, 1.5)


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (8, 0, 8), (8, 8, 1), (16, 5, 8)])
def test_pass_at_k_closed_form(n, c, k):
    # closed form: probability that a random k-subset of the n samples contains a correct one
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    if k == 1:
        assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ValueError, match="need 0 <= c <= n"):
        pass_at_k(4, 5, 1)


def test_fit_entropy_law_recovers_parameters():
    H = np.linspace(0.1, 1.5, 20)
    R = -0.3 * np.exp(H) + 0.9
    a, b, r_max = fit_entropy_law(H, R)
    assert (a, b, r_max) == pytest.approx((0.3, 0.9, 0.6), abs=1e-9)


def test_first_order_entropy_change_on_a_bandit():
    """ΔH ≈ −η Cov(log π, π A) for vanilla softmax PG; the error shrinks as η²."""
    rng = np.random.default_rng(0)
    z, A = rng.normal(size=6), rng.normal(size=6)
    p = np.exp(z) / np.exp(z).sum()
    errors = []
    for eta in (1e-1, 1e-2, 1e-3):
        exact, predicted = softmax_entropy_change(z, eta * p * A)
        errors.append(abs(exact - predicted))
        assert np.sign(exact) == np.sign(predicted)
    assert errors[1] / errors[0] == pytest.approx(1e-2, rel=0.3)
    assert errors[2] / errors[1] == pytest.approx(1e-2, rel=0.3)


def test_rewarding_the_likely_arm_lowers_entropy():
    z = np.log(np.array([0.7, 0.2, 0.1]))
    exact_up, _ = softmax_entropy_change(z, 0.1 * np.array([1.0, 0.0, 0.0]))   # likely arm, A > 0
    exact_rare, _ = softmax_entropy_change(z, 0.1 * np.array([0.0, 0.0, 1.0]))  # rare arm, A > 0
    assert exact_up < 0 < exact_rare


def test_centred_covariance_with_outside_means():
    # a mini-batch centred on the whole rollout's means (mean logp −1, mean A 0): (−2+1)(2−0) = −2
    logp, adv, mask = torch.tensor([[-2.0, -1.0]]), torch.tensor([[2.0, 3.0]]), torch.ones(1, 2)
    assert centred_covariance(logp, adv, mask, means=(-1.0, 0.0)).tolist() == [[-2.0, 0.0]]


def test_covariance_figure_survives_a_run_without_covariance():
    """A model that solves nothing (or everything) has all advantages 0, so Cov is 0 at every
    step: the figure says so instead of failing in the fit."""
    import math

    import matplotlib.pyplot as plt

    from minirl.figures import covariance_figure

    rows = [{"step": i, "cov_mean": 0.0, "batch_entropy_change": 0.01 * i} for i in range(1, 6)]
    fig, r = covariance_figure(rows)
    assert math.isnan(r) and "no variation" in fig.axes[2].get_title()
    plt.close(fig)
    rows = [{"step": i, "cov_mean": 0.1 * i, "batch_entropy_change": -0.2 * i} for i in range(1, 6)]
    fig, r = covariance_figure(rows)
    assert r == pytest.approx(-1.0)
    plt.close(fig)
