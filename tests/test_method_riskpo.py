"""RiskPO (Ren et al., arXiv 2510.00911): Mixed-VaR advantages of question bundles, worked by hand on one bundle of two
questions with four responses each, the quantile tracker, the options, and 3 smoke steps with a resume."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.riskpo import (ALPHA_GRID, RiskPOConfig, RiskPOState, credit, mvar_advantage, pair_papers,
                                   riskpo_batch, riskpo_loss)
from minirl.trainer import train

G = 4


class Batch:
    """Stands for a Rollout: riskpo_batch only needs its length."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def advantages(rewards, state=None, scale=True, **settings):
    state = state or RiskPOState()
    ctx = BatchContext(None, G, scale, 0, step=1, state=state)
    rewards = torch.tensor(rewards, dtype=torch.float32)
    _, A, metrics = riskpo_batch(Batch(len(rewards)), rewards, torch.zeros(len(rewards)),
                                 RiskPOConfig(**settings), ctx)
    return A, metrics, state


# Two questions (rows 0-3 and 4-7) in one bundle, B = 2: R_q1 = (1, 1, 1, 0), R_q2 = (1, 0, 0, 0).
# Papers j = 1..4 score S = (2, 1, 1, 0). torch.quantile (linear): q_0.2 = 0.6, q_0.8 = 1.4.
REWARDS = [1., 1, 1, 0, 1, 0, 0, 0]


def test_pure_rvar_is_flat_between_the_quantiles():
    # A^RVaR = [(S − .6)_+ − (S − 1.4)_+] / .6 = (4/3, 2/3, 2/3, 0); every response of a paper gets it
    A, metrics, _ = advantages(REWARDS, scale=False, bundle_size=2, use_q_track_mode="batch",
                               use_mixing_risk_measure=False, credit_assign_mode="uniform")
    torch.testing.assert_close(A, torch.tensor([4 / 3, 2 / 3, 2 / 3, 0] * 2))
    assert metrics["q_alpha"] == pytest.approx(0.6) and metrics["q_beta"] == pytest.approx(1.4)
    assert metrics["paper_score"] == 1.0


def test_default_mvar_with_std_scaling_and_sum_mean_credit():
    # MVaR: A^CVaR = −(.6 − S)_+/.2 = (0, 0, 0, −3); A = (1.5·A^CVaR + A^RVaR)/2.5 = (8/15, 4/15, 4/15, −9/5),
    # ÷ std(S) = √(2/3). Credit: R̄ = (.75, .25); paper 1: deviations (.25, .75), sum 1 → shares .25/.75;
    # papers 2, 3: (.25, −.25) sum 0 → A_j/2 each; paper 4: (−.75, −.25), sum −1 → shares .75/.25.
    A, metrics, state = advantages(REWARDS, bundle_size=2)
    s = math.sqrt(2 / 3)
    A1, A2, A4 = 8 / 15 / s, 4 / 15 / s, -9 / 5 / s
    torch.testing.assert_close(A, torch.tensor([.25 * A1, A2 / 2, A2 / 2, .75 * A4,
                                                .75 * A1, A2 / 2, A2 / 2, .25 * A4]))
    # the first step fills the tracker with the empirical quantiles of all paper scores
    torch.testing.assert_close(torch.tensor(state.q), torch.quantile(torch.tensor([2., 1, 1, 0]),
                                                                     torch.tensor(ALPHA_GRID)))
    assert metrics["tracked_q_alpha"] == pytest.approx(0.6)


def test_tracked_quantiles_carry_to_the_next_step_and_move_by_sgd():
    _, _, state = advantages(REWARDS, bundle_size=2)
    # step 2: every response right, S = (2, 2, 2, 2). The tracker says q_α = .6, q_β = 1.4, so every paper
    # sits above q_β: A^RVaR = .8/.6, A = (4/3)/2.5 = 8/15 (std(S) = 0: no scaling), split evenly (no
    # deviations): 4/15 per response. GRPO, and RiskPO with batch quantiles, give 0 here.
    A, metrics, state = advantages([1.] * 8, state, bundle_size=2)
    torch.testing.assert_close(A, torch.full((8,), 4 / 15))
    assert metrics["q_alpha"] == pytest.approx(0.6)
    # SGD: q ← q + 0.1·(α − mean 1[S < q]) = .6 + .1·.2 and 1.4 + .1·.8
    assert metrics["tracked_q_alpha"] == pytest.approx(0.62) and metrics["tracked_q_beta"] == pytest.approx(1.48)
    A, _, _ = advantages([1.] * 8, bundle_size=2, use_q_track_mode="batch")
    assert A.eq(0).all()


def test_mix_mode_averages_tracker_and_bundle_quantiles():
    _, _, state = advantages(REWARDS, bundle_size=2)
    _, metrics, _ = advantages([1.] * 8, state, bundle_size=2, use_q_track_mode="mix")
    assert metrics["q_alpha"] == pytest.approx((0.6 + 2) / 2) and metrics["q_beta"] == pytest.approx((1.4 + 2) / 2)


def test_a_remainder_bundle_uses_its_own_quantiles_and_is_not_tracked():
    # three questions, B = 2: bundle (q1, q2) is full, q3 alone is a remainder bundle
    state = RiskPOState()
    state.q = [5.0] * len(ALPHA_GRID)                      # a tracker far above these scores
    A, metrics, state = advantages(REWARDS + [1., 1, 0, 0], state, bundle_size=2, lr_q=0.0)
    alone, _, _ = advantages([1., 1, 0, 0], bundle_size=1)    # q3 as its own bundle, batch quantiles
    torch.testing.assert_close(A[8:], alone)
    assert (A[:8] < 0).all()                               # the full bundle is judged by the tracker
    assert state.q == [5.0] * len(ALPHA_GRID)              # lr_q = 0: unchanged, not re-initialised


def test_natural_baseline_and_risk_seeking_options():
    S = torch.tensor([2., 1, 1, 0])
    q_a, q_b = torch.tensor(0.6), torch.tensor(1.4)
    natural = RiskPOConfig(use_mixing_risk_measure=False, natural_baseline_adv=True)
    torch.testing.assert_close(mvar_advantage(S, q_a, q_b, natural, False), torch.tensor([0, -2 / 3, -2 / 3, -4 / 3]))
    # upper tail (S − 1.4)_+/.2 = (3, 0, 0, 0); A = (1.5·upper + A^RVaR)/2.5
    seeking = RiskPOConfig(use_mixing_risk_measure=False, risk_seeking_upper_tail=True)
    torch.testing.assert_close(mvar_advantage(S, q_a, q_b, seeking, False),
                               torch.tensor([(4.5 + 4 / 3) / 2.5, (2 / 3) / 2.5, (2 / 3) / 2.5, 0.0]))


def test_score_and_std_credit():
    A, R = torch.tensor([1.0, -1.0]), torch.tensor([[1., 0], [1., 1]])
    torch.testing.assert_close(credit(A, R, "score"), torch.tensor([[.5, -1.5], [.5, -.5]]))
    # question 1's rewards have std .707, question 2's std 0 → treated as 1
    torch.testing.assert_close(credit(A, R, "std"), torch.tensor([[1 / math.sqrt(.5), -1 / math.sqrt(.5)],
                                                                  [1.0, -1.0]]), atol=1e-5, rtol=1e-5)


def test_papers_take_one_response_of_each_question_without_replacement():
    torch.testing.assert_close(pair_papers(2, 3, "index"), torch.tensor([[0, 1, 2], [3, 4, 5]]))
    torch.manual_seed(0)
    rows = pair_papers(5, 4, "permute")
    for q in range(5):
        assert sorted(rows[q].tolist()) == list(range(4 * q, 4 * q + 4))
    torch.manual_seed(0)
    assert torch.equal(rows, pair_papers(5, 4, "permute"))      # drawn from the trainer's seeded RNG


def test_sequence_level_ratio():
    # one response, log r = (0, .2): sequence ratio e^{.1} = 1.105 (inside the clip), A = 1: ℓ = −1.105
    old, logp = torch.zeros(1, 2), torch.tensor([[0.0, 0.2]])
    adv, mask = torch.ones(1, 2), torch.ones(1, 2)
    loss, _ = riskpo_loss(logp, old, adv, mask, "token-mean", RiskPOConfig(ratio_level="sequence"))
    assert loss.item() == pytest.approx(-math.exp(0.1))
    loss, _ = riskpo_loss(logp, old, adv, mask, "token-mean", RiskPOConfig())   # per token: −(1 + 1.2)/2
    assert loss.item() == pytest.approx(-1.1)


@pytest.mark.parametrize("settings, message", [
    ({"credit_assign_mode": "mean"}, "credit_assign_mode 'mean'.*sum-mean, uniform, score, std"),
    ({"use_q_track_mode": "online"}, "use_q_track_mode 'online'.*track, batch, mix"),
    ({"bundle_pairing": "random"}, "bundle_pairing 'random'.*index, permute"),
    ({"ratio_level": "seq"}, "ratio_level 'seq'.*token, sequence"),
    ({"quantile_down": 0.8, "quantile_up": 0.2}, "quantile_down < quantile_up"),
    ({"bundle_size": 0}, "bundle_size >= 1"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        advantages(REWARDS, **settings)


def test_runs_by_name_logs_its_metrics_and_resumes_its_tracker(tmp_path):
    assert get_method("riskpo").make_config({"bundle_size": "4"}).bundle_size == 4
    config = make_config("smoke", method="riskpo", steps=3, prompts_per_step=8, eval_every=100, eval_prompts=8,
                         checkpoint_every=2, method_settings={"bundle_size": "4"})
    rows = train(config, tmp_path / "full", progress=False)
    for key in ("q_alpha", "q_beta", "tracked_q_alpha", "tracked_q_beta", "paper_score", "frac_zero_adv", "adv_mean"):
        assert all(row[f"riskpo/{key}"] is not None for row in rows[1:]), key
    assert 0 <= rows[1]["riskpo/paper_score"] <= 4
    # kill after the step-2 checkpoint and resume: the tracker comes back, so step 3 is the same
    train(config.__class__(**{**config.to_dict(), "steps": 2}), tmp_path / "cut", progress=False)
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    for key in ("riskpo/q_alpha", "riskpo/tracked_q_alpha", "entropy", "pg_loss"):
        assert resumed[-1][key] == pytest.approx(rows[-1][key]), key
