"""Group advantages, loss aggregation, PPO-clip with dual-clip and KL estimators: hand-worked."""
import math

import pytest
import torch

from minirl.core import (AGG_MODES, aggregate_loss, aggregation_count, group_advantages, kl_penalty, ppo_clip_loss,
                         ppo_clip_token_loss)
from minirl.methods import PolicyLossConfig


def test_group_advantages_with_std_and_all_equal_groups():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    adv, all_equal = group_advantages(rewards, group_size=4)
    # group 1: mean 0.5, unbiased std sqrt(1/3) -> ±0.5/0.57735 = ±0.8660
    s = 0.5 / math.sqrt(1 / 3)
    assert adv[:4].tolist() == pytest.approx([s, -s, -s, s], rel=1e-5)
    assert adv[4:].tolist() == [0.0, 0.0, 0.0, 0.0]     # exactly zero, not 0/eps noise
    assert all_equal.tolist() == [False, True]


def test_group_advantages_without_std_scaling():
    adv, _ = group_advantages(torch.tensor([3.0, 1.0, 2.0, 2.0]), group_size=2, scale_by_std=False)
    assert adv.tolist() == [1.0, -1.0, 0.0, 0.0]


def test_group_advantages_rejects_ragged_groups():
    with pytest.raises(ValueError, match="do not split into groups of 4"):
        group_advantages(torch.ones(6), group_size=4)


LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("mode,expected", [
    ("token-mean", (1 + 2 + 3 + 4) / 4),                 # 2.5
    ("seq-mean-token-mean", ((1 + 2 + 3) / 3 + 4) / 2),   # 3.0
    ("seq-mean-token-sum", ((1 + 2 + 3) + 4) / 2),        # 5.0
    ("seq-mean-token-sum-norm", (1 + 2 + 3 + 4) / 2 / 3),  # ÷ (rows · T), T = 3
    ("seq-sum-token-sum-norm", (1 + 2 + 3 + 4) / 3),      # ÷ T only
])
def test_aggregation_modes(mode, expected):
    assert aggregate_loss(LOSS, MASK, mode).item() == pytest.approx(expected)


def test_sum_norm_divides_by_the_constant_and_the_rows_holding_a_token():
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-sum-norm", loss_scale_factor=5).item() == pytest.approx(1.0)
    assert aggregate_loss(LOSS, MASK, "seq-sum-token-sum-norm", loss_scale_factor=5).item() == pytest.approx(2.0)
    assert aggregate_loss(torch.ones(2, 3), torch.ones(2, 3), "seq-mean-token-sum-norm").item() == 1.0  # verl's value
    empty_row = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    padded = torch.cat([LOSS, torch.full((1, 3), 9.0)])
    for mode in ("seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):   # the row counts in no mean
        assert aggregate_loss(padded, empty_row, mode).item() == pytest.approx(aggregate_loss(LOSS, MASK, mode).item())


@pytest.mark.parametrize("mode", AGG_MODES)
def test_parts_weighted_by_their_count_add_up_to_the_whole(mode):
    """Micro-batches: each part's loss times count(part) / count(whole) sums to the whole's loss
    (a mode that only sums has no count, and its parts add up as they are)."""
    g = torch.Generator().manual_seed(0)
    loss = torch.randn(7, 5, generator=g)
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 1, 3, 0, 4, 2, 5])[:, None]).float()   # row 3 empty
    total = aggregation_count(mask, mode)
    parts = [slice(0, 3), slice(3, 4), slice(4, 7)]
    weights = [aggregation_count(mask[p], mode) / total if total else 1.0 for p in parts]
    summed = sum(aggregate_loss(loss[p], mask[p], mode, 5) * w for p, w in zip(parts, weights))
    assert summed.item() == pytest.approx(aggregate_loss(loss, mask, mode, 5).item(), abs=1e-6)
    assert (total is None) == (mode == "seq-sum-token-sum-norm")


def test_unknown_aggregation_names_the_choices():
    with pytest.raises(ValueError, match="choose one of: token-mean"):
        aggregate_loss(LOSS, MASK, "mean")


def test_ppo_clip_hand_worked():
    # ratios 1.5, 0.5, 1.1 ; advantages +1, +1, -1 ; eps 0.2
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, 1.0, -1.0])
    loss, clipped, dual = ppo_clip_token_loss(logp, old, adv, 0.2, 0.2, clip_ratio_c=None)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5; token 2: max(1.1, 1.1) = 1.1
    assert loss.tolist() == pytest.approx([-1.2, -0.5, 1.1])
    assert clipped.tolist() == [True, False, False]


def test_clip_higher_lets_the_ratio_rise_further():
    logp, old, adv = torch.log(torch.tensor([1.25])), torch.zeros(1), torch.ones(1)
    assert ppo_clip_token_loss(logp, old, adv, 0.2, 0.2, None)[0].item() == pytest.approx(-1.2)
    assert ppo_clip_token_loss(logp, old, adv, 0.2, 0.28, None)[0].item() == pytest.approx(-1.25)


def test_dual_clip_bounds_negative_advantages():
    # ratio 5, A = -1: PPO loss = max(5, 1.2) = 5; dual-clip with c = 3 caps it at 3
    logp, old, adv = torch.log(torch.tensor([5.0, 5.0])), torch.zeros(2), torch.tensor([-1.0, 1.0])
    loss, _, dual = ppo_clip_token_loss(logp, old, adv, 0.2, 0.2, clip_ratio_c=3.0)
    assert loss.tolist() == pytest.approx([3.0, -1.2])
    assert dual.tolist() == [True, False]


def test_ppo_clip_loss_is_the_token_loss_aggregated_with_its_metrics():
    # row 0: ratios 1.5, 0.5, 1.1 with A = +1, +1, -1 (ℓ = -1.2, -0.5, 1.1, the first clipped); row 1: ratio 5,
    # A = -1 (PPO gives 5, dual-clip c = 3 caps it at 3), then a padded token whose huge ℓ must not count
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1], [5.0, 1e3, 1.0]]))
    old_logp, mask = torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0], [-1.0, -1.0, -1.0]])
    loss, metrics = ppo_clip_loss(logp, old_logp, adv, mask, "token-mean", PolicyLossConfig(0.2, 0.2, 3.0))
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1 + 3.0) / 4)
    assert metrics["pg_loss"] == pytest.approx(loss.item())
    assert metrics["clip_frac"] == pytest.approx(1 / 4)              # token 0 of row 0 (row 1's: max(5, 1.2) = 5)
    assert metrics["clip_frac_lower"] == pytest.approx(1 / 4)        # row 1's dual-clip
    assert metrics["ppo_kl"] == pytest.approx(-(math.log(1.5) + math.log(0.5) + math.log(1.1) + math.log(5.0)) / 4)
    per_seq, _ = ppo_clip_loss(logp, old_logp, adv, mask, "seq-mean-token-mean", PolicyLossConfig(0.2, 0.2, 3.0))
    assert per_seq.item() == pytest.approx(((-1.2 - 0.5 + 1.1) / 3 + 3.0) / 2)


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-2.0])   # log r = ref − logp = −1
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(1.0)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(-1) - 1 + 1)
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalty(logp, ref, "k4")
