"""TEA-RL (Light-IF, Wang et al., arXiv 2508.03178): an entropy bonus whose per-token weight is a
capped softmax, within each response, of the token's log-prob/advantage covariance."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import LossExtras, get_method
from minirl.methods.tea_rl import TEARLConfig, covariance_weights, tea_rl_loss
from minirl.trainer import train

# Two responses of two tokens: A = +1 / −1 (mean A = 0), logp = (−1, −3) / (−2, −2) (mean logp = −2).
#   Cov = (A − 0)(logp + 2) = (1, −1) / (0, 0)
#   softmax per response: (1/(1 + e⁻²), e⁻²/(1 + e⁻²)) = (.880797, .119203) / (.5, .5)
#   α = 2, ub = 1.5:  w = (1.761594 → capped 1.5, .238406) / (1, 1)
LOGP = torch.tensor([[-1.0, -3.0], [-2.0, -2.0]])
ADV = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
MASK = torch.ones(2, 2)
H = torch.tensor([[0.5, 1.0], [0.2, 0.4]])
s = 1 / (1 + math.exp(-2))
W = torch.tensor([[1.5, 2 * (1 - s)], [1.0, 1.0]])


def test_weights_hand_worked():
    torch.testing.assert_close(covariance_weights(LOGP, ADV, MASK, alpha=2.0, ub=1.5), W)


def test_loss_hand_worked():
    H_grad = H.clone().requires_grad_(True)
    log_prob = LOGP.clone().requires_grad_(True)
    loss, metrics = tea_rl_loss(log_prob, LOGP, ADV, MASK, "token-mean",
                                TEARLConfig(cov_alpha=2.0, clip_cov_ub=1.5), LossExtras(entropy=H_grad))
    # r = 1: PG token-mean = (−1 − 1 + 1 + 1)/4 = 0
    # bonus = (1.5·.5 + .238406·1 + 1·.2 + 1·.4) / 4 = 1.588406 / 4 = .397101
    assert metrics["pg_loss"] == pytest.approx(0.0)
    assert metrics["entropy_bonus"] == pytest.approx(0.397101, abs=1e-6)
    assert loss.item() == pytest.approx(-0.397101, abs=1e-6)
    assert metrics["entropy_loss_cov"] == pytest.approx((1.5 + 0.238406 + 2) / 4, abs=1e-6)
    assert metrics["w_max"] == pytest.approx(1.5)
    loss.backward()
    torch.testing.assert_close(H_grad.grad, -W / 4)                 # ∂L/∂H_t = −w_t / N
    torch.testing.assert_close(log_prob.grad, -ADV / 4)              # weights detached: only PG's −A·r/N


def test_released_form_lets_gradient_through_the_weights():
    def logp_grad(weight_grad):
        log_prob = LOGP.clone().requires_grad_(True)
        loss, _ = tea_rl_loss(log_prob, LOGP, ADV, MASK, "token-mean",
                              TEARLConfig(cov_alpha=0.5, tea_weight_grad=weight_grad), LossExtras(entropy=H))
        loss.backward()
        return log_prob.grad
    torch.testing.assert_close(logp_grad(False), -ADV / 4)
    assert not torch.allclose(logp_grad(True), -ADV / 4)


def test_weights_of_a_response_sum_to_alpha_and_skip_padding():
    torch.manual_seed(0)
    logp, adv = -torch.rand(3, 5), torch.tensor([[1.0], [-1.0], [0.5]]).expand(3, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]).float()
    w = covariance_weights(logp, adv * mask, mask, alpha=0.3, ub=5.0)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(dim=1), torch.tensor([0.3, 0.3, 0.0]))
    assert (w[mask == 0] == 0).all()


def test_two_smoke_steps_through_the_trainer(tmp_path):
    assert get_method("tea_rl").make_config({"cov_alpha": "0.2"}).cov_alpha == 0.2
    rows = train(make_config("smoke", method="tea_rl", steps=2, prompts_per_step=8, eval_every=100,
                             eval_prompts=8, method_settings={"cov_alpha": "0.2"}), tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and math.isfinite(last["pg_loss"])
    assert 0.0 < last["tea_rl/entropy_loss_cov"] <= 0.2
