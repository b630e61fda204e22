"""minirl's methods registered as verl policy losses (minirl/integrations/verl.py) compute minirl's loss.

Skipped unless verl is importable: verl 0.9.1 pins transformers<5.11 and imports ray, so it lives in
its own environment (install recipe in the module docstring). Each test calls the registered loss the
way verl does, through `get_policy_loss_fn(name)(..., config=ActorConfig)`, and compares it with
minirl's own function (or with verl's own loss) on the same tensors: values and gradients to 1e-6.
"""
import pytest
import torch

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos",
                                 reason="verl is not installed (it needs its own venv: minirl/integrations/verl.py)")
verl_config = pytest.importorskip("verl.workers.config", reason="verl is not installed")

from minirl.integrations.verl import register_verl_losses  # noqa: E402
from minirl.methods.clip_cov import ClipCovConfig, clip_cov_loss  # noqa: E402
from minirl.methods.dr_grpo import DrGRPOConfig, dr_grpo_loss  # noqa: E402
from minirl.methods.grpo import grpo_loss  # noqa: E402
from minirl.methods.registry import PolicyLossConfig  # noqa: E402

TOL = dict(rtol=0, atol=1e-6)
MODES = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


@pytest.fixture(scope="module", autouse=True)
def registered():
    return register_verl_losses()


def actor(eps_low=0.2, eps_high=0.2, c=3.0, loss_scale_factor=None, **policy_loss):
    return verl_config.ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                                   clip_ratio_low=eps_low, clip_ratio_high=eps_high, clip_ratio_c=c,
                                   loss_scale_factor=loss_scale_factor,
                                   policy_loss=verl_config.PolicyLossConfig(**policy_loss))


def random_batch(seed=0, B=8, T=12):
    """Ragged non-empty responses, one advantage per sequence, a policy that moved ~0.3 nats a token."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None, :] < lengths[:, None]                                 # (B, T) bool, as verl
    old = -torch.rand(B, T, generator=g) * 3.0
    new = old + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T) * mask
    return old, new, adv, mask


def run(fn, old, new, adv, mask, *args, **kwargs):
    """(loss, d loss / d log_prob, metrics)."""
    logp = new.clone().requires_grad_(True)
    loss, metrics = fn(old, logp, adv, mask, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.detach(), grad, metrics


def assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], **TOL)
    torch.testing.assert_close(a[1], b[1], **TOL)


def test_registers_exactly_the_methods_verl_can_feed(registered):
    assert {"minirl_grpo", "minirl_clip_cov", "minirl_kl_cov", "minirl_dapo", "minirl_dr_grpo"} <= set(registered)
    for name in ("epo", "entropy_bonus", "lp_reg", "kl_ref", "ulorl", "aepo"):       # need H/logits/ref/old H, or batch
        assert f"minirl_{name}" not in registered
    assert all(core_algos.get_policy_loss_fn(verl_name) is not None for verl_name in registered)


@pytest.mark.parametrize("mode", MODES)
def test_minirl_grpo_through_verl_is_minirl_grpo(mode):
    old, new, adv, mask = random_batch()
    ours = run(grpo_loss, old, new, adv, mask.float(), mode, PolicyLossConfig(0.2, 0.28, 3.0))
    through_verl = run(core_algos.get_policy_loss_fn("minirl_grpo"), old, new, adv, mask, mode,
                       actor(0.2, 0.28, 3.0))
    assert_same(ours, through_verl)
    assert through_verl[2]["actor/pg_clipfrac"] == pytest.approx(ours[2]["clip_frac"])


@pytest.mark.parametrize("mode", MODES[:3])
def test_minirl_grpo_agrees_with_verl_vanilla(mode):
    # seq-mean-token-sum-norm: verl 0.9.1 divides by B·L, minirl's grpo by L (dr_grpo: B·L, tested below)
    old, new, adv, mask = random_batch(seed=3)
    config = actor(0.2, 0.28, 3.0)
    assert_same(run(core_algos.get_policy_loss_fn("minirl_grpo"), old, new, adv, mask, mode, config),
                run(core_algos.get_policy_loss_fn("vanilla"), old, new, adv, mask, mode, config))


def test_clip_cov_through_verl_takes_verl_settings():
    old, new, adv, mask = random_batch(seed=1)
    settings = dict(clip_cov_ratio=0.1, clip_cov_lb=0.01, clip_cov_ub=5.0)     # not minirl's defaults
    torch.manual_seed(123)                                                      # the same random subset
    ours = run(clip_cov_loss, old, new, adv, mask.float(), "token-mean",
               ClipCovConfig(clip_ratio_low=0.2, clip_ratio_high=0.25, clip_ratio_c=3.0, **settings))
    torch.manual_seed(123)
    through_verl = run(core_algos.get_policy_loss_fn("minirl_clip_cov"), old, new, adv, mask, "token-mean",
                       actor(0.2, 0.25, 3.0, **settings))
    assert through_verl[2]["actor/clip_cov/n_detached"] >= 3                   # the subset rule is exercised
    assert_same(ours, through_verl)


def test_clip_cov_without_dual_clip_is_verl_clip_cov():
    old, new, adv, mask = random_batch(seed=2)
    register_verl_losses(prefix="minirl_nodual_", methods=["clip_cov"], settings={"clip_cov": {"clip_ratio_c": "none"}})
    config = actor(0.2, 0.2, 3.0, clip_cov_ratio=0.1, clip_cov_lb=0.01, clip_cov_ub=5.0)
    torch.manual_seed(7)
    ours = run(core_algos.get_policy_loss_fn("minirl_nodual_clip_cov"), old, new, adv, mask, "token-mean", config)
    torch.manual_seed(7)
    verl = run(core_algos.get_policy_loss_fn("clip_cov"), old, new, adv, mask, "token-mean", config)
    assert_same(ours, verl)


@pytest.mark.parametrize("mode", MODES)
def test_micro_batches_sum_to_the_global_batch_loss(mode):
    """verl sums micro-batch gradients, its losses divide by global counts: two micro-batches of the
    registered loss must add up to minirl's loss on the whole batch (and to verl's vanilla's split)."""
    old, new, adv, mask = random_batch(seed=4)
    whole = run(grpo_loss, old, new, adv, mask.float(), mode, PolicyLossConfig(0.2, 0.2, 3.0, loss_scale_factor=16))
    for name in ("minirl_grpo", "vanilla"):
        config = actor(loss_scale_factor=16)
        config.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=8,
                                        loss_scale_factor=16)
        parts = [run(core_algos.get_policy_loss_fn(name), old[rows], new[rows], adv[rows], mask[rows], mode, config)
                 for rows in (slice(0, 3), slice(3, 8))]
        if name == "vanilla" and mode == "seq-mean-token-sum-norm":
            continue                         # verl's is Σ/(B·L), minirl grpo's Σ/L (dr_grpo covers the B·L form)
        torch.testing.assert_close(parts[0][0] + parts[1][0], whole[0], **TOL)
        torch.testing.assert_close(torch.cat([parts[0][1], parts[1][1]]), whole[1], **TOL)


def test_dr_grpo_is_verl_seq_mean_token_sum_norm_over_micro_batches():
    old, new, adv, mask = random_batch(seed=5)
    whole = run(dr_grpo_loss, old, new, adv, mask.float(), "seq-mean-token-sum-norm",
                DrGRPOConfig(loss_scale_factor=16))
    config = actor(loss_scale_factor=16)
    config.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=8,
                                    loss_scale_factor=16)
    for name in ("minirl_dr_grpo", "vanilla"):
        parts = [run(core_algos.get_policy_loss_fn(name), old[rows], new[rows], adv[rows], mask[rows],
                     "seq-mean-token-sum-norm", config) for rows in (slice(0, 3), slice(3, 8))]
        torch.testing.assert_close(parts[0][0] + parts[1][0], whole[0], **TOL)


def test_accepts_an_omegaconf_config_and_verl_clip_ratio_fallback():
    """verl also passes DictConfigs; clip_ratio_low = None falls back on clip_ratio, as in verl."""
    from omegaconf import OmegaConf
    old, new, adv, mask = random_batch(seed=6)
    config = OmegaConf.create({"clip_ratio": 0.1, "clip_ratio_low": None, "clip_ratio_high": 0.3, "clip_ratio_c": 3.0,
                               "policy_loss": {"loss_mode": "minirl_grpo"}, "global_batch_info": {}})
    ours = run(grpo_loss, old, new, adv, mask.float(), "token-mean", PolicyLossConfig(0.1, 0.3, 3.0))
    assert_same(ours, run(core_algos.get_policy_loss_fn("minirl_grpo"), old, new, adv, mask, "token-mean", config))


def test_refusals_say_why():
    old, new, adv, mask = random_batch()
    fn = core_algos.get_policy_loss_fn("minirl_grpo")
    with pytest.raises(ValueError, match="token-sum"):
        fn(old, new, adv, mask, "token-sum", actor())
    with pytest.raises(ValueError, match="rollout_is_weights"):
        fn(old, new, adv, mask, "token-mean", actor(), rollout_is_weights=torch.ones_like(old))
    with pytest.raises(ValueError, match=r"'epo' cannot be a verl policy loss: it needs entropy.*grpo"):
        register_verl_losses(methods=["epo"])
    with pytest.raises(ValueError, match=r"'aepo' cannot .*batch-level"):
        register_verl_losses(methods=["aepo"])
    with pytest.raises(ValueError, match="unknown method 'clipcov'; choose one of: grpo"):
        register_verl_losses(methods=["clipcov"])
    core_algos.register_policy_loss("minirl_collide_grpo")(core_algos.get_policy_loss_fn("vanilla"))
    with pytest.raises(ValueError, match="already has a policy loss 'minirl_collide_grpo'"):
        register_verl_losses(prefix="minirl_collide_", methods=["grpo"])
