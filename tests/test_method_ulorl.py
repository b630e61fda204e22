"""UloRL (Du et al., arXiv 2507.19766): well-mastered positive tokens leave the loss only while the
response's entropy is below σ, and the token-mean normaliser keeps counting them (Eq. 10)."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import LossExtras, get_method
from minirl.methods.ulorl import UloRLConfig, ulorl_loss
from minirl.trainer import train

# Two responses of three tokens; the second has only two (the third is padding).
#   response 0: correct (A = +1), p_old = .995, .5, .999, H = .05, .2, .05  → H̄_0 = 0.1 < σ = 0.2
#   response 1: wrong   (A = −1), p_old = .995, .6,       H = .5, .5         → H̄_1 = 0.5
# MPT (p ≥ .99 and correct) = tokens 0 and 2 of response 0; both gated on since H̄_0 < σ.
OLD = torch.log(torch.tensor([[0.995, 0.5, 0.999], [0.995, 0.6, 1.0]]))
ADV = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
H = torch.tensor([[0.05, 0.2, 0.05], [0.5, 0.5, 0.0]])


def run(config=None, log_prob=None):
    log_prob = (OLD.clone() if log_prob is None else log_prob).requires_grad_(True)
    loss, metrics = ulorl_loss(log_prob, OLD, ADV, MASK, "token-mean", config or UloRLConfig(),
                               LossExtras(entropy=H.clone()))
    loss.backward()
    return loss.item(), metrics, log_prob.grad


def test_hand_worked_mask_and_loss():
    loss, metrics, grad = run()
    # r = 1, so ℓ = −A: response 0 → −1, −1, −1 ; response 1 → +1, +1.
    # Tokens 0 and 2 of response 0 are masked; the normaliser stays 5 tokens:
    #   L = (0 − 1 + 0 + 1 + 1) / 5 = 0.2     (plain GRPO token-mean: (−3 + 2) / 5 = −0.2)
    assert loss == pytest.approx(0.2)
    assert metrics["mask_frac"] == pytest.approx(2 / 5)
    assert metrics["mpt_frac"] == pytest.approx(2 / 5)
    assert metrics["low_entropy_frac"] == pytest.approx(0.5)
    assert metrics["mean_response_entropy"] == pytest.approx((0.1 + 0.5) / 2)
    # masked tokens get no gradient; the others get −A·r / 5
    torch.testing.assert_close(grad, torch.tensor([[0.0, -0.2, 0.0], [0.2, 0.2, 0.0]]))


def test_no_masking_above_the_target_entropy():
    loss, metrics, _ = run(UloRLConfig(sigma=0.05))          # H̄_0 = 0.1 is not below 0.05
    assert loss == pytest.approx(-0.2)
    assert metrics["mask_frac"] == 0.0 and metrics["mpt_frac"] == pytest.approx(0.4)


def test_batch_scope_uses_the_mean_over_all_tokens():
    # batch H̄ = (.05 + .2 + .05 + .5 + .5) / 5 = 0.26 ≥ σ = 0.2: nothing is masked
    loss, metrics, _ = run(UloRLConfig(entropy_scope="batch"))
    assert loss == pytest.approx(-0.2) and metrics["mask_frac"] == 0.0
    loss, _, _ = run(UloRLConfig(entropy_scope="batch", sigma=0.3))
    assert loss == pytest.approx(0.2)


def test_current_policy_probability_option():
    # under π_θ token 0 of response 0 has fallen to p = 0.9 < τ, token 2 is still mastered
    log_prob = OLD.clone()
    log_prob[0, 0] = math.log(0.9)
    _, old_metrics, _ = run(UloRLConfig(mpt_prob="old"), log_prob)
    _, cur_metrics, _ = run(UloRLConfig(mpt_prob="current"), log_prob)
    assert old_metrics["mask_frac"] == pytest.approx(2 / 5)
    assert cur_metrics["mask_frac"] == pytest.approx(1 / 5)


def test_wrong_settings_say_what_to_use():
    with pytest.raises(ValueError, match="choose one of: old, current"):
        run(UloRLConfig(mpt_prob="new"))
    with pytest.raises(ValueError, match="choose one of: response, batch"):
        run(UloRLConfig(entropy_scope="group"))
    assert get_method("ulorl").make_config({"tau": "0.9", "sigma": "0.3"}).tau == 0.9


def test_two_smoke_steps_through_the_trainer(tmp_path):
    rows = train(make_config("smoke", method="ulorl", steps=2, prompts_per_step=8, eval_every=100,
                             eval_prompts=8), tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and math.isfinite(last["pg_loss"])
    assert 0.0 <= last["ulorl/mask_frac"] <= last["ulorl/mpt_frac"] <= 1.0
