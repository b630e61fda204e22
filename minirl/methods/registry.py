"""One registry of entropy interventions, reached the same way by the CLI, notebooks and tests.

A loss-level method is a pure function of the new and the old log-probs, the advantages and the
mask, in the names and order of `minirl.core` (new before old, as in `core.ppo_clip_token_loss`):

    policy_loss(logp, old_logp, adv, mask, agg_mode, config, extra: LossExtras) -> (loss, metrics)

All tensors are (B, T); `agg_mode` is one of `core.AGG_MODES`. `config` is the method's own
dataclass (fields settable from the CLI with `--set name=value`). Most losses start from
`core.ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)` and show only what they change.
verl calls its policy losses with its own names and order, `(old_log_prob, log_prob, advantages,
response_mask, loss_agg_mode, config)`: `minirl.integrations.verl` translates at that boundary.
Methods that need more than log-probs declare it in `needs`, and the trainer fills the matching
field of `extra`; a method never reaches into the trainer.

State that must survive steps (a running history, a controller) lives in a `MethodState`
object: the trainer makes one per run (`state_cls`), hands it to every loss call as
`extra.state`, calls `end_step(metrics)` once per step, and saves and restores it with the
run's checkpoints.

A method that changes *what is trained on* (extra samples, replaced rows, new advantages) also
gives a `transform_batch` function, called once per step between the advantages and the update:

    transform_batch(rollout, rewards, advantages, config, ctx: BatchContext)
        -> (rollout, advantages, metrics)

`advantages` come in per sequence (B,) and may go out per sequence or per token (B, T) (for
methods that shape advantages token by token); `ctx` lets it sample more completions of the
step's prompts, or continue rows of the batch from a prefix, without knowing how the trainer
samples.

A method that changes *how* the step's completions are sampled (branching trees, search) gives a
`sample_groups` function instead, which replaces the trainer's sampler for training (evaluation
keeps plain sampling, so pass@k still measures the policy):

    sample_groups(examples, config, ctx: SamplingContext) -> (rollout, tokens_sampled, metrics)

It returns G rows per example (group g = rows g·G … g·G+G−1) with `old_log_prob` and `entropy` of
π_old at the training temperature, and the number of tokens it generated to get them.

Your own method registers itself the same way from your own module; name it by the module path of
its loss function (`--method mypkg.methods:my_loss`, a grid's `method: mypkg.methods:my_loss`),
which imports the module, or import the module (`--import mypkg.methods`) and use its name
(docs/your_own_task.md). Defining a method again under its name (a notebook cell run twice)
replaces it; another function under a taken name is refused.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..user_code import is_address, load_object

NEEDS = ("entropy", "old_entropy", "logits", "ref_log_prob")


@dataclass
class PolicyLossConfig:
    """PPO-clip settings shared by every method (verl's names)."""

    clip_ratio_low: float = 0.2
    """ε_low: the ratio is clipped below at 1 − ε_low."""
    clip_ratio_high: float = 0.2
    """ε_high: the ratio is clipped above at 1 + ε_high (DAPO's clip-higher raises it)."""
    clip_ratio_c: float | None = 3.0
    """Dual-clip bound c for negative advantages (verl default 3.0); None turns it off."""
    loss_scale_factor: float | None = None
    """L_const of `seq-mean-token-sum-norm`; None: the trainer fills in the task's maximum
    response length (a direct call with None divides by the padded length T)."""


class MethodState:
    """Base of a method's cross-step state. Plain attributes are checkpointed as they are."""

    def end_step(self, metrics: dict) -> dict:
        """Called once after each training step with its metrics; returns extra metrics to log."""
        return {}

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


@dataclass
class LossExtras:
    """What a method may ask for besides log-probs. Unrequested fields stay None."""

    entropy: torch.Tensor | None = None        # (B, T) full-vocabulary entropy under π_θ, with gradient
    old_entropy: torch.Tensor | None = None    # (B, T) entropy under π_old, from the rollout (no gradient)
    logits: torch.Tensor | None = None         # (B, T, V) temperature-scaled logits of π_θ
    ref_log_prob: torch.Tensor | None = None   # (B, T) log-probs under the frozen reference
    batch_mean_log_prob: float | None = None   # mean old log-prob over the whole rollout's valid tokens
    batch_mean_advantage: float | None = None  # mean advantage over the whole rollout's valid tokens
    step: int = 0                              # the training step, for scheduled methods
    rows: torch.Tensor | None = None           # (B,) which rows of the step's trained batch these are
    state: MethodState | None = None           # the method's cross-step state, if it has one

    def rollout_means(self) -> tuple[float, float] | None:
        """(mean old logp, mean A) over the whole rollout, when the trainer gave them."""
        if self.batch_mean_log_prob is None:
            return None
        return self.batch_mean_log_prob, self.batch_mean_advantage


@dataclass
class BatchContext:
    """What a `transform_batch` function may use besides the batch itself."""

    sample: Callable
    """sample(groups, temperature) -> (rollout, rewards): G fresh completions of each listed
    group's prompt (group g = rows g·G … g·G+G−1 of the step's batch), drawn at `temperature`
    (None: the training temperature) and rewarded by the task; their `old_log_prob` and
    `entropy` are those of π_old at the training temperature, as the update needs."""
    group_size: int
    scale_adv_by_std: bool
    pad_id: int
    step: int
    state: "MethodState | None" = None
    examples: list = field(default_factory=list)
    """The task's example of each group of the batch (prompt and whatever the reward needs)."""
    continue_rows: Callable | None = None
    """continue_rows(rows, prefix_ids, n, temperature=None) -> (rollout, rewards): n completions of
    each listed batch row's prompt that start with the given response tokens (one list per row;
    n rows per listed row, next to each other), scored like `sample`; `rollout.prefix_len` says
    how many response tokens were given rather than sampled."""
    tokenizer: object = None
    task: object = None
    """The run's `Task`: its `answer_of` (label-free votes) and `info["segment"]` (steps, phases)."""
    answer_of: Callable | None = None
    """task.answer_of, for short."""
    segment: Callable | None = None
    """task.info["segment"](completion, example) -> steps and phases (stepwise tasks), else None."""
    model: object = None
    """The policy (read-only use: e.g. its hidden states as embeddings; never train it here)."""
    score: Callable | None = None
    """score(rollout) -> rollout with `old_log_prob` and `entropy` recomputed under the current
    policy at the training temperature (for rows sampled in earlier steps, e.g. a replay buffer)."""


@dataclass
class SamplingContext:
    """What a `sample_groups` function may use: the policy and the run's sampling settings."""

    model: object
    tokenizer: object
    task: object
    group_size: int
    temperature: float
    top_p: float
    chunk_rows: int | None = None
    step: int = 0
    state: "MethodState | None" = None


@dataclass
class Method:
    name: str
    policy_loss: Callable
    config_cls: type = PolicyLossConfig
    default_agg_mode: str = "token-mean"
    needs: tuple[str, ...] = ()
    summary: str = ""
    state_cls: type | None = None
    train_defaults: dict = field(default_factory=dict)
    """TrainConfig fields this method changes unless the user sets them (e.g. Dr. GRPO turns
    off std scaling of advantages, DAPO turns on dynamic sampling)."""
    transform_batch: Callable | None = None
    """Optional batch-level step (see the module docstring); None for pure loss methods."""
    sample_groups: Callable | None = None
    """Optional sampler of the step's groups (see the module docstring); None: the trainer's own."""
    acts_without_advantages: Callable | None = None
    """acts_without_advantages(config) -> bool: True when the loss has a term that moves the policy
    even where every advantage is zero (an entropy bonus, a KL pull to a reference). The trainer
    skips the optimizer steps of a step whose advantages are all zero unless this says True (or the
    run's kl_coef > 0): a batch without signal leaves the policy as it was. None: no such term."""
    own_kl_setting: str | None = None
    """The method's own setting of a KL term to the reference (kl_ref: `kl_loss_coef`): the run's
    `kl_coef` must then stay 0, or the KL would be counted twice (config.validate refuses it)."""

    def make_config(self, overrides: dict[str, str] | None = None):
        """The method's config with `name=value` strings from the CLI applied (type-checked)."""
        config = self.config_cls()
        fields = {f.name: f for f in dataclasses.fields(config)}
        for key, raw in (overrides or {}).items():
            if key not in fields:
                raise ValueError(f"method {self.name!r} has no setting {key!r}; choose one of: "
                                 f"{', '.join(fields)}")
            setattr(config, key, parse_value(key, raw, getattr(config, key)))
        return config


METHODS: dict[str, Method] = {}


def register_method(name: str, config_cls: type = PolicyLossConfig, default_agg_mode: str = "token-mean",
                    needs: tuple[str, ...] = (), summary: str = "", state_cls: type | None = None,
                    train_defaults: dict | None = None, transform_batch: Callable | None = None,
                    sample_groups: Callable | None = None, acts_without_advantages: Callable | None = None,
                    own_kl_setting: str | None = None):
    """Decorator: `@register_method("grpo", summary=...)` above a policy-loss function."""
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown needs {sorted(unknown)}; choose from: {', '.join(NEEDS)}")

    def wrap(fn: Callable) -> Callable:
        first = next(iter(inspect.signature(fn).parameters), None)
        if first in ("old_log_prob", "old_logp"):       # verl's order (old, new) would swap the two silently
            raise ValueError(f"method {name!r}: a policy loss takes (logp, old_logp, adv, mask, agg_mode, config, "
                             f"extra), the new log-probs first; {fn.__name__} starts with {first!r}")
        if name in METHODS and not _same_function(METHODS[name].policy_loss, fn):   # a cell run again replaces
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = Method(name, fn, config_cls, default_agg_mode, tuple(needs),
                               summary or next(iter((fn.__doc__ or "").strip().splitlines()), ""), state_cls,
                               dict(train_defaults or {}), transform_batch, sample_groups, acts_without_advantages,
                               own_kl_setting)
        return fn
    return wrap


def get_method(name: str) -> Method:
    """The method registered as `name`, or your own by its module path 'mypkg.methods:my_loss': the
    module is imported (its `@register_method` runs) and `my_loss` is the function it registered (or
    the name it registered it under)."""
    if is_address(name):
        module_name, _, attribute = name.partition(":")
        try:
            found = load_object(name, "method")                   # imports the module: its @register_method runs
        except ValueError:
            registered = METHODS.get(attribute)                    # 'mypkg.methods:my_method', its registered name
            if registered is not None and registered.policy_loss.__module__ == module_name:
                return registered
            raise
        for method in METHODS.values():
            if found is method or method.policy_loss is found:
                return method
        raise ValueError(f"method {name!r} is not a registered method: decorate {name.partition(':')[2]} with "
                         "@minirl.methods.register_method('a_name', ...) in its module")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def _same_function(old: Callable, new: Callable) -> bool:
    """The same function defined again (a notebook cell or a module run twice), not another one."""
    return all(getattr(old, a, None) == getattr(new, a, None) for a in ("__module__", "__qualname__"))


def parse_value(key: str, raw, current):
    """`raw` (a string from `--set` or a grid) as the type of the setting's `current` value."""
    if not isinstance(raw, str):
        return raw
    if raw.lower() == "none":
        return None
    if isinstance(current, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"setting {key}={raw!r} is not a boolean; use true or false")
    for kind in (int, float):
        if isinstance(current, kind) or current is None:
            try:
                return kind(raw)
            except ValueError:
                continue
    if isinstance(current, (int, float)):
        raise ValueError(f"setting {key}={raw!r} is not a number")
    return raw
