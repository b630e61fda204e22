"""Clip-Cov (Cui et al., arXiv 2505.22617): hand-worked covariance band, random subset, the PPO-clipped tokens it never
touches, the per-micro-batch option, and two smoke steps through the trainer."""
import pytest
import torch

from minirl.config import make_config
from minirl.core import ppo_clip_token_loss
from minirl.diagnostics import centred_covariance
from minirl.methods.clip_cov import ClipCovConfig, clip_cov_loss, clip_cov_selection
from minirl.methods.grpo import grpo_loss
from minirl.methods.registry import PolicyLossConfig
from minirl.trainer import train

# Two sequences of two tokens, all valid, on-policy (r = 1, nothing PPO-clipped).
#   logp = [[-1, -3], [-1, -3]]       mean logp = -2   -> logp - mean = [[1, -1], [1, -1]]
#   A    = [[ 2,  2], [-1, -1]]       mean A    = 0.5  -> A - mean    = [[1.5, 1.5], [-1.5, -1.5]]
#   Cov  = [[1.5, -1.5], [-1.5, 1.5]]  -> band (1, 5) holds C = {(0,0), (1,1)}
#   PPO token loss at r = 1: -A = [[-2, -2], [1, 1]]
LOGP = torch.tensor([[-1.0, -3.0], [-1.0, -3.0]])
ADV = torch.tensor([[2.0, 2.0], [-1.0, -1.0]])
MASK = torch.ones(2, 2)


def run(config, logp=LOGP, old=LOGP, adv=ADV, mask=MASK, mode="token-mean"):
    logp = logp.clone().requires_grad_(True)
    loss, metrics = clip_cov_loss(logp, old, adv, mask, mode, config)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.item(), grad, metrics


def test_covariance_of_the_hand_example():
    assert centred_covariance(LOGP, ADV, MASK).tolist() == [[1.5, -1.5], [-1.5, 1.5]]


def test_both_candidates_detached_hand_worked():
    # r = 0.5, N = 4: max(1, floor(2)) = 2 tokens = all of C. Remaining losses: (0,1) -2 and (1,0) +1
    # -> token-mean (-2 + 1) / 4 = -0.25 (detached tokens still count in N). Gradient -A/4 elsewhere.
    loss, grad, m = run(ClipCovConfig(clip_cov_ratio=0.5))
    assert loss == pytest.approx(-0.25)
    assert grad.flatten().tolist() == pytest.approx([0.0, -0.5, 0.25, 0.0])
    assert m["n_detached"] == 2 and m["n_candidates"] == 2 and m["clip_frac"] == pytest.approx(0.5)


def test_subset_size_is_floor_r_n_at_least_one_and_drawn_from_the_band():
    cov = centred_covariance(LOGP, ADV, MASK)
    none_clipped = torch.zeros(2, 2, dtype=torch.bool)
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        I_clip, C = clip_cov_selection(cov, MASK, none_clipped, ratio=2e-4, lb=1.0, ub=5.0, generator=g)
        assert I_clip.sum() == 1 and (I_clip & ~C).sum() == 0          # max(1, floor(8e-4)) = 1, inside C
    # the subset is random: over seeds both candidates get picked
    picks = {tuple(clip_cov_selection(cov, MASK, none_clipped, 0.25, 1.0, 5.0,
                                      torch.Generator().manual_seed(s))[0].nonzero()[0].tolist()) for s in range(20)}
    assert picks == {(0, 0), (1, 1)}


def test_global_rng_makes_the_loss_reproducible():
    torch.manual_seed(3)
    a = run(ClipCovConfig(clip_cov_ratio=0.25))
    torch.manual_seed(3)
    b = run(ClipCovConfig(clip_cov_ratio=0.25))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_tokens_outside_the_band_are_never_touched():
    # Cov = 1.5 is above an upper bound of 1.4: no candidate, the loss is plain PPO: (-2 -2 +1 +1)/4
    loss, _, m = run(ClipCovConfig(clip_cov_ratio=0.5, clip_cov_ub=1.4))
    assert m["n_detached"] == 0 and loss == pytest.approx(-0.5)


def test_never_detaches_a_token_ppo_already_clipped():
    g = torch.Generator().manual_seed(0)
    B, T = 16, 10
    old = -torch.rand(B, T, generator=g) * 3
    logp = old + 0.5 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T).contiguous()
    mask = torch.ones(B, T)
    _, is_clipped, _ = ppo_clip_token_loss(logp, old, adv, 0.2, 0.2, None)
    assert is_clipped.sum() > 20
    cov = centred_covariance(logp, adv, mask)
    for seed in range(20):                       # a band wide enough to hold every token, r = 1
        I_clip, C = clip_cov_selection(cov, mask, is_clipped, 1.0, -1e9, 1e9, torch.Generator().manual_seed(seed))
        assert not (I_clip & is_clipped).any()
        assert torch.equal(I_clip, ~is_clipped)  # every unclipped token detached, no clipped one
    loss, grad, m = run(ClipCovConfig(0.2, 0.2, clip_cov_ratio=1.0, clip_cov_lb=-1e9, clip_cov_ub=1e9),
                        logp, old, adv, mask)
    assert m["n_detached"] == (~is_clipped).sum().item() and torch.all(grad == 0)


def test_ratio_zero_is_plain_ppo_clip():
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(4, 6, generator=g) * 3
    logp = old + 0.3 * torch.randn(4, 6, generator=g)
    adv = torch.randn(4, 1, generator=g).expand(4, 6).contiguous()
    mask = torch.ones(4, 6)
    ours = run(ClipCovConfig(0.2, 0.2, clip_cov_ratio=0.0, clip_cov_lb=-1e9), logp, old, adv, mask)
    x = logp.clone().requires_grad_(True)
    ref, _ = grpo_loss(x, old, adv, mask, "token-mean", PolicyLossConfig(0.2, 0.2, None))
    assert ours[0] == pytest.approx(ref.item()) and ours[2]["n_detached"] == 0
    assert torch.allclose(ours[1], torch.autograd.grad(ref, x)[0])


def test_micro_batch_option_centres_each_chunk_separately():
    # one sequence per chunk: inside a row A is constant, A - mean A = 0, Cov = 0, nothing in the band
    _, _, m = run(ClipCovConfig(clip_cov_ratio=0.5, micro_batch_size=1))
    assert m["n_candidates"] == 0 and m["n_detached"] == 0


def test_two_smoke_steps_through_the_trainer(tmp_path):
    rows = train(make_config("smoke", method="clip_cov", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8,
                             method_settings={"clip_cov_ratio": "0.02"}), tmp_path / "run", progress=False)
    assert rows[-1]["step"] == 2
    assert rows[-1]["clip_cov/n_detached"] >= 0 and "clip_cov/ppo_clip_frac" in rows[-1]
