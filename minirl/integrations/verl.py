"""minirl's loss-level methods as verl policy losses: `policy_loss.loss_mode=minirl_<name>`.

    from minirl.integrations.verl import register_verl_losses
    register_verl_losses()        # in the process that builds verl's actor, before it trains
    # then: actor_rollout_ref.actor.policy_loss.loss_mode=minirl_clip_cov

verl 0.9.1 calls a policy loss (`verl/trainer/ppo/core_algos.py`, `PolicyLossFn`) as

    fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config: ActorConfig,
       rollout_is_weights=None) -> (pg_loss, pg_metrics)

Each registered function builds the method's config from verl's, calls `METHODS[name].policy_loss`
with an empty `LossExtras`, and rescales the result to verl's global normalisation (below).

Which methods. Only those that signature can feed: no `needs` (entropy, old_entropy, logits and
ref_log_prob never reach a verl policy loss), no `transform_batch` (batch-level), no `state_cls`
(verl has no end-of-step hook). `register_verl_losses()` returns the ones it registered; asking for
another by name raises an error that says why. With no rollout means in `LossExtras`, Clip-Cov and
KL-Cov centre their covariance on the micro-batch they are given, as verl's own losses do.

Settings. Each field of the method's config dataclass takes the first of:
  1. `settings[method][field]` given to `register_verl_losses` (strings as on the CLI, or values);
  2. verl's value of the same name: `config.policy_loss.<field>` (clip_cov_ratio, clip_cov_lb,
     clip_cov_ub, kl_cov_ratio, ppo_kl_coef), else `config.<field>` (clip_ratio_low/high, falling back
     on clip_ratio when None; clip_ratio_c; loss_scale_factor);
  3. the method's own default.
verl's ActorConfig is a strict dataclass, so minirl-only fields (llds's `no_reduce_lambda`, ...) can
only be set through `settings`. verl's actor always carries clip_ratio_low/high = 0.2 and
clip_ratio_c = 3.0, so `minirl_clip_cov` runs with PPO clipping at 0.2 and dual-clip at 3 (minirl's
own defaults: 1.0 and none; verl's `clip_cov`: 0.2 and none). For verl's `clip_cov` exactly, pass
`settings={"clip_cov": {"clip_ratio_c": None}}`.

Normalisation. verl 0.9.1's `agg_loss(loss_mat, mask, mode, dp_size, batch_num_tokens,
global_batch_size, loss_scale_factor)` computes, with n_i = Σ_t M_it and ⟦n_i > 0⟧ the rows holding
a token:

    token-mean               Σ M ℓ / batch_num_tokens · dp_size
    seq-mean-token-mean      Σ_i ⟦n_i > 0⟧ Σ_t M ℓ / (n_i + 1e-8) / global_batch_size · dp_size
    seq-mean-token-sum       Σ_i ⟦n_i > 0⟧ Σ_t M ℓ / global_batch_size · dp_size
    seq-mean-token-sum-norm  the same, / loss_scale_factor (None: the padded length T)
    token-sum                Σ M ℓ · dp_size

Called on one batch (empty `global_batch_info`, dp_size 1) the counts are that batch's: its valid
tokens and its rows holding a token, which is what `core.aggregate_loss` computes in each mode. In
verl's trainer (`verl/workers/utils/losses.py: ppo_loss`) they are global: dp_size is the number of
data-parallel ranks, batch_num_tokens the valid tokens of the whole mini-batch (summed over ranks
before the micro-batch split), global_batch_size = ppo_mini_batch_size × rollout.n (every row of the
mini-batch, empty or not); each micro-batch's loss is backpropagated, gradients add up over
micro-batches and are averaged over ranks, which the · dp_size undoes. A minirl loss is a mean over
the rows it is given, so the adapter multiplies it by

    local count / global count · dp_size

with count = valid tokens (token-mean) or rows holding a token (the seq-mean modes); minirl's
`seq-sum-token-sum-norm` (Σ M ℓ / L, which verl's config does not accept) sums: its factor is
dp_size. An empty `global_batch_info` leaves the loss as it is. The factor is exact for a loss that
is one aggregate in `loss_agg_mode`; a method that adds a term aggregated another way gets the same
factor. minirl has no `token-sum` aggregate, and a minirl loss cannot weight tokens after
aggregating: `loss_agg_mode=token-sum` and verl's rollout correction (`rollout_is_weights`) are
refused with an error.

Metrics: clip_frac → actor/pg_clipfrac, clip_frac_lower → actor/pg_clipfrac_lower, ppo_kl →
actor/ppo_kl, every other field → actor/<method>/<name> (pg_loss is left to verl, which logs it).

Install. verl 0.9.1 pins transformers<5.11 and imports ray at import time, so it lives in its own
environment (the TRL extra needs transformers 5.23). The recipe that imports
`verl.trainer.ppo.core_algos` and passes tests/test_parity_verl.py and tests/test_integration_verl.py
(tests/test_verl_env.py builds this environment and runs them there):

    python -m venv verlenv && . verlenv/bin/activate
    pip install torch==2.13.0 packaging numpy ray omegaconf codetiming \
        "tensordict>=0.8.0,<=0.10.0,!=0.9.0" "transformers>=5.5.3,<5.11,!=5.6.0"
                                                 # torch's CPU build is enough: the losses run on CPU
    pip install --no-deps verl==0.9.1
    pip install --no-deps -e .                   # minirl itself (its methods need only torch)
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..core import AGG_MODES
from ..methods import METHODS, LossExtras, Method

VERL_CLIP_KEYS = ("clip_ratio_low", "clip_ratio_high")
METRIC_NAMES = {"clip_frac": "actor/pg_clipfrac", "clip_frac_lower": "actor/pg_clipfrac_lower",
                "ppo_kl": "actor/ppo_kl"}
_MISSING = object()
_OURS: set[str] = set()          # verl names this module registered (so re-registering is allowed)


def verl_incompatibility(method: Method) -> str | None:
    """Why `method` cannot run as a verl policy loss, or None when it can."""
    if method.transform_batch is not None:
        return "it is batch-level (transform_batch): it changes what is trained on, which a loss cannot"
    if method.needs:
        return (f"it needs {', '.join(method.needs)}, which verl's policy-loss signature does not pass "
                "(old_log_prob, log_prob, advantages, response_mask only)")
    if method.state_cls is not None:
        return "it keeps state across steps (state_cls), and verl has no end-of-step hook to drive it"
    return None


def verl_compatible_methods() -> list[str]:
    """The minirl methods that can be registered with verl."""
    return [name for name, m in METHODS.items() if verl_incompatibility(m) is None]


def register_verl_losses(prefix: str = "minirl_", methods: list[str] | None = None,
                         settings: dict[str, dict] | None = None) -> dict[str, str]:
    """Register minirl methods with verl's policy-loss registry as `<prefix><name>`.

    `methods=None` registers every compatible method; a name that is unknown or cannot run in verl
    raises ValueError saying why. `settings` maps a method name to `{field: value}` overrides that
    win over verl's config (see the module docstring). Returns {verl name: minirl method name}.
    """
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss  # optional: verl

    compatible = verl_compatible_methods()
    for name in list(methods or []) + list(settings or {}):
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(compatible)}")
        why = verl_incompatibility(METHODS[name])
        if why:
            raise ValueError(f"minirl method {name!r} cannot be a verl policy loss: {why}. "
                             f"Methods verl can run: {', '.join(compatible)}")
    registered = {}
    for name in methods or compatible:
        verl_name = f"{prefix}{name}"
        if verl_name in POLICY_LOSS_REGISTRY and verl_name not in _OURS:
            raise ValueError(f"verl already has a policy loss {verl_name!r} that minirl did not register; "
                             "choose another prefix")
        overrides = dict((settings or {}).get(name, {}))
        METHODS[name].make_config(overrides)                   # unknown or mistyped settings fail now
        register_policy_loss(verl_name)(_verl_loss(METHODS[name], overrides))
        _OURS.add(verl_name)
        registered[verl_name] = name
    return registered


def _verl_loss(method: Method, overrides: dict):
    """A function with verl's PolicyLossFn signature (verl's names and order, old log-probs first) that
    runs `method` (minirl's: `logp, old_logp, adv, mask`, new first)."""

    def policy_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode: str = "token-mean",
                    config=None, rollout_is_weights=None) -> tuple[torch.Tensor, dict[str, Any]]:
        if rollout_is_weights is not None:
            raise ValueError(f"minirl method {method.name!r} cannot apply verl's rollout correction weights "
                             "(rollout_is_weights); turn algorithm.rollout_correction off for this loss")
        if loss_agg_mode not in AGG_MODES:
            raise ValueError(f"minirl method {method.name!r} has no loss_agg_mode {loss_agg_mode!r}; "
                             f"choose one of: {', '.join(AGG_MODES)}")
        method_config = method.make_config({**_from_verl(method, config), **overrides})
        logp, old_logp, adv = log_prob, old_log_prob, advantages               # verl's names -> minirl's
        mask = response_mask.to(logp.dtype)
        loss, metrics = method.policy_loss(logp, old_logp, adv, mask, loss_agg_mode, method_config, LossExtras())
        info = _get(config, "global_batch_info", None) or {}
        loss = loss * _global_scale(mask, loss_agg_mode, info)
        return loss, {METRIC_NAMES.get(k, f"actor/{method.name}/{k}"): v for k, v in metrics.items()
                      if k != "pg_loss"}

    policy_loss.__name__ = f"minirl_{method.name}_loss"
    policy_loss.__doc__ = f"minirl's {method.name!r} ({method.summary}) with verl's policy-loss signature."
    return policy_loss


def _from_verl(method: Method, config) -> dict:
    """Values of verl's config whose names are fields of the method's config (policy_loss first)."""
    if config is None:
        return {}
    fields = [f.name for f in dataclasses.fields(method.config_cls)]
    policy_loss = _get(config, "policy_loss", None)
    found = {}
    for field in fields:
        value = _get(policy_loss, field, _MISSING) if policy_loss is not None else _MISSING
        if value is _MISSING:
            value = _get(config, field, _MISSING)
        if value is None and field in VERL_CLIP_KEYS:
            value = _get(config, "clip_ratio", _MISSING)      # verl: low/high fall back on clip_ratio
        if value is not _MISSING:
            found[field] = value
    return found


def _global_scale(mask: torch.Tensor, mode: str, info: dict):
    """local count / global count · dp_size: turns a minirl mean over these rows into this
    micro-batch's share of verl's mean over the global batch (module docstring)."""
    dp_size = info.get("dp_size") or 1
    if mode == "seq-sum-token-sum-norm":
        return dp_size                                         # Σ M ℓ / L: a sum, no count to replace
    if mode == "token-mean":
        local, total = mask.sum(), info.get("batch_num_tokens")
    else:
        local, total = (mask.sum(dim=-1) > 0).sum(), info.get("global_batch_size")
    if total is None:
        if dp_size > 1:
            raise ValueError(f"verl gave dp_size={dp_size} but no global count for {mode!r} "
                             "(global_batch_info needs batch_num_tokens / global_batch_size)")
        return 1.0
    return local / total * dp_size


def _get(obj, key: str, default=_MISSING):
    """obj.key for verl's BaseConfig, an OmegaConf DictConfig or a dict; `default` when absent."""
    if obj is None:
        return default
    if hasattr(obj, "get"):
        return obj.get(key, default)
    return getattr(obj, key, default)
