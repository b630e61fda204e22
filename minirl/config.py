"""Run settings: one dataclass, and the profiles that fill in sizes for a machine."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from .core import AGG_MODES, KL_ESTIMATORS
from .methods import get_method
from .profiles import PROFILES, get_profile
from .tasks import task_factory

BACKENDS = ("tiny", "hf")
SEED_STRIDE = 1_000_003
"""Step t of a run with seed s draws from torch.manual_seed(s·SEED_STRIDE + t) (see `step_seed`)."""
EVAL_SEED_OFFSET = 10**6
"""The evaluation after step t draws from step_seed(s, EVAL_SEED_OFFSET + t)."""
SEED_LIMIT = 2**63
"""Every seed drawn must stay below 2**63 (a signed 64-bit integer, as torch's generators take)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on. Its JSON copy sits next to the run's metrics."""

    method: str = "grpo"
    """Entropy intervention from `minirl.METHODS`, or your own as 'mypkg.methods:my_loss'."""
    task: str = "countdown"
    """Task from `minirl.tasks.TASKS`, or your own as 'package.module:attribute' (docs/your_own_task.md)."""
    profile: str = "cpu"
    """`smoke` (seconds, CI), `cpu` (the real CPU demonstration), `gpu` (a real Qwen model)."""
    steps: int = 200
    """Training steps; each is one rollout followed by `num_mini_batches` optimizer updates."""
    seed: int = 0
    """Seeds the prompt order, sampling and mini-batch shuffles, step by step."""
    backend: str = "tiny"
    """`tiny`: the small Qwen2 on a CPU (`init` = a folder; None takes the shipped warm start of
    task and profile). `hf`: a real checkpoint in 4-bit LoRA (`init` = hub name or local folder)."""
    init: str | None = None
    """The starting policy (see `backend`)."""
    load_in_4bit: bool = True
    """hf backend: quantise the base model to 4-bit NF4 (QLoRA); False keeps it in 16/32 bits."""
    lora_r: int = 16
    """hf backend: rank of the LoRA adapter on every attention and MLP projection."""
    lora_alpha: int = 32
    gradient_checkpointing: bool = True
    """hf backend: recompute activations in the backward pass (less memory, ~30 % more time)."""
    prompts_per_step: int = 32
    group_size: int = 8
    """G: completions sampled per prompt; advantages are normalised within each group."""
    temperature: float = 1.0
    top_p: float = 1.0
    lr: float = 2e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_mini_batches: int = 4
    """Optimizer updates per rollout (per epoch); after the first the importance ratio moves."""
    micro_batch_size: int | None = None
    """Rows per forward/backward pass (gradient accumulation within a mini-batch) and per no-grad
    scoring pass; None: a whole mini-batch at once. A real vocabulary needs it: 16 rows × 512
    tokens of Qwen's 151,936-token logits are 5 GB in float32."""
    ppo_epochs: int = 1
    loss_agg_mode: str | None = None
    """One of core.AGG_MODES; None takes the method's default."""
    scale_adv_by_std: bool = True
    """Divide group-centred rewards by the group's std (GRPO); False is Dr. GRPO."""
    kl_coef: float = 0.0
    """β of an added β·KL(π_θ‖π_ref) term to the warm start; 0 turns it (and the reference) off."""
    kl_estimator: str = "k3"
    """Estimator of the `kl_coef` term (core.kl_penalty): k1, k2 or k3. Not kl_ref's own setting of the
    same name (`--set kl_ref.kl_estimator=k3+`), which also takes verl's straight-through forms."""
    dynamic_sampling: bool = False
    """DAPO's dynamic sampling: drop groups whose rewards are all equal and sample more prompts
    until the batch is full of groups that teach something (or `max_gen_batches` is reached,
    then fill up with the dropped groups)."""
    max_gen_batches: int = 3
    eval_every: int = 20
    """Steps between evaluations of pass@1 and pass@k on the fixed eval set."""
    eval_prompts: int = 128
    eval_samples: int = 16
    """n: samples per eval prompt for the unbiased pass@k estimator."""
    eval_k: int = 8
    checkpoint_every: int = 25
    share_prompt_update: bool = True
    """Run each distinct prompt of a mini-batch once in the update's forward and backward pass
    (rollout.shared_prompt_forward), with mini-batches of whole groups, and once when the reference model
    or the updated policy scores the step's rows: the same loss, gradients and scores up to float rounding
    (~1e-6), in less time. False: every row runs its own copy of its prompt, in mini-batches of shuffled
    rows, as runs made before this setting existed did (the shipped grids among them)."""
    fused_adamw: bool = True
    """Take AdamW's fused kernel (one pass over all weights; torch's `fused=True`): the same update up to
    float rounding, in a fraction of the time. False: torch's default loop over the weights one by one,
    as runs made before this setting existed did."""
    track_entropy_change: bool = False
    """Also measure `batch_entropy_change`: the entropy of the step's own sampled positions
    after the update minus before (one extra forward pass). It is the quantity that the
    covariance law predicts, free of the prompt-to-prompt noise of `entropy_delta`."""
    law_diagnostics: bool = False
    """Also check the entropy law on the network at every step (minirl/law_check.py): the
    first-order prediction ⟨∇_θ H̄, Δθ⟩ of the update actually applied, the lemma with the
    realised logit change, and the exact entropy change, on the step's own tokens (one extra
    forward and backward pass before the update, two forward passes after it). Off, the run is
    exactly as without it; on, only the `law_*` metrics are added."""
    method_settings: dict = field(default_factory=dict)
    """`name=value` settings of the method's own config (`--set` on the CLI; minirl.settings says which
    name goes where)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, check_task: bool = True) -> "TrainConfig":
        """Refuse any value a run cannot use, with one line naming the field, the value and what is
        allowed (ValueError). `make_config` and `Trainer` call it; `check_task=False` when the
        trainer is handed its own Task object. Returns the config."""
        _check_names(self, check_task)
        for name, least in WHOLE_AT_LEAST.items():
            _whole(name, getattr(self, name), least, optional=name in OPTIONAL)
        for name, (low, high, low_open) in NUMBER_RANGES.items():
            _number(name, getattr(self, name), low, high, low_open)
        for name in FLAGS:
            if not isinstance(getattr(self, name), bool):
                _refuse(name, getattr(self, name), "give true or false")
        _check_sizes(self)
        _check_method(self)
        return self


def make_config(profile: str = "cpu", **overrides) -> TrainConfig:
    """A TrainConfig with the run profile's settings (minirl.profiles.PROFILES), the method's defaults on
    top, then `overrides`."""
    profile_settings = get_profile(profile).train
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; choose from: {', '.join(sorted(fields))}")

    method_defaults = get_method(overrides.get("method", "grpo")).train_defaults
    config = TrainConfig(profile=profile, **{**profile_settings, **method_defaults, **overrides})
    return config.validate()


def step_seed(seed: int, step: int) -> int:
    """The seed of step `step` of a run seeded `seed` (evaluations use EVAL_SEED_OFFSET + step)."""
    return seed * SEED_STRIDE + step


def max_seed(steps: int) -> int:
    """The largest run seed whose every step and evaluation seed stays below SEED_LIMIT."""
    return (SEED_LIMIT - 1 - EVAL_SEED_OFFSET - steps) // SEED_STRIDE


# ---------------------------------------------------------------- what each field allows
WHOLE_AT_LEAST = {"steps": 1, "seed": 0, "prompts_per_step": 1, "group_size": 2, "num_mini_batches": 1,
                  "micro_batch_size": 1, "ppo_epochs": 1, "max_gen_batches": 1, "eval_every": 1, "eval_prompts": 1,
                  "eval_samples": 1, "eval_k": 1, "checkpoint_every": 1, "lora_r": 1}
"""Whole-number fields and their least value (group_size ≥ 2: a group of one has no advantage)."""
OPTIONAL = ("micro_batch_size",)
"""Fields that also take None."""
NUMBER_RANGES = {"lr": (0, math.inf, True), "temperature": (0, math.inf, True), "top_p": (0, 1, True),
                 "weight_decay": (0, math.inf, False), "max_grad_norm": (0, math.inf, True),
                 "kl_coef": (0, math.inf, False), "lora_alpha": (0, math.inf, True)}
"""Real-number fields: (low, high, low excluded); every one must be finite."""
FLAGS = ("load_in_4bit", "gradient_checkpointing", "scale_adv_by_std", "dynamic_sampling", "share_prompt_update",
         "fused_adamw", "track_entropy_change", "law_diagnostics")

BEFORE_THE_FIELD = {"share_prompt_update": False, "fused_adamw": False}
"""What a run saved before TrainConfig had one of these fields ran with, where that differs from the
field's default; any other field added later defaults to the earlier behaviour (`value_before_field`)."""


def value_before_field(key: str):
    """The value of TrainConfig's field `key` that a config saved before the field existed stands for:
    BEFORE_THE_FIELD's, else the field's default; "<missing>" for a name that is no field."""
    if key in BEFORE_THE_FIELD:
        return BEFORE_THE_FIELD[key]
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}.get(key, dataclasses.MISSING)
    return "<missing>" if default is dataclasses.MISSING else json.loads(json.dumps(default))


def _refuse(name: str, value, allowed: str):
    raise ValueError(f"{name}={value!r} is not allowed: {allowed}")


def _whole(name: str, value, least: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        _refuse(name, value, f"give a whole number ≥ {least}" + (" or None" if optional else ""))


def _number(name: str, value, low: float, high: float, low_open: bool) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if low_open else value >= low) and value <= high)
    if not ok:
        above = f"> {low}" if low_open else f"≥ {low}"
        _refuse(name, value, f"give a finite number {above}" + (f" and ≤ {high}" if math.isfinite(high) else ""))


def _choose(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}")


def _check_names(config: TrainConfig, check_task: bool) -> None:
    get_method(config.method)
    _choose("profile", config.profile, PROFILES)
    _choose("backend", config.backend, BACKENDS)
    if check_task:
        task_factory(config.task)                            # a registered name, or a module path that resolves
    if config.loss_agg_mode is not None:
        _choose("loss_agg_mode", config.loss_agg_mode, AGG_MODES)
    _choose("kl_estimator", config.kl_estimator, KL_ESTIMATORS)
    if config.init is not None and not isinstance(config.init, str):
        _refuse("init", config.init, "give a folder or hub name (a string), or None")
    if config.backend == "hf" and config.init is None:
        raise ValueError("backend 'hf' needs init = a hub name or a local model folder")


def _check_sizes(config: TrainConfig) -> None:
    """Fields whose range depends on another field."""
    n_rows = config.prompts_per_step * config.group_size
    if n_rows % config.num_mini_batches:
        raise ValueError(f"num_mini_batches={config.num_mini_batches} must divide prompts_per_step*group_size={n_rows}")
    if config.eval_k > config.eval_samples:
        _refuse("eval_k", config.eval_k, f"give a whole number from 1 to eval_samples={config.eval_samples} "
                                         "(pass@k needs k ≤ n samples)")
    if config.seed > max_seed(config.steps):
        _refuse("seed", config.seed, f"give a whole number from 0 to {max_seed(config.steps)} (each step's seed, "
                                     f"seed·{SEED_STRIDE} + step, must stay below 2**63)")


def _check_method(config: TrainConfig) -> None:
    """The method takes these settings, every numeric one finite, and no KL is counted twice."""
    if not isinstance(config.method_settings, dict):
        _refuse("method_settings", config.method_settings, "give a dict of the method's settings (name: value)")
    method = get_method(config.method)
    method_config = method.make_config(config.method_settings)
    for f in dataclasses.fields(method_config):
        value = getattr(method_config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            _refuse(f"method setting {f.name}", value, "give a finite number")
    for name in ("clip_ratio_low", "clip_ratio_high"):
        value = getattr(method_config, name, 0.0)
        if isinstance(value, (int, float)) and value < 0:
            _refuse(f"method setting {name}", value, "give a finite number ≥ 0")
    estimator = getattr(method_config, "kl_estimator", None)
    if estimator is not None:               # kl_ref's: core's estimators, and with '+' verl's straight-through form
        _choose("method setting kl_estimator", estimator, [*KL_ESTIMATORS, *(k + "+" for k in KL_ESTIMATORS)])
    c = getattr(method_config, "clip_ratio_c", None)
    if isinstance(c, (int, float)) and c <= 1:
        _refuse("method setting clip_ratio_c", c, "give a finite number > 1 (the dual-clip bound), or None")
    if method.own_kl_setting and config.kl_coef > 0:
        raise ValueError(f"method {method.name!r} has its own KL term (--set {method.name}.{method.own_kl_setting}=...); "
                         "leave kl_coef at 0")
