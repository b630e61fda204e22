"""STEER (Hao et al., arXiv 2510.10150): hand-worked Ω and both weight maps, weights never above 1 in
the exponential map, λ_min = 1 gives back PPO-clip, and two smoke steps through the trainer."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods.grpo import grpo_loss
from minirl.methods.registry import LossExtras, PolicyLossConfig
from minirl.methods.steer import SteerConfig, entropy_change_estimate, steer_loss, steer_weights
from minirl.trainer import train

# Three tokens with p = p_old = 0.5 (on-policy) and A = 1, entropies ln2, ln2 + 1, ln2 + 0.5:
#   Ω = (A / p_old)·p(1 - p)·(log p + H) = 2 · 0.25 · (H - ln 2) = 0.5·(H - ln 2) = [0, 0.5, 0.25]
LN2 = math.log(2.0)
LOGP = torch.full((1, 3), math.log(0.5))
ADV = torch.ones(1, 3)
H = torch.tensor([[LN2, LN2 + 1.0, LN2 + 0.5]])
MASK = torch.ones(1, 3)


def test_omega_hand_worked():
    assert entropy_change_estimate(LOGP, LOGP, ADV, H)[0].tolist() == pytest.approx([0.0, 0.5, 0.25], abs=1e-6)


def test_exponential_map_hand_worked():
    # κ = -ln 0.8 / max(0.5, 0.02); λ = exp(-κ m) = 0.8^(m / 0.5) = [1, 0.8, 0.8^0.5 = 0.894427]
    lam = steer_weights(torch.tensor([[0.0, 0.5, 0.25]]), MASK, 0.8, 1.0, linear=False)
    assert lam[0].tolist() == pytest.approx([1.0, 0.8, 0.894427], abs=1e-6)


def test_exponential_map_floor_of_the_max():
    # m_max = 0.01 < 0.02: κ = -ln 0.8 / 0.02, λ = 0.8^(0.01 / 0.02) = 0.894427 for every token
    lam = steer_weights(torch.full((1, 3), 0.01), MASK, 0.8, 1.0, linear=False)
    assert lam[0].tolist() == pytest.approx([0.894427] * 3, abs=1e-6)


def test_linear_map_hand_worked():
    # λ = 1.2 - (m - 0)·(1.2 - 0.8)/(0.5 - 0) = [1.2, 0.8, 1.0]; all equal m -> midpoint 1.0
    lam = steer_weights(torch.tensor([[0.0, 0.5, 0.25]]), MASK, 0.8, 1.2, True)
    assert lam[0].tolist() == pytest.approx([1.2, 0.8, 1.0])
    assert steer_weights(torch.full((1, 3), 0.3), MASK, 0.8, 1.2, True)[0].tolist() == pytest.approx([1.0] * 3)


def test_loss_hand_worked():
    # on-policy PPO token loss = -A = -1 each; weighted token-mean -(1 + 0.8 + 0.894427) / 3 = -0.898142
    loss, m = steer_loss(LOGP, LOGP, ADV, MASK, "token-mean", SteerConfig(), LossExtras(entropy=H))
    assert loss.item() == pytest.approx(-0.898142, abs=1e-6)
    assert (m["weight_min"], m["weight_max"]) == pytest.approx((0.8, 1.0))
    assert m["weight_mean"] == pytest.approx(0.898142, abs=1e-6) and m["omega_max"] == pytest.approx(0.5)


def random_batch(seed=0, B=6, T=8):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, 5, generator=g)
    logp = torch.log_softmax(logits, -1)[..., 0]
    H = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    old = logp + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T).contiguous()
    mask = (torch.rand(B, T, generator=g) > 0.2).float()
    return old, logp, adv * mask, mask, H


def test_exponential_weights_stay_in_lambda_min_to_one_and_the_largest_omega_gets_lambda_min():
    old, logp, adv, mask, H = random_batch()
    m = entropy_change_estimate(logp, old, adv, H).abs()
    lam = steer_weights(m, mask, 0.5, 1.0, linear=False)
    valid = mask.bool()
    assert lam[valid].min() >= 0.5 - 1e-7 and lam[valid].max() <= 1.0
    assert lam[valid][m[valid].argmax()] == pytest.approx(0.5)
    assert torch.all(lam[~valid] == 0)


def test_lambda_min_one_is_plain_ppo_clip():
    old, logp, adv, mask, H = random_batch(seed=1)
    x, y = logp.clone().requires_grad_(True), logp.clone().requires_grad_(True)
    ours, _ = steer_loss(x, old, adv, mask, "token-mean", SteerConfig(token_weight_min=1.0), LossExtras(entropy=H))
    ref, _ = grpo_loss(y, old, adv, mask, "token-mean", PolicyLossConfig(0.2, 0.28, 10.0))
    assert ours.item() == pytest.approx(ref.item())
    assert torch.allclose(torch.autograd.grad(ours, x)[0], torch.autograd.grad(ref, y)[0])


def test_weights_carry_no_gradient_and_entropy_is_required():
    old, logp, adv, mask, H = random_batch(seed=2)
    H = H.clone().requires_grad_(True)
    loss, _ = steer_loss(logp.clone().requires_grad_(True), old, adv, mask, "token-mean", SteerConfig(),
                         LossExtras(entropy=H))
    assert loss.grad_fn is not None and torch.autograd.grad(loss, H, allow_unused=True)[0] is None
    with pytest.raises(ValueError, match="steer needs the token entropy"):
        steer_loss(logp, old, adv, mask, "token-mean", SteerConfig(), LossExtras())


def test_two_smoke_steps_through_the_trainer(tmp_path):
    rows = train(make_config("smoke", method="steer", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8),
                 tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2
    assert 0.8 - 1e-6 <= last["steer/weight_min"] <= last["steer/weight_mean"] <= last["steer/weight_max"] <= 1.0
