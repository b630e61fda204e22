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


def test_first_order_sign_border_is_one_over_k():
    grid = theory.sign_map([0.09, 0.11], [1.0], n_arms=10, eta=1e-3)
    assert grid[0, 0] > 0 > grid[0, 1]


def _one_arm_entropies(p0, a, eta, k=10):
    """H before and after a natural step η A on arm 0 (π_0 = p0, the rest equal), by hand."""
    p = np.array([p0] + [(1 - p0) / (k - 1)] * (k - 1))
    z = np.log(p)
    return _entropy(z), _entropy(z + eta * a * np.eye(k)[0])


@pytest.mark.parametrize("eta, rewarded, penalised", [(0.1, 0.0955, 0.1045), (0.5, 0.078, 0.123)])
def test_exact_sign_border_moves_with_eta(eta, rewarded, penalised):
    # the values of an independent computation (three digits), K = 10, A = +1 and A = −1
    up, down = theory.exact_sign_border(1.0, eta), theory.exact_sign_border(-1.0, eta)
    assert up == pytest.approx(rewarded, abs=6e-4) and down == pytest.approx(penalised, abs=6e-4)
    for p0, a, away in ((up, 1.0, 0.99), (down, -1.0, 1.01)):
        before, after = _one_arm_entropies(p0, a, eta)
        assert after == pytest.approx(before, abs=1e-10)                 # ΔH = 0 on the border
        before, after = _one_arm_entropies(p0 * away, a, eta)            # 1 % further from 1/K: H rises
        assert after > before


def test_exact_sign_border_tends_to_one_over_k_and_straddles_it():
    assert theory.exact_sign_border(1.0, 1e-4) == pytest.approx(0.1, abs=1e-4)
    assert theory.exact_sign_border(1.0, 0.3) < 0.1 < theory.exact_sign_border(-1.0, 0.3)
    for a in (1.0, -1.0):                                                # π_0 = 1/K: uniform, H = log K, the maximum
        before, after = _one_arm_entropies(0.1, a, 0.1)
        assert before == pytest.approx(np.log(10)) and after < before
        assert theory.sign_map([0.1], [a], 10, 0.1)[0, 0] < 0
    with pytest.raises(ValueError, match="A = 0"):
        theory.exact_sign_border(0.0, 0.1)


def test_fisher_matrix_from_its_definition():
    # hand-worked, K = 2: π = (1/4, 3/4) -> diag(π) − ππᵀ = 3/16 [[1, −1], [−1, 1]]
    assert np.allclose(theory.fisher_matrix(np.array([0.25, 0.75])), 3 / 16 * np.array([[1, -1], [-1, 1]]))
    z, p, _ = _bandit(4)
    h = 1e-6                                                         # score s_a = ∇_z log π_a by finite differences
    logp = lambda x: x - np.log(np.exp(x).sum())                     # noqa: E731
    score = np.array([(logp(z + h * e) - logp(z - h * e)) / (2 * h) for e in np.eye(len(z))]).T   # (a, b)
    expected = sum(p[a] * np.outer(score[a], score[a]) for a in range(len(z)))
    assert np.allclose(theory.fisher_matrix(p), expected, atol=1e-8)
    assert np.allclose(theory.fisher_matrix(p) @ np.ones(len(z)), 0)


def test_natural_step_solves_the_fisher_system_up_to_a_constant():
    z, p, adv = _bandit(5)
    eta = 0.3
    dz = theory.natural_step(z, adv, eta)
    assert np.allclose((np.diag(p) - np.outer(p, p)) @ dz, eta * p * adv)
    assert np.allclose(dz, eta * (adv - adv.mean()))                 # least norm: Σ δz = 0, so c = −η mean(A)
    shifted = z + dz
    assert np.allclose(np.exp(shifted) / np.exp(shifted).sum(), np.exp(z + eta * adv) / np.exp(z + eta * adv).sum())


def test_sampled_gradients_average_to_the_exact_gradient():
    # hand-worked: π = (1/4, 3/4), A = (0.6, −0.2) (E_π A = 0); arm 0 -> 0.6 (3/4, −3/4), arm 1 -> −0.2 (−1/4, 1/4)
    p, adv = np.array([0.25, 0.75]), np.array([0.6, -0.2])
    assert np.allclose(theory.sampled_gradients(p, adv, np.array([0, 1])), [[0.45, -0.45], [0.05, -0.05]])
    z, p, adv = _bandit(6)
    r = adv + 0.5
    J = lambda x: np.exp(x) @ r / np.exp(x).sum()                   # noqa: E731
    numeric = np.array([(J(z + 1e-6 * e) - J(z - 1e-6 * e)) / 2e-6 for e in np.eye(len(z))])
    arms = np.arange(len(z))
    assert np.allclose(p @ theory.sampled_gradients(p, adv, arms), numeric, atol=1e-8)   # Σ_y π_y A_y (e_y − π)


@pytest.mark.parametrize("update", ["vanilla", "natural"])
def test_token_terms_average_to_the_first_order_change(update):
    z, p, adv = _bandit(7)
    eta = 0.01
    logp, H = np.log(p), _entropy(z)
    y = p * adv if update == "vanilla" else adv
    by_hand = -eta * np.sum(p * (logp - p @ logp) * (y - p @ y))
    terms = theory.token_entropy_terms(p, adv, np.arange(len(z)), eta, update)
    assert p @ terms == pytest.approx(by_hand, rel=1e-9)               # the exact expectation over y ~ π
    # one token's term is ∇H·δz of its own step: η A_y e_y (vanilla, own logit) or η A_y e_y / π_y (natural)
    grad_H = np.array([(_entropy(z + 1e-6 * e) - _entropy(z - 1e-6 * e)) / 2e-6 for e in np.eye(len(z))])
    own = eta * adv * (1.0 if update == "vanilla" else 1 / p)
    assert np.allclose(terms, grad_H * own, atol=1e-9)
    arms = np.random.default_rng(0).choice(len(z), size=200_000, p=p)
    sample = theory.token_entropy_terms(p, adv, arms, eta, update)
    assert sample.mean() == pytest.approx(by_hand, abs=4 * sample.std() / np.sqrt(len(arms)))


def test_random_bandit_errors_are_the_bandits_described():
    eta = 0.01
    errors = theory.random_bandit_errors(20, eta, "natural", n_arms=6, seed=3)
    rng = np.random.default_rng(3)
    for i in range(20):
        z = rng.normal(size=6)
        p = np.exp(z) / np.exp(z).sum()
        r = rng.uniform(size=6)
        adv = r - p @ r
        exact = _entropy(z + eta * adv) - _entropy(z)
        logp = np.log(p)
        predicted = -eta * np.sum(p * (logp - p @ logp) * (adv - p @ adv))
        assert (errors["exact"][i], errors["predicted"][i]) == pytest.approx((exact, predicted), rel=1e-9)
        assert errors["rel_error"][i] == pytest.approx(abs(exact - predicted) / abs(exact), rel=1e-6)


@pytest.mark.parametrize("update", ["vanilla", "natural"])
def test_relative_error_is_large_only_where_the_first_order_term_is_small(update):
    eta = 0.01
    e = theory.random_bandit_errors(500, eta, update)
    c1, c2 = np.abs(e["first_order"]), np.abs(e["remainder"]) / eta ** 2
    over = e["rel_error"] > 0.02
    assert 0 < over.mean() < 0.5
    assert np.all(c1[over] / c2[over] < 0.6) and np.all(c1[~over] / c2[~over] > 0.4)   # the border: |c₁/c₂| ≈ η/0.02


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


def test_sign_map_figure_draws_the_exact_border_where_the_entropy_does_not_move():
    import matplotlib.pyplot as plt

    from minirl.theory_figures import sign_map_figure
    probs, advs, eta = np.logspace(-2, -0.1, 7), np.linspace(-1, 1, 5), 0.5
    fig = sign_map_figure(probs, advs, theory.sign_map(probs, advs, 10, eta), 10, eta)
    gold = [line for line in fig.axes[0].lines if line.get_color() == "gold"]
    assert len(gold) == 2                                              # one curve each side of A = 0
    for line in gold:
        for p0, a in zip(line.get_xdata(), line.get_ydata()):
            before, after = _one_arm_entropies(p0, a, eta)
            assert after == pytest.approx(before, abs=1e-9)
    plt.close(fig)


def test_relative_error_figure_marks_the_bandits_past_the_tolerance():
    import matplotlib.pyplot as plt

    from minirl.theory_figures import relative_error_figure
    e = theory.random_bandit_errors(300, 0.01, "natural")
    fig = relative_error_figure({"natural PG": e}, 0.01)
    crosses = next(line for line in fig.axes[1].lines if line.get_marker() == "x")
    assert len(crosses.get_xdata()) == int((e["rel_error"] > 0.02).sum()) > 0
    plt.close(fig)
