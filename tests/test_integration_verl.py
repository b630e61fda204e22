"""minirl's methods registered as verl policy losses (minirl/integrations/verl.py) compute minirl's loss.

Skipped unless verl is importable: verl 0.9.1 pins transformers<5.11 and imports ray, so it lives in
its own environment, which tests/test_verl_env.py builds to run this file. Each test calls the
registered loss the way verl does, through `get_policy_loss_fn(name)(..., config=ActorConfig)`, and
compares it with minirl's own function (or with verl's own loss) on the same tensors: values and
gradients to 1e-6, in every aggregation mode verl and minirl share.
"""
import pytest
import torch

core_algos = pytest.importorskip("verl.trainer.ppo.core_algos",
                                 reason="verl is not installed (it needs its own venv: minirl/integrations/verl.py)")
verl_config = pytest.importorskip("verl.workers.config", reason="verl is not installed")

from minirl.integrations.verl import register_verl_losses, verl_compatible_methods  # noqa: E402
from minirl.methods import METHODS  # noqa: E402
from minirl.methods.clip_cov import ClipCovConfig, clip_cov_loss  # noqa: E402
from minirl.methods.dr_grpo import DrGRPOConfig, dr_grpo_loss  # noqa: E402
from minirl.methods.grpo import grpo_loss  # noqa: E402
from minirl.methods.registry import LossExtras, PolicyLossConfig  # noqa: E402

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


def random_batch(seed=0, B=8, T=12, empty_row=None):
    """Ragged responses (non-empty, but for `empty_row`), one advantage per sequence, a policy that
    moved ~0.3 nats a token."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    if empty_row is not None:
        lengths[empty_row] = 0
    mask = torch.arange(T)[None, :] < lengths[:, None]                                 # (B, T) bool, as verl
    old = -torch.rand(B, T, generator=g) * 3.0
    new = old + 0.3 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, 1, generator=g).expand(B, T) * mask
    return old, new, adv, mask


def run(fn, old, new, adv, mask, *args, **kwargs):
    """(loss, d loss / d log_prob, metrics) of a verl policy loss, called as verl calls it: old log-probs first."""
    return loss_and_grad(lambda logp: fn(old, logp, adv, mask, *args, **kwargs), new)


def run_ours(fn, old, new, adv, mask, *args, **kwargs):
    """The same for a minirl method loss, called in minirl's order: (logp, old_logp, adv, mask, ...)."""
    return loss_and_grad(lambda logp: fn(logp, old, adv, mask, *args, **kwargs), new)


def loss_and_grad(loss_of, new):
    logp = new.clone().requires_grad_(True)
    loss, metrics = loss_of(logp)
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
    ours = run_ours(grpo_loss, old, new, adv, mask.float(), mode, PolicyLossConfig(0.2, 0.28, 3.0))
    through_verl = run(core_algos.get_policy_loss_fn("minirl_grpo"), old, new, adv, mask, mode,
                       actor(0.2, 0.28, 3.0))
    assert_same(ours, through_verl)
    assert through_verl[2]["actor/pg_clipfrac"] == pytest.approx(ours[2]["clip_frac"])


@pytest.mark.parametrize("mode", MODES)
def test_minirl_grpo_agrees_with_verl_vanilla(mode):
    old, new, adv, mask = random_batch(seed=3, empty_row=2)
    config = actor(0.2, 0.28, 3.0)
    assert_same(run(core_algos.get_policy_loss_fn("minirl_grpo"), old, new, adv, mask, mode, config),
                run(core_algos.get_policy_loss_fn("vanilla"), old, new, adv, mask, mode, config))


def test_clip_cov_through_verl_takes_verl_settings():
    old, new, adv, mask = random_batch(seed=1)
    settings = dict(clip_cov_ratio=0.1, clip_cov_lb=0.01, clip_cov_ub=5.0)     # not minirl's defaults
    torch.manual_seed(123)                                                      # the same random subset
    ours = run_ours(clip_cov_loss, old, new, adv, mask.float(), "token-mean",
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
    whole = run_ours(grpo_loss, old, new, adv, mask.float(), mode, PolicyLossConfig(0.2, 0.2, 3.0, loss_scale_factor=16))
    for name in ("minirl_grpo", "vanilla"):
        config = actor(loss_scale_factor=16)
        config.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=8,
                                        loss_scale_factor=16)
        parts = [run(core_algos.get_policy_loss_fn(name), old[rows], new[rows], adv[rows], mask[rows], mode, config)
                 for rows in (slice(0, 3), slice(3, 8))]
        torch.testing.assert_close(parts[0][0] + parts[1][0], whole[0], **TOL)
        torch.testing.assert_close(torch.cat([parts[0][1], parts[1][1]]), whole[1], **TOL)


def test_dr_grpo_is_verl_seq_mean_token_sum_norm_over_micro_batches():
    old, new, adv, mask = random_batch(seed=5)
    whole = run_ours(dr_grpo_loss, old, new, adv, mask.float(), "seq-mean-token-sum-norm",
                DrGRPOConfig(loss_scale_factor=16))
    config = actor(loss_scale_factor=16)
    config.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=8,
                                    loss_scale_factor=16)
    for name in ("minirl_dr_grpo", "vanilla"):
        parts = [run(core_algos.get_policy_loss_fn(name), old[rows], new[rows], adv[rows], mask[rows],
                     "seq-mean-token-sum-norm", config) for rows in (slice(0, 3), slice(3, 8))]
        torch.testing.assert_close(parts[0][0] + parts[1][0], whole[0], **TOL)


# verl's and minirl's names for the settings of each plug-in, at values that are no one's default
PLUG_IN_SETTINGS = {"clip_cov": dict(clip_cov_ratio=0.1, clip_cov_lb=0.01, clip_cov_ub=5.0),
                    "kl_cov": dict(kl_cov_ratio=0.1, ppo_kl_coef=0.5)}


def test_every_compatible_method_is_registered(registered):
    assert sorted(registered.values()) == sorted(verl_compatible_methods())
    assert set(verl_compatible_methods()) >= {"grpo", "clip_cov", "kl_cov", "dapo", "dr_grpo", "llds"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", verl_compatible_methods())
def test_every_plug_in_is_its_minirl_method(name, mode):
    """Through verl (verl's settings, one batch with an empty row) = minirl's policy_loss."""
    old, new, adv, mask = random_batch(seed=7, empty_row=5)
    settings = PLUG_IN_SETTINGS.get(name, {})
    method = METHODS[name]
    config = method.make_config({})
    for key, value in dict(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, loss_scale_factor=16,
                           **settings).items():
        setattr(config, key, value)
    torch.manual_seed(11)                                    # Clip-Cov's random subset
    ours = run_ours(method.policy_loss, old, new, adv, mask.float(), mode, config, LossExtras())
    torch.manual_seed(11)
    through_verl = run(core_algos.get_policy_loss_fn(f"minirl_{name}"), old, new, adv, mask, mode,
                       actor(0.2, 0.28, 3.0, loss_scale_factor=16, **settings))
    assert_same(ours, through_verl)
    for key in ("clip_frac", "ppo_kl"):
        if key in ours[2]:
            assert through_verl[2][{"clip_frac": "actor/pg_clipfrac", "ppo_kl": "actor/ppo_kl"}[key]] == \
                pytest.approx(ours[2][key], abs=1e-6)


@pytest.mark.parametrize("name,mode", [(name, mode) for name in ("grpo", "dapo", "dr_grpo") for mode in MODES]
                         + [("llds", "token-mean")])
def test_plug_ins_sum_like_verl_over_micro_batches_and_ranks(name, mode):
    """verl's trainer: 2 data-parallel ranks × 2 micro-batches of a mini-batch of 8 rows (one empty),
    global counts in `global_batch_info`, gradients summed over micro-batches and averaged over ranks.
    The plug-in gives the same loss and gradient as verl's vanilla loss there; without an empty
    row both are minirl's loss on the whole mini-batch. Left out: Clip-Cov and KL-Cov, whose token
    loss depends on the micro-batch (verl's centre per micro-batch too), and LLDS in the seq-mean
    modes, whose token-mean penalty the adapter scales by the PG term's count (module docstring)."""
    for empty_row in (3, None):
        old, new, adv, mask = random_batch(seed=8, empty_row=empty_row)
        config = actor(loss_scale_factor=16)
        config.global_batch_info.update(dp_size=2, batch_num_tokens=int(mask.sum()), global_batch_size=8,
                                        loss_scale_factor=16)
        results = []
        for fn in (core_algos.get_policy_loss_fn(f"minirl_{name}"), core_algos.get_policy_loss_fn("vanilla")):
            parts = [run(fn, old[rows], new[rows], adv[rows], mask[rows], mode, config)
                     for rows in (slice(0, 1), slice(1, 4), slice(4, 6), slice(6, 8))]     # rank 0: 2 parts, rank 1: 2
            results.append((sum(p[0] for p in parts) / 2, torch.cat([p[1] for p in parts]) / 2))
        if name != "llds":                                   # LLDS adds its own term: no vanilla counterpart
            assert_same(results[0], results[1])
        if empty_row is None:
            whole_config = METHODS[name].make_config({})
            for key, value in dict(clip_ratio_low=0.2, clip_ratio_high=0.2, clip_ratio_c=3.0,
                                   loss_scale_factor=16).items():
                setattr(whole_config, key, value)
            whole = run_ours(METHODS[name].policy_loss, old, new, adv, mask.float(), mode, whole_config, LossExtras())
            assert_same(results[0], whole)


def test_accepts_an_omegaconf_config_and_verl_clip_ratio_fallback():
    """verl also passes DictConfigs; clip_ratio_low = None falls back on clip_ratio, as in verl."""
    from omegaconf import OmegaConf
    old, new, adv, mask = random_batch(seed=6)
    config = OmegaConf.create({"clip_ratio": 0.1, "clip_ratio_low": None, "clip_ratio_high": 0.3, "clip_ratio_c": 3.0,
                               "policy_loss": {"loss_mode": "minirl_grpo"}, "global_batch_info": {}})
    ours = run_ours(grpo_loss, old, new, adv, mask.float(), "token-mean", PolicyLossConfig(0.1, 0.3, 3.0))
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
