"""AEPO agentic loss (Dong et al., arXiv 2510.14545): the upper clip keeps a rescaled gradient
(stop-gradient trick), the lower clip stays hard, advantages are scaled by 1 + 0.2·z of the detached
token entropy."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.core import AGG_MODES
from minirl.methods import LossExtras, get_method
from minirl.methods.aepo_agentic_loss import AEPOAgenticLossConfig, aepo_agentic_loss
from minirl.methods.grpo import grpo_loss
from minirl.trainer import train

CLIP_ONLY = AEPOAgenticLossConfig(enable_entropy_balanced_advantage=False)


def one_token(adv, ratio, config=CLIP_ONLY):
    """Loss and ∂L/∂logp for a single token with old_logp = 0 and logp = log(ratio)."""
    log_prob = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, metrics = aepo_agentic_loss(log_prob, torch.zeros(1, 1), torch.tensor([[adv]]), torch.ones(1, 1),
                                      "token-mean", config, LossExtras(entropy=torch.zeros(1, 1)))
    loss.backward()
    return loss.item(), log_prob.grad.item(), metrics


def test_high_clip_keeps_a_rescaled_gradient():
    # A = 1, r = 1.5 > 1.2: value is PPO's −A·1.2; gradient −A·(1.2/r)·r = −1.2 instead of PPO's 0
    loss, grad, metrics = one_token(1.0, 1.5)
    assert loss == pytest.approx(-1.2) and grad == pytest.approx(-1.2)
    assert metrics["clip_frac"] == 1.0 and metrics["high_clip_grad_frac"] == 1.0
    loss, grad, _ = one_token(1.0, 1.5, AEPOAgenticLossConfig(enable_entropy_balanced_clipping=False,
                                                               enable_entropy_balanced_advantage=False))
    assert loss == pytest.approx(-1.2) and grad == 0.0


def test_low_clip_stays_hard_and_negative_advantages_follow_ppo():
    # A = −1, r = .5 < .8: ℓ = max(.5, .8) = .8, the clipped branch, no gradient
    loss, grad, _ = one_token(-1.0, 0.5)
    assert loss == pytest.approx(0.8) and grad == 0.0
    # A = −1, r = 1.5: ℓ = max(1.5, 1.2) = 1.5 unclipped, gradient −A·r = 1.5
    loss, grad, metrics = one_token(-1.0, 1.5)
    assert loss == pytest.approx(1.5) and grad == pytest.approx(1.5) and metrics["high_clip_grad_frac"] == 0.0
    # dual clip: A = −1, r = 4 > c = 3: ℓ = −A·c = 3, no gradient
    loss, grad, metrics = one_token(-1.0, 4.0)
    assert loss == pytest.approx(3.0) and grad == 0.0 and metrics["clip_frac_lower"] == 1.0


def test_entropy_aware_advantage_hand_worked():
    # H = 0, 1, 2, 3: mean 1.5, unbiased std √(5/3) = 1.290994, z = ∓1.161895, ∓.387298
    # 1 + .2z = .767621, .922540, 1.077460, 1.232379;  A = (+1, +1) / (−1, −1), r = 1
    # L = mean(−Â) = −(.767621 + .922540 − 1.077460 − 1.232379)/4 = .154920
    H = torch.tensor([[0.0, 1.0], [2.0, 3.0]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    zeros = torch.zeros(2, 2)
    log_prob = zeros.clone().requires_grad_(True)
    loss, metrics = aepo_agentic_loss(log_prob, zeros, adv, torch.ones(2, 2), "token-mean",
                                      AEPOAgenticLossConfig(), LossExtras(entropy=H))
    assert loss.item() == pytest.approx(0.154920, abs=1e-6)
    assert metrics["adv_scale_min"] == pytest.approx(0.767621, abs=1e-6)
    assert metrics["adv_scale_max"] == pytest.approx(1.232379, abs=1e-6)
    assert metrics["adv_sign_flip_frac"] == 0.0
    loss.backward()
    assert H.grad is None                                           # sg(z): no gradient reaches H
    torch.testing.assert_close(log_prob.grad, -torch.tensor([[0.767621, 0.922540], [-1.077460, -1.232379]]) / 4)


def test_both_flags_off_is_grpo():
    torch.manual_seed(0)
    old = -torch.rand(4, 6)
    log_prob = old + 0.5 * torch.randn(4, 6)
    adv = torch.tensor([[1.0], [-1.0], [0.3], [-2.0]]).expand(4, 6).clone()
    mask = (torch.arange(6)[None, :] < torch.tensor([[6], [4], [2], [5]])).float()
    off = AEPOAgenticLossConfig(enable_entropy_balanced_clipping=False, enable_entropy_balanced_advantage=False)
    for mode in AGG_MODES:
        ours, ours_metrics = aepo_agentic_loss(log_prob, old, adv * mask, mask, mode, off, LossExtras())
        ref, ref_metrics = grpo_loss(log_prob, old, adv * mask, mask, mode, off, LossExtras())
        assert ours.item() == pytest.approx(ref.item())
        for key in ("clip_frac", "clip_frac_lower", "ppo_kl"):
            assert ours_metrics[key] == pytest.approx(ref_metrics[key])


def test_two_smoke_steps_through_the_trainer(tmp_path):
    assert get_method("aepo_agentic_loss").make_config({"advantage_gain": "0.1"}).advantage_gain == 0.1
    rows = train(make_config("smoke", method="aepo_agentic_loss", steps=2, prompts_per_step=8, eval_every=100,
                             eval_prompts=8), tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and math.isfinite(last["pg_loss"])
    assert last["aepo_agentic_loss/adv_scale_min"] <= 1.0 <= last["aepo_agentic_loss/adv_scale_max"]
