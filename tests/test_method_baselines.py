"""The baselines (dr_grpo, dapo, entropy_bonus, kl_ref, high_entropy_tokens) on examples small
enough to check on paper, the invariants their papers and official code state, and 2 smoke steps each.
Parity with TRL's own loss code is in test_parity_trl.py."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import LossExtras, get_method
from minirl.methods.high_entropy_tokens import high_entropy_mask
from minirl.methods.kl_ref import kl_estimate
from minirl.trainer import train


def run(method, logp, old_logp, adv, mask, agg=None, extra=None, **settings):
    m = get_method(method)
    config = m.make_config()
    for key, value in settings.items():
        setattr(config, key, value)
    return m.policy_loss(logp, old_logp, adv, mask, agg or m.default_agg_mode, config, extra or LossExtras())


def on_policy(A, mask):
    """logp = old_logp = 0 (r = 1, nothing clipped); A (B,) broadcast over the valid tokens."""
    logp = torch.zeros(mask.shape, requires_grad=True)
    return torch.zeros(mask.shape), logp, A[:, None] * mask, mask


# ---------------------------------------------------------------- Dr. GRPO
def test_dr_grpo_divides_by_a_constant_not_by_each_length():
    # lengths 2 and 3, A = (1, −0.5), r = 1: ℓ = −A, Σ M ℓ = −1 −1 +0.5·3 = −0.5
    old, logp, adv, mask = on_policy(torch.tensor([1.0, -0.5]), torch.tensor([[1., 1, 0], [1, 1, 1]]))
    loss, metrics = run("dr_grpo", logp, old, adv, mask, loss_scale_factor=4.0)
    assert loss.item() == pytest.approx(-0.5 / (2 * 4))                         # paper: ÷ G·L_max
    assert metrics["L_max"] == 4.0
    # ∂L/∂logp = −A_i / (G·L_max) on every token, whatever the length of its response
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, torch.tensor([[-1 / 8, -1 / 8, 0], [1 / 16, 1 / 16, 1 / 16]]))
    # GRPO's seq-mean-token-mean instead gives −A_i / (G·|o_i|): the short response weighs more per token
    loss, _ = run("grpo", logp, old, adv, mask)
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, torch.tensor([[-1 / 4, -1 / 4, 0], [1 / 12, 1 / 12, 1 / 12]]))


def test_dr_grpo_verl_form_and_default_length():
    old, logp, adv, mask = on_policy(torch.tensor([1.0, -0.5]), torch.tensor([[1., 1, 0], [1, 1, 1]]))
    loss, _ = run("dr_grpo", logp, old, adv, mask, loss_scale_factor=4.0)
    assert loss.item() == pytest.approx(-0.5 / (2 * 4))                          # ÷ (B·L_max): paper, verl 0.9.1
    loss, _ = run("dr_grpo", logp, old, adv, mask, "seq-sum-token-sum-norm", loss_scale_factor=4.0)
    assert loss.item() == pytest.approx(-0.5 / 4)                                # verl before PR #4510: ÷ L_max only
    loss, metrics = run("dr_grpo", logp, old, adv, mask)
    assert loss.item() == pytest.approx(-0.5 / (2 * 3)) and metrics["L_max"] == 3.0   # None → padded T = 3


# ---------------------------------------------------------------- DAPO
def test_dapo_clip_higher_lets_a_positive_token_grow_to_1_28():
    # token 1: A = +1, r = 1.25; token 2: A = −1, r = 0.7
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.25, 0.7]])).requires_grad_()
    adv, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    loss, metrics = run("dapo", logp, old, adv, mask)
    # token 1 inside [0.8, 1.28]: −A·r = −1.25; token 2: max(−A·0.7, −A·clip(0.7)) = max(0.7, 0.8) = 0.8
    assert loss.item() == pytest.approx((-1.25 + 0.8) / 2)
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, torch.tensor([[-1.25 / 2, 0.0]]))          # ∂(−A·r)/∂logp = −A·r
    assert metrics["clip_frac"] == 0.5 and metrics["clip_frac_low"] == 0.5 and metrics["clip_frac_high"] == 0.0
    # GRPO's symmetric 0.2 clips token 1 at 1.2: no gradient for it
    loss, _ = run("grpo", logp, old, adv, mask, agg="token-mean")
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    (grad,) = torch.autograd.grad(loss, logp)
    assert grad.abs().sum() == 0


def test_dapo_counts_tokens_beyond_the_higher_clip():
    logp = torch.log(torch.tensor([[1.3, 1.1, 1.3]]))
    _, metrics = run("dapo", logp, torch.zeros(1, 3), torch.tensor([[1.0, 1.0, -1.0]]), torch.ones(1, 3))
    assert metrics["clip_frac_high"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- entropy bonus
def entropy_example():
    old, logp, adv, mask = on_policy(torch.tensor([1.0, -1.0]), torch.tensor([[1., 1, 0], [1, 0, 0]]))
    H = torch.tensor([[0.5, 1.0, 9.9], [1.5, 9.9, 9.9]], requires_grad=True)     # padding holds junk
    return old, logp, adv, mask, H


def test_entropy_bonus_subtracts_c_times_mean_entropy_with_gradient():
    old, logp, adv, mask, H = entropy_example()
    loss, metrics = run("entropy_bonus", logp, old, adv, mask, extra=LossExtras(entropy=H), entropy_coeff=0.1)
    # token-mean: pg = (−1 −1 +1)/3 = −1/3; H̄ = (0.5 + 1.0 + 1.5)/3 = 1.0; L = −1/3 − 0.1·1.0
    assert loss.item() == pytest.approx(-1 / 3 - 0.1)
    assert metrics["pg_loss"] == pytest.approx(-1 / 3) and metrics["entropy_term"] == pytest.approx(1.0)
    assert metrics["bonus"] == pytest.approx(0.1)
    (grad,) = torch.autograd.grad(loss, H)                                        # −c/N on valid tokens
    torch.testing.assert_close(grad, -0.1 / 3 * mask)


def test_entropy_bonus_aggregation_follows_the_loss_or_trl():
    old, logp, adv, mask, H = entropy_example()
    extra = LossExtras(entropy=H)
    # seq-mean-token-mean (verl): H̄ = mean(0.75, 1.5) = 1.125; pg = mean(−1, +1) = 0
    loss, _ = run("entropy_bonus", logp, old, adv, mask, agg="seq-mean-token-mean", extra=extra, entropy_coeff=0.1)
    assert loss.item() == pytest.approx(-0.1125)
    loss, _ = run("entropy_bonus", logp, old, adv, mask, agg="seq-mean-token-mean", extra=extra, entropy_coeff=0.1,
                  entropy_agg_mode="token-mean")                                   # TRL: always the token mean
    assert loss.item() == pytest.approx(-0.1)
    loss, _ = run("entropy_bonus", logp, old, adv, mask, extra=extra, entropy_coeff=0.0)
    grpo, _ = run("grpo", logp, old, adv, mask, agg="token-mean")
    assert loss.item() == grpo.item()                                             # c = 0 is PPO-clip


# ---------------------------------------------------------------- KL to the reference
@pytest.mark.parametrize("estimator, value, grad", [
    # logp = −1, ref = −2: log_r = −1
    ("k1", 1.0, 1.0),                                  # −log_r;             ∂/∂logp = 1
    ("k2", 0.5, 1.0),                                  # ½ log_r²;           ∂/∂logp = logp − ref = 1
    ("k3", math.exp(-1), 1 - math.exp(-1)),            # e^{−1} − 1 + 1;     ∂/∂logp = 1 − e^{log_r}
    ("k3+", math.exp(-1), 1.0),                        # value of k3, gradient of k2
])
def test_kl_estimators_by_hand(estimator, value, grad):
    logp = torch.tensor([[-1.0]], requires_grad=True)
    k = kl_estimate(logp, torch.tensor([[-2.0]]), estimator)
    assert k.item() == pytest.approx(value)
    assert torch.autograd.grad(k.sum(), logp)[0].item() == pytest.approx(grad)


def test_kl_ref_adds_beta_times_kl_and_ratio_weighting_gives_the_kl_gradient():
    # one valid token with A = 0 (no policy gradient) and one padded token whose ref log-prob is junk
    old, logp, adv, mask = on_policy(torch.tensor([0.0]), torch.tensor([[1., 0]]))
    logp.data.fill_(-1.0)
    old = logp.detach().clone()
    extra = LossExtras(ref_log_prob=torch.tensor([[-2.0, 50.0]]))
    loss, metrics = run("kl_ref", logp, old, adv, mask, extra=extra, kl_loss_coef=0.5)
    assert loss.item() == pytest.approx(0.5 * math.exp(-1))                     # β·k3
    assert metrics["kl_ref"] == pytest.approx(math.exp(-1)) and metrics["pg_loss"] == 0.0
    # r·k3 at r = 1: same value, gradient k3 + 1 − e^{log_r} = −log_r = logp − ref = 1 (the true ∇KL)
    loss, _ = run("kl_ref", logp, old, adv, mask, extra=extra, kl_loss_coef=0.5, ratio_weighted=True)
    assert loss.item() == pytest.approx(0.5 * math.exp(-1))
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, torch.tensor([[0.5 * 1.0, 0.0]]))


def test_kl_ref_keeps_the_trainer_kl_off():
    assert make_config("smoke", method="kl_ref").kl_coef == 0.0
    assert "ref_log_prob" in get_method("kl_ref").needs


# ---------------------------------------------------------------- 80/20: high-entropy tokens only
def hot_example():
    mask = torch.tensor([[1., 1, 1, 0], [1, 1, 1, 1]])
    H = torch.tensor([[0.1, 0.9, 0.5, 5.0], [0.7, 0.2, 0.3, 0.8]])              # 5.0 is padding
    old, logp, adv, _ = on_policy(torch.tensor([2.0, -1.0]), mask)
    return old, logp, adv, mask, H


def test_high_entropy_tokens_keep_the_top_ceil_rho_n():
    old, logp, adv, mask, H = hot_example()
    # N = 7 valid tokens, ⌈0.2·7⌉ = ⌈1.4⌉ = 2: H = 0.9 (A = 2) and 0.8 (A = −1); padding's 5.0 never counts
    loss, metrics = run("high_entropy_tokens", logp, old, adv, mask, extra=LossExtras(entropy=H))
    assert loss.item() == pytest.approx((-2 + 1) / 2)                             # token-mean over the kept
    assert metrics["threshold"] == pytest.approx(0.8) and metrics["frac_kept"] == pytest.approx(2 / 7)
    assert metrics["entropy_kept"] == pytest.approx(0.85)
    (grad,) = torch.autograd.grad(loss, logp)                                     # −A/2 on the two kept tokens
    torch.testing.assert_close(grad, torch.tensor([[0, -1.0, 0, 0], [0, 0, 0, 0.5]]))
    loss, _ = run("high_entropy_tokens", logp, old, adv, mask, extra=LossExtras(entropy=H), normalise_by_kept=False)
    assert loss.item() == pytest.approx((-2 + 1) / 7)                             # TRL: ÷ all valid tokens


def test_high_entropy_quantile_rule_and_edges():
    _, _, _, mask, H = hot_example()
    # quantile(H, 0.8) at position 0.8·6 = 4.8 of sorted (0.1 0.2 0.3 0.5 0.7 0.8 0.9): 0.7 + 0.8·0.1 = 0.78
    I, tau = high_entropy_mask(H, mask, 0.2, "quantile")
    assert tau == pytest.approx(0.78) and I.sum() == 2 and bool(I[0, 1]) and bool(I[1, 3])
    I, _ = high_entropy_mask(H, mask, 0.0)                                        # at least one token
    assert I.sum() == 1 and bool(I[0, 1])
    I, _ = high_entropy_mask(H, mask, 1.0)
    assert torch.equal(I, mask.bool())


def test_high_entropy_tokens_at_rho_1_is_dapo():
    g = torch.Generator().manual_seed(0)
    mask = (torch.arange(5)[None] < torch.tensor([[5], [2], [4]])).float()
    old = -torch.rand(3, 5, generator=g)
    logp = old + 0.3 * torch.randn(3, 5, generator=g)
    adv, H = torch.randn(3, 1, generator=g) * mask, torch.rand(3, 5, generator=g)
    ours, _ = run("high_entropy_tokens", logp, old, adv, mask, extra=LossExtras(entropy=H), top_ratio=1.0)
    dapo, _ = run("dapo", logp, old, adv, mask)
    assert ours.item() == pytest.approx(dapo.item(), abs=1e-7)


# ---------------------------------------------------------------- defaults and smoke runs
def test_train_defaults_and_user_override():
    assert make_config("smoke", method="dr_grpo").scale_adv_by_std is False
    assert make_config("smoke", method="dapo").dynamic_sampling is True
    assert make_config("smoke", method="high_entropy_tokens").dynamic_sampling is True
    assert make_config("smoke", method="dapo", dynamic_sampling=False).dynamic_sampling is False
    config = get_method("dapo").make_config({"clip_ratio_high": "0.3"})
    assert (config.clip_ratio_low, config.clip_ratio_high, config.clip_ratio_c) == (0.2, 0.3, 10.0)


@pytest.mark.parametrize("method, key", [
    ("dr_grpo", "dr_grpo/L_max"), ("dapo", "gen_batches"), ("entropy_bonus", "entropy_bonus/entropy_term"),
    ("kl_ref", "kl_ref"), ("high_entropy_tokens", "high_entropy_tokens/frac_kept")])
def test_two_smoke_steps(tmp_path, method, key):
    rows = train(make_config("smoke", method=method, steps=2, prompts_per_step=4, eval_every=100, eval_prompts=8,
                             eval_samples=2, eval_k=2), tmp_path / "run", progress=False)
    assert [r["step"] for r in rows] == [0, 1, 2]
    for row in rows[1:]:
        assert math.isfinite(row["pg_loss"]) and math.isfinite(row[key])
    if method == "high_entropy_tokens":
        assert all(0.2 <= r[key] < 0.3 for r in rows[1:])                        # ⌈0.2·N⌉ / N
