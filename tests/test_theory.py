"""The entropy-covariance law on a softmax bandit (Cui et al., arXiv 2505.22617), against independent computations:
the first-order prediction matches the exact entropy change, the updates are the gradients
they claim to be, and the four sign regions come out as derived by hand."""
import numpy as np
import pytest
import torch

from minirl import theory
from minirl.diagnostics import covariance_share, entropy_law_r_squared, softmax_entropy_change


def _entropy(z):
    """H(softmax(z)) in nats, written out independently of minirl."""
    p = np.exp(z) / np.exp(z).sum()
    return -np.sum(p * np.log(p))


def _bandit(seed, k=6):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=k)
    p = np.exp(z) / np.exp(z).sum()
    r = rng.uniform(size=k)
    return z, p, r - p @ r                                           # logits, π, advantages A = r − V


@pytest.mark.parametrize("update", ["vanilla", "natural"])
@pytest.mark.parametrize("seed", range(5))
def test_first_order_prediction_within_2_percent_at_small_eta(update, seed):
    z, p, adv = _bandit(seed)
    eta = 1e-2
    dz = eta * p * adv if update == "vanilla" else eta * adv
    exact = _entropy(z + dz) - _entropy(z)
    logp = np.log(p)
    y = p * adv if update == "vanilla" else adv
    by_hand = -eta * np.sum(p * (logp - p @ logp) * (y - p @ y))   # −η Cov_{a∼π}(log π, y)
    got_exact, predicted = theory.entropy_change(z, adv, eta, update)
    assert got_exact == pytest.approx(exact, rel=1e-9)
    assert predicted == pytest.approx(by_hand, rel=1e-9)
    assert abs(predicted - exact) <= 0.02 * abs(exact)


@pytest.mark.parametrize("update", ["vanilla", "natural"])
def test_error_shrinks_as_eta_squared(update):
    z, _, adv = _bandit(0)
    sweep = theory.eta_sweep(z, adv, [1e-1, 1e-2, 1e-3], update)
    ratios = sweep["abs_error"][:-1] / sweep["abs_error"][1:]
    assert ratios == pytest.approx([100, 100], rel=0.2)


def test_vanilla_step_is_the_gradient_of_expected_reward():
    z, p, adv = _bandit(1)
    r = adv + 0.37                                                   # any rewards with these advantages
    J = lambda x: np.exp(x) @ r / np.exp(x).sum()                   # noqa: E731
    h = 1e-6
    numeric = np.array([(J(z + h * e) - J(z - h * e)) / (2 * h) for e in np.eye(len(z))])
    assert np.allclose(theory.logit_step(z, adv, 1.0, "vanilla"), numeric, atol=1e-8)


def test_natural_step_is_the_fisher_preconditioned_gradient():
    z, p, adv = _bandit(2)
    fisher = np.diag(p) - np.outer(p, p)                             # Fisher information of softmax(z)
    assert np.allclose(fisher @ theory.logit_step(z, adv, 1.0, "natural"), p * adv)   # F δz = ∇J


def test_agrees_with_the_diagnostics_version():
    z, _, adv = _bandit(3)
    dz = theory.logit_step(z, adv, 0.05, "vanilla")
    assert np.allclose((theory.exact_entropy_change(z, dz), theory.predicted_entropy_change(z, dz)),
                       softmax_entropy_change(z, dz))


def test_four_sign_regions_match_the_hand_worked_formula():
    # one pushed arm: ΔH ≈ −η A π_0 (log π_0 + H), negative for likely-rewarded and rare-penalised
    n_arms, eta = 10, 1e-3
    probs, advs = [0.02, 0.6], [-1.0, 1.0]
    grid = theory.sign_map(probs, advs, n_arms, eta)
    for j, p0 in enumerate(probs):
        H = _entropy(theory.one_arm_policy(p0, n_arms))
        for i, a in enumerate(advs):
            assert grid[i, j] == pytest.approx(-eta * a * p0 * (np.log(p0) + H), rel=0.02)
    assert np.sign(grid).tolist() == [[-1, 1], [1, -1]]              # rows A = −1, +1; columns rare, likely


def test_sign_border_is_one_over_k():
    grid = theory.sign_map([0.09, 0.11], [1.0], n_arms=10, eta=1e-3)
    assert grid[0, 0] > 0 > grid[0, 1]


def test_unknown_update_is_named():
    with pytest.raises(ValueError, match="unknown update 'adam'; choose one of: vanilla, natural"):
        theory.logit_step(np.zeros(3), np.zeros(3), 0.1, "adam")


def test_covariance_share_hand_worked():
    cov = torch.tensor([[3.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])          # valid: 3, −1, 1 -> total 3
    fraction, share = covariance_share(cov, mask)
    assert fraction.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert share.tolist() == pytest.approx([1.0, 4 / 3, 1.0])        # sorted 3, 1, −1


def test_entropy_law_r_squared():
    H = np.array([0.1, 0.5, 1.0])
    R = -0.2 * np.exp(H) + 0.8
    assert entropy_law_r_squared(H, R, 0.2, 0.8) == pytest.approx(1.0)
    # predicting the mean everywhere scores 0: choose a = 0 and b = mean R
    assert entropy_law_r_squared(H, R, 0.0, R.mean()) == pytest.approx(0.0)
