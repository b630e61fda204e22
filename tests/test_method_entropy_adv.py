"""Entropy-Adv (Cheng et al., arXiv 2506.14758): A' = A + min(α·sg(H), |A|/κ), worked by hand, the invariants
(never flips a sign for κ ≥ 1, zero where A = 0, no gradient through H), both entropy sources, and
2 smoke steps by name."""
import pytest
import torch

from minirl.config import make_config
from minirl.diagnostics import token_entropy
from minirl.methods import BatchContext, LossExtras, get_method
from minirl.methods.entropy_adv import EntropyAdvConfig, entropy_adv_batch, entropy_adv_loss, entropy_advantage
from minirl.methods.grpo import grpo_loss
from minirl.rollout import Rollout
from minirl.trainer import train


def rollout(entropy, mask):
    B, T = mask.shape
    return Rollout(torch.zeros(B, 1, dtype=torch.long), torch.ones(B, 1), torch.ones(B, T, dtype=torch.long), mask,
                   torch.zeros(B, T), entropy * mask, [""] * B, torch.zeros(B, dtype=torch.long))


def shape(A, entropy, mask, **settings):
    ctx = BatchContext(None, 2, True, 0, step=1)
    _, out, metrics = entropy_adv_batch(rollout(entropy, mask), None, A, EntropyAdvConfig(**settings), ctx)
    return out, metrics


def test_hand_worked_term_and_clip():
    # α = .4, κ = 2. Rows A = (1, −1, 0); H per token (.5, 5.0): α·H = (.2, 2.0), |A|/κ = .5
    #   A = +1:  ψ = (.2, .5) → A' = (1.2, 1.5)    the high-entropy token is capped at |A|/κ
    #   A = −1:  ψ = (.2, .5) → A' = (−.8, −.5)    the penalty shrinks, its sign stays
    #   A =  0:  ψ = 0                                 nothing to learn, nothing added
    H, mask = torch.tensor([[.5, 5.0]] * 3), torch.ones(3, 2)
    out, metrics = shape(torch.tensor([1., -1., 0.]), H, mask)
    torch.testing.assert_close(out, torch.tensor([[1.2, 1.5], [-.8, -.5], [0., 0.]]))
    assert metrics["psi_mean"] == pytest.approx((.2 + .5) * 2 / 6)
    assert metrics["psi_clip_frac"] == pytest.approx(0.5)              # 2 of the 4 tokens with A ≠ 0
    assert metrics["adv_mean_before"] == pytest.approx(0.0)
    assert metrics["adv_mean_after"] == pytest.approx((1.2 + 1.5 - .8 - .5) / 6)
    # SIREN's baseline κ = 1: the cap is |A| itself, and A = −1 can reach 0 but never cross it
    out, _ = shape(torch.tensor([1., -1., 0.]), H, mask, kappa=1.0)
    torch.testing.assert_close(out, torch.tensor([[1.2, 2.0], [-.8, 0.], [0., 0.]]))


def test_invariants_on_random_batches():
    torch.manual_seed(0)
    A, H = torch.randn(6, 5), torch.rand(6, 5) * 3
    mask = torch.ones(6, 5)
    mask[0, 3:] = 0
    for kappa in (1.0, 2.0, 5.0):
        out, _ = entropy_advantage(A * mask, H, mask, EntropyAdvConfig(kappa=kappa))
        psi = out - A * mask
        assert (psi >= 0).all() and (psi <= A.abs() / kappa + 1e-7).all()
        assert (torch.sign(out[A * mask < 0]) <= 0).all()                 # no sign flip
        assert (psi[mask == 0] == 0).all()                                # padding untouched


def test_the_entropy_term_carries_no_gradient():
    H = torch.tensor([[0.5, 1.0]], requires_grad=True)
    out, _ = entropy_advantage(torch.ones(1, 2), H, torch.ones(1, 2), EntropyAdvConfig())
    assert not out.requires_grad


def test_current_source_shapes_in_the_loss_with_the_policy_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    A, mask = torch.tensor([[1., 1, 1], [-1, -1, 0]]), torch.tensor([[1., 1, 1], [1, 1, 0]])
    old, logp = torch.zeros(2, 3), torch.full((2, 3), 0.05)
    config = EntropyAdvConfig(entropy_source="current")
    ctx = BatchContext(None, 2, True, 0, step=1)
    _, out, metrics = entropy_adv_batch(rollout(torch.zeros(2, 3), mask), None, A, config, ctx)
    assert out is A and metrics == {}                                    # nothing happens before the update
    loss, metrics = entropy_adv_loss(logp, old, A, mask, "token-mean", config, LossExtras(logits=logits))
    shaped = A + torch.minimum(0.4 * token_entropy(logits), A.abs() / 2) * mask
    expected, _ = grpo_loss(logp, old, shaped, mask, "token-mean", config)
    assert loss.item() == pytest.approx(expected.item())
    assert metrics["psi_mean"] > 0
    # the old source ignores the logits in the loss: plain PPO-clip on the advantages it is given
    loss, _ = entropy_adv_loss(logp, old, A, mask, "token-mean", EntropyAdvConfig(), LossExtras(logits=logits))
    assert loss.item() == pytest.approx(grpo_loss(logp, old, A, mask, "token-mean", config)[0].item())


@pytest.mark.parametrize("settings, message", [
    ({"kappa": 0.5}, "kappa=0.5 < 1 would let the entropy term flip the sign"),
    ({"alpha": -0.1}, "alpha=-0.1 < 0"),
    ({"entropy_source": "new"}, "entropy_source 'new'.*old, current"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        shape(torch.ones(1), torch.ones(1, 2), torch.ones(1, 2), **settings)


@pytest.mark.parametrize("source", ["old", "current"])
def test_runs_by_name_and_logs_its_metrics(tmp_path, source):
    assert get_method("entropy_adv").make_config({"kappa": "1"}).kappa == 1.0
    config = make_config("smoke", method="entropy_adv", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8,
                         method_settings={"entropy_source": source})
    rows = train(config, tmp_path / source, progress=False)
    for key in ("psi_mean", "psi_clip_frac", "adv_mean_before", "adv_mean_after"):
        assert all(row[f"entropy_adv/{key}"] is not None for row in rows[1:]), key
    assert rows[-1]["entropy_adv/psi_mean"] >= 0
