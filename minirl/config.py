"""Run settings: one dataclass, and the profiles that fill in sizes for a machine."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

PROFILES = ("smoke", "cpu", "gpu")
BACKENDS = ("tiny", "hf")


@dataclass
class TrainConfig:
    """Everything a training run depends on. Its JSON copy sits next to the run's metrics."""

    method: str = "grpo"
    """Entropy intervention from `minirl.METHODS`."""
    task: str = "countdown"
    """Task from `minirl.tasks.TASKS`."""
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
    track_entropy_change: bool = False
    """Also measure `batch_entropy_change`: the entropy of the step's own sampled positions
    after the update minus before (one extra forward pass). It is the quantity that the
    covariance law predicts, free of the prompt-to-prompt noise of `entropy_delta`."""
    method_settings: dict = field(default_factory=dict)
    """`name=value` settings of the method's own config (`--set` on the CLI)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Sizes each profile implies (the model size itself comes from models.SIZES).
PROFILE_DEFAULTS = {
    "smoke": dict(prompts_per_step=16, group_size=8, lr=3e-4, eval_prompts=64, eval_every=10),
    "cpu": dict(prompts_per_step=32, group_size=8, lr=2e-4, eval_prompts=128, eval_every=20),
    # Qwen2.5-0.5B-Instruct in 4-bit LoRA on GSM8K, sized for a free Colab T4 (~30 min for 40 steps)
    "gpu": dict(backend="hf", init="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", steps=40, prompts_per_step=8,
                group_size=8, lr=2e-5, num_mini_batches=4, micro_batch_size=4, eval_prompts=64, eval_samples=4,
                eval_k=4, eval_every=10, checkpoint_every=5),
}


def make_config(profile: str = "cpu", **overrides) -> TrainConfig:
    """A TrainConfig with the profile's sizes, then `overrides` on top."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; choose from: {', '.join(sorted(fields))}")
    from .methods import get_method

    method_defaults = get_method(overrides.get("method", "grpo")).train_defaults
    config = TrainConfig(profile=profile, **{**PROFILE_DEFAULTS[profile], **method_defaults, **overrides})
    if config.backend not in BACKENDS:
        raise ValueError(f"unknown backend {config.backend!r}; choose one of: {', '.join(BACKENDS)}")
    return config
