"""KL-Cov (Cui et al., arXiv 2505.22617): hand-worked top-covariance selection and |log r| penalty, no PPO clipping,
reduction to the unclipped ratio loss, the per-micro-batch option, and two smoke steps."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.core import aggregate_loss
from minirl.diagnostics import centred_covariance
from minirl.methods.kl_cov import KLCovConfig, kl_cov_loss, kl_cov_selection
from minirl.trainer import train

# Two sequences of two tokens, all valid.
#   logp = [[-1, -3], [-1.5, -2.5]]   mean -2  -> logp - mean = [[1, -1], [0.5, -0.5]]
#   A    = [[ 2,  2], [-1, -1]]       mean 0.5 -> A - mean    = [[1.5, 1.5], [-1.5, -1.5]]
#   Cov  = [[1.5, -1.5], [-0.75, 0.75]]          -> the top token is (0, 0)
#   log r = logp - old = [[0.1, 0.2], [0.3, -0.1]]
LOGP = torch.tensor([[-1.0, -3.0], [-1.5, -2.5]])
LOG_R = torch.tensor([[0.1, 0.2], [0.3, -0.1]])
OLD = LOGP - LOG_R
ADV = torch.tensor([[2.0, 2.0], [-1.0, -1.0]])
MASK = torch.ones(2, 2)


def run(config, logp=LOGP, old=OLD, adv=ADV, mask=MASK, mode="token-mean"):
    logp = logp.clone().requires_grad_(True)
    loss, metrics = kl_cov_loss(logp, old, adv, mask, mode, config)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.item(), grad, metrics


def unclipped_ratio_loss(logp=LOGP, old=OLD, adv=ADV, mask=MASK):
    x = logp.clone().requires_grad_(True)
    loss = aggregate_loss(-adv * torch.exp(x - old), mask, "token-mean")
    return loss.item(), torch.autograd.grad(loss, x)[0]


def test_hand_worked_penalty_on_the_top_covariance_token():
    assert centred_covariance(LOGP, ADV, MASK).tolist() == [[1.5, -1.5], [-0.75, 0.75]]
    # k = 2e-3, N = 4: max(1, floor(0.008)) = 1 token, (0, 0). beta = 1.
    #   (0,0): -2*e^0.1 + |0.1| = -2.210342 + 0.1    (0,1): -2*e^0.2 = -2.442806  (unclipped: PPO would give -2.4)
    #   (1,0): +e^0.3 = 1.349859                      (1,1): +e^-0.1 = 0.904837
    #   token-mean: (-2.110342 - 2.442806 + 1.349859 + 0.904837) / 4 = -0.574613
    loss, grad, m = run(KLCovConfig())
    assert loss == pytest.approx(-0.574613, abs=1e-6)
    # gradient at (0,0): (-2*e^0.1 + 1*sign(0.1)) / 4 = -0.302585; elsewhere -A*r/4
    expected = [(-2 * math.exp(0.1) + 1) / 4, -2 * math.exp(0.2) / 4, math.exp(0.3) / 4, math.exp(-0.1) / 4]
    assert grad.flatten().tolist() == pytest.approx(expected, abs=1e-6)
    assert m["n_selected"] == 1 and m["penalty"] == pytest.approx(0.1 / 4)
    assert m["abs_kl"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.1) / 4)
    assert m["ppo_kl"] == pytest.approx(-(0.1 + 0.2 + 0.3 - 0.1) / 4)


def test_selection_is_top_k_with_at_least_one_token():
    cov = centred_covariance(LOGP, ADV, MASK)
    assert kl_cov_selection(cov, MASK, 2e-4).nonzero().tolist() == [[0, 0]]               # at least 1
    assert kl_cov_selection(cov, MASK, 0.5).nonzero().tolist() == [[0, 0], [1, 1]]        # floor(2) = 2
    assert kl_cov_selection(cov, MASK, 0.0).sum() == 0                                     # 0 = off


@pytest.mark.parametrize("config", [KLCovConfig(kl_cov_ratio=0.0), KLCovConfig(kl_cov_ratio=0.5, ppo_kl_coef=0.0)])
def test_reduces_to_the_unclipped_ratio_loss(config):
    loss, grad, _ = run(config)
    ref_loss, ref_grad = unclipped_ratio_loss()
    assert loss == pytest.approx(ref_loss) and torch.allclose(grad, ref_grad)


def test_on_policy_the_penalty_has_no_gradient():
    # |log r| = 0 at r = 1, and its (sub)gradient there is 0: the first mini-batch of a step is pure PG
    loss, grad, m = run(KLCovConfig(kl_cov_ratio=0.5, ppo_kl_coef=5.0), old=LOGP)
    ref_loss, ref_grad = unclipped_ratio_loss(old=LOGP)
    assert m["n_selected"] == 2 and m["penalty"] == 0.0
    assert loss == pytest.approx(ref_loss) and torch.allclose(grad, ref_grad)


def test_padding_is_never_selected():
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])        # (0, 1) is padding
    cov = centred_covariance(LOGP, ADV * mask, mask)
    assert not kl_cov_selection(cov, mask, 1.0)[0, 1]
    assert kl_cov_selection(cov, mask, 1.0).sum() == 3


def test_micro_batch_option_selects_per_chunk():
    # one sequence per chunk: inside a row A is constant, Cov = 0 for both tokens, topk still takes 1 per chunk
    _, _, m = run(KLCovConfig(kl_cov_ratio=2e-4, micro_batch_size=1))
    assert m["n_selected"] == 2


def test_two_smoke_steps_through_the_trainer(tmp_path):
    rows = train(make_config("smoke", method="kl_cov", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8,
                             method_settings={"kl_cov_ratio": "0.02", "ppo_kl_coef": "5"}),
                 tmp_path / "run", progress=False)
    assert rows[-1]["step"] == 2
    assert rows[-1]["kl_cov/n_selected"] >= 1 and rows[-1]["kl_cov/penalty"] >= 0
