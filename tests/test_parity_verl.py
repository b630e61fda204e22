"""minirl's loss aggregation, PPO-clip, Clip-Cov and KL-Cov losses agree with verl's own.

verl is the reference implementation: Clip-Cov and KL-Cov were merged into it from their official
code (github.com/PRIME-RL/Entropy-Mechanism-of-RL), and the GRPO-family baselines are its recipes. The test
is skipped when verl cannot be imported; importing `verl.trainer.ppo.core_algos` needs verl and,
through `verl/__init__.py`, ray, tensordict, omegaconf, transformers < 5.11, codetiming, ... .
tests/test_verl_env.py builds an environment with verl 0.9.1 and runs this file there.
"""
import pytest
import torch

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
verl_config = pytest.importorskip("verl.workers.config")

from minirl.core import aggregate_loss  # noqa: E402
from minirl.methods.clip_cov import ClipCovConfig, clip_cov_loss  # noqa: E402
from minirl.methods.dr_grpo import DrGRPOConfig, dr_grpo_loss  # noqa: E402
from minirl.methods.grpo import grpo_loss  # noqa: E402
from minirl.methods.kl_cov import KLCovConfig, kl_cov_loss  # noqa: E402
from minirl.methods.registry import PolicyLossConfig  # noqa: E402

TOL = dict(rtol=1e-6, atol=1e-6)
VERL_MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


def verl_actor_config(loss_mode, eps_low=0.2, eps_high=0.2, c=3.0, **policy_loss):
    return verl_config.ActorConfig(
        strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio_low=eps_low,
        clip_ratio_high=eps_high, clip_ratio_c=c,
        policy_loss=verl_config.PolicyLossConfig(loss_mode=loss_mode, **policy_loss))


def random_batch(seed=0, B=8, T=12):
    """Ragged responses, one advantage per sequence, a policy that moved by ~0.3 nats per token."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()                    # (B, T)
    old = -torch.rand(B, T, generator=g) * 3.0                                       # log-probs in (−3, 0)
    new = old + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T) * mask
    return old, new, adv, mask


def loss_and_grad(fn, old, new, adv, mask, *args):
    """(loss, d loss / d log_prob, metrics) of a verl policy loss, called as verl calls it: old log-probs first."""
    return _loss_and_grad(lambda logp: fn(old, logp, adv, mask, *args), new)


def ours_and_grad(fn, old, new, adv, mask, *args):
    """The same for a minirl method loss, called in minirl's order: (logp, old_logp, adv, mask, ...)."""
    return _loss_and_grad(lambda logp: fn(logp, old, adv, mask, *args), new)


def _loss_and_grad(loss_of, new):
    logp = new.clone().requires_grad_(True)
    loss, metrics = loss_of(logp)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.detach(), grad, metrics


@pytest.mark.parametrize("loss_scale_factor", [None, 16])
@pytest.mark.parametrize("mode", VERL_MODES)
def test_aggregation_is_verl_agg_loss(mode, loss_scale_factor):
    """core.aggregate_loss is verl's agg_loss on one batch, a row without a token included."""
    g = torch.Generator().manual_seed(4)
    loss_mat = torch.randn(6, 9, generator=g)
    mask = (torch.arange(9)[None, :] < torch.tensor([9, 2, 0, 5, 1, 7])[:, None]).float()     # row 2 empty
    ours = aggregate_loss(loss_mat, mask, mode, loss_scale_factor)
    verl = core_algos.agg_loss(loss_mat, mask, mode, loss_scale_factor=loss_scale_factor)
    torch.testing.assert_close(ours, verl, **TOL)


def test_sum_norm_on_ones_is_one_as_in_verl():
    ones = torch.ones(2, 3)
    assert aggregate_loss(ones, ones, "seq-mean-token-sum-norm").item() == 1.0
    assert core_algos.agg_loss(ones, ones, "seq-mean-token-sum-norm").item() == 1.0


@pytest.mark.parametrize("mode", VERL_MODES)
def test_ppo_clip_matches_verl_vanilla(mode):
    old, new, adv, mask = random_batch()
    ours = ours_and_grad(grpo_loss, old, new, adv, mask, mode, PolicyLossConfig(0.2, 0.28, 3.0))
    verl = loss_and_grad(core_algos.get_policy_loss_fn("vanilla"), old, new, adv, mask, mode,
                         verl_actor_config("vanilla", 0.2, 0.28, 3.0))
    torch.testing.assert_close(ours[0], verl[0], **TOL)
    torch.testing.assert_close(ours[1], verl[1], **TOL)
    assert ours[2]["clip_frac"] == pytest.approx(verl[2]["actor/pg_clipfrac"], abs=1e-6)
    assert ours[2]["clip_frac_lower"] == pytest.approx(verl[2]["actor/pg_clipfrac_lower"], abs=1e-6)
    assert ours[2]["ppo_kl"] == pytest.approx(verl[2]["actor/ppo_kl"], abs=1e-6)


def test_dr_grpo_is_verl_vanilla_in_seq_mean_token_sum_norm_with_a_constant_length():
    old, new, adv, mask = random_batch(seed=5)
    config = verl_actor_config("vanilla")
    config.global_batch_info["loss_scale_factor"] = 16              # what verl's ppo_loss passes on
    mode = "seq-mean-token-sum-norm"
    ours = ours_and_grad(dr_grpo_loss, old, new, adv, mask, mode, DrGRPOConfig(loss_scale_factor=16))
    verl = loss_and_grad(core_algos.get_policy_loss_fn("vanilla"), old, new, adv, mask, mode, config)
    torch.testing.assert_close(ours[0], verl[0], **TOL)
    torch.testing.assert_close(ours[1], verl[1], **TOL)


def test_clip_cov_matches_verl_with_the_same_random_subset():
    old, new, adv, mask = random_batch(seed=1)
    settings = dict(clip_cov_ratio=0.1, clip_cov_lb=0.01, clip_cov_ub=5.0)
    torch.manual_seed(123)                          # the subset comes from torch's global RNG in both
    ours = ours_and_grad(clip_cov_loss, old, new, adv, mask, "token-mean",
                         ClipCovConfig(clip_ratio_low=0.2, clip_ratio_high=0.2, **settings))
    torch.manual_seed(123)
    verl = loss_and_grad(core_algos.get_policy_loss_fn("clip_cov"), old, new, adv, mask, "token-mean",
                         verl_actor_config("clip_cov", **settings))
    assert ours[2]["n_detached"] >= 3 and ours[2]["ppo_clip_frac"] > 0      # the test exercises both rules
    torch.testing.assert_close(ours[0], verl[0], **TOL)
    torch.testing.assert_close(ours[1], verl[1], **TOL)
    assert ours[2]["clip_frac"] == pytest.approx(verl[2]["actor/pg_clipfrac"], abs=1e-6)
    assert ours[2]["ppo_kl"] == pytest.approx(verl[2]["actor/ppo_kl"], abs=1e-6)


def test_clip_cov_micro_batch_option_matches_verl_micro_batches():
    old, new, adv, mask = random_batch(seed=2)
    settings = dict(clip_cov_ratio=0.1, clip_cov_lb=0.01, clip_cov_ub=5.0)
    torch.manual_seed(7)
    ours = ours_and_grad(clip_cov_loss, old, new, adv, mask, "seq-mean-token-sum",
                         ClipCovConfig(clip_ratio_low=0.2, clip_ratio_high=0.2, micro_batch_size=2, **settings))
    torch.manual_seed(7)                             # verl: one call per micro-batch of 2 sequences
    fn, cfg = core_algos.get_policy_loss_fn("clip_cov"), verl_actor_config("clip_cov", **settings)
    parts = [loss_and_grad(fn, old[i:i + 2], new[i:i + 2], adv[i:i + 2], mask[i:i + 2], "seq-mean-token-sum", cfg)
             for i in range(0, 8, 2)]
    torch.testing.assert_close(ours[0], sum(p[0] for p in parts) / 4, **TOL)       # mean of 4 equal chunks
    torch.testing.assert_close(ours[1], torch.cat([p[1] for p in parts]) / 4, **TOL)


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_kl_cov_matches_verl(beta):
    old, new, adv, mask = random_batch(seed=3)
    ours = ours_and_grad(kl_cov_loss, old, new, adv, mask, "token-mean",
                         KLCovConfig(kl_cov_ratio=0.1, ppo_kl_coef=beta))
    verl = loss_and_grad(core_algos.get_policy_loss_fn("kl_cov"), old, new, adv, mask, "token-mean",
                         verl_actor_config("kl_cov", kl_cov_ratio=0.1, ppo_kl_coef=beta))
    assert ours[2]["n_selected"] >= 3
    torch.testing.assert_close(ours[0], verl[0], **TOL)
    torch.testing.assert_close(ours[1], verl[1], **TOL)
    assert ours[2]["abs_kl"] == pytest.approx(verl[2]["actor/ppo_kl"], abs=1e-6)
