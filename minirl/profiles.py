"""The one table of sizes: the tiny policies, the run profiles and what each notebook trains.

* `SIZES`: the tiny Qwen2 policies, named by what they are (`h64x2`: hidden size 64, 2 layers).
* `PROFILES`: the run profiles of `TrainConfig.profile` (`smoke`, `cpu`, `gpu`): the policy each
  trains, the TrainConfig defaults it sets and the warm start that made its policy.
* `COURSE`: what each notebook that trains the tiny policy trains at each value of its `profile`
  parameter, naming the run profile explicitly (notebook 03's `cpu` trains run profile `smoke`).

It imports neither torch nor transformers, so every layer of minirl, the notebooks and the grids can
read it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass


@dataclass(frozen=True)
class TinySize:
    """Width and depth of a tiny Qwen2 (the profiles pick one)."""

    hidden_size: int
    num_hidden_layers: int
    intermediate_size: int
    num_attention_heads: int = 4
    num_key_value_heads: int = 2


SIZES = {
    "h64x2": TinySize(hidden_size=64, num_hidden_layers=2, intermediate_size=192),
    "h128x4": TinySize(hidden_size=128, num_hidden_layers=4, intermediate_size=384),
}
"""The tiny policies, by hidden size and number of layers (about 0.1M and 0.8M parameters)."""


@dataclass(frozen=True)
class Profile:
    """One run profile: the policy it trains, its training defaults and its warm start."""

    policy: str | None
    """Name in `SIZES` of the tiny policy it trains; None: a real model (`train["init"]`)."""
    train: dict
    """TrainConfig fields it sets; `make_config` puts the method's defaults and yours on top."""
    warmstart: dict | None
    """WarmStartConfig fields of the supervised run that makes its tiny policy; None: no warm start."""


PROFILES = {
    # the fast profile (seconds a step: workshops, CI) on the small policy
    "smoke": Profile(policy="h64x2",
                     train=dict(prompts_per_step=16, group_size=8, lr=3e-4, eval_prompts=64, eval_every=10),
                     warmstart=dict(steps=600, lr=3e-3)),
    # the real CPU demonstration on the bigger policy
    "cpu": Profile(policy="h128x4",
                   train=dict(prompts_per_step=32, group_size=8, lr=2e-4, eval_prompts=128, eval_every=20),
                   warmstart=dict(steps=600, lr=1e-3)),
    # Qwen2.5-0.5B-Instruct in 4-bit LoRA on GSM8K, sized for a free Colab T4 (~30 min for 40 steps)
    "gpu": Profile(policy=None,
                   train=dict(backend="hf", init="Qwen/Qwen2.5-0.5B-Instruct", task="gsm8k", steps=40,
                              prompts_per_step=8, group_size=8, lr=2e-5, num_mini_batches=4, micro_batch_size=4,
                              eval_prompts=64, eval_samples=4, eval_k=4, eval_every=10, checkpoint_every=5),
                   warmstart=None),
}
"""The run profiles of `TrainConfig.profile`. The warm starts (measured on 2 CPU cores) leave countdown
at ~30 % pass@1 and ~85 % pass@8."""


def _refuse(kind: str, name, choices) -> None:
    raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(choices)}")


def get_profile(name: str) -> Profile:
    """The run profile `name` (ValueError naming the profiles if there is none)."""
    if name not in PROFILES:
        _refuse("profile", name, PROFILES)
    return PROFILES[name]


def tiny_profiles() -> list[str]:
    """The run profiles that train a tiny policy (those with a warm start)."""
    return [name for name, p in PROFILES.items() if p.policy is not None]


def policy_size(profile: str) -> TinySize:
    """The size of the tiny policy that run profile `profile` trains (ValueError for one without)."""
    if profile not in tiny_profiles():
        raise ValueError(f"profile {profile!r} has no tiny policy; choose one of: {', '.join(tiny_profiles())}")
    return SIZES[PROFILES[profile].policy]


def describe(profile: str) -> str:
    """One phrase naming a run profile and its policy: "run profile 'smoke' (policy h64x2)"."""
    p = get_profile(profile)
    return f"run profile {profile!r} ({'policy ' + p.policy if p.policy else p.train['init']})"


# ------------------------------------------------------------------- what each notebook trains
SHIPPED_UPDATE = dict(share_prompt_update=False, fused_adamw=False)
"""The update the shipped comparisons were trained with (they were made before these two settings existed):
a notebook that retrains a shipped comparison takes it too, so that on the machine that made the shipped runs
it makes them again exactly (grids/*.yaml pin the same two settings)."""

COURSE = {
    "00_quickstart": {
        # the fast profile (a workshop on laptops or free Colab CPU, and CI): the small policy, 16 prompts × 8
        # samples a step, pass@8 on 64 eval prompts × 16 samples; 120 steps are enough for the whole story in about
        # a minute (grids/cpu_all_methods.yaml runs these same sizes for every method and 5 seeds)
        "smoke": dict(profile="smoke", train=dict(steps=120, eval_every=20, eval_prompts=64)),
        "cpu": dict(profile="cpu", train=dict(steps=200, eval_every=20)),  # a bigger policy, 32 prompts a step (~2 min)
        # Qwen2.5-0.5B-Instruct in 4-bit LoRA on GSM8K, 8 prompts × 8 samples of ≤ 512 tokens a step, eval on
        # 64 prompts × 4 samples (pass@4): the gpu profile's own sizes. On a free Colab T4, an ESTIMATE, not a
        # measurement: ~40 s a step (sampling 64 rows of ≤ 512 tokens ~25 s, 4 LoRA updates with checkpointing
        # ~10 s, math-verify rewards ~1 s), so 30 steps ≈ 20 min; 4 evaluations of 256 samples ≈ 45 s each
        # ≈ 3 min; loading the model and GSM8K ≈ 2 min: ~25 min.
        "gpu": dict(profile="gpu", train=dict(steps=30, eval_every=10)),
    },
    "02_entropy_collapse": {  # `probe`: how many prompts sections 5 and 6 sample
        # notebook 00's smoke run (the small policy, 16 prompts × 8 samples, pass@8 on 64 eval prompts × 16
        # samples, 120 steps), evaluated every 10 steps so that the entropy law has 13 points to fit and test
        "smoke": dict(profile="smoke", train=dict(steps=120, eval_every=10, eval_prompts=64),
                      probe=dict(position_prompts=64, covariance_prompts=64)),
        "cpu": dict(profile="cpu", train=dict(steps=200, eval_every=10),   # the real run (~2 min of training)
                    probe=dict(position_prompts=64, covariance_prompts=128)),
        # Qwen2.5-0.5B-Instruct, 8 prompts × 8 samples of ≤ 512 tokens a step, eval on 48 prompts × 4 samples every
        # 6 steps for the entropy law's 6 points. On a free Colab T4, an ESTIMATE, not a measurement: ~43 s a step
        # (sampling ~25 s, 4 LoRA updates ~10 s, rewards ~1 s, and the extra forward pass of track_entropy_change
        # ~3 s), so 30 steps ≈ 22 min; 6 evaluations of 192 samples ≈ 35 s each ≈ 3.5 min; loading ≈ 2 min;
        # sections 5 and 6 sample 16 + 128 + 128 rows ≈ 2 min: ~30 min.
        "gpu": dict(profile="gpu", train=dict(steps=30, eval_every=6, eval_prompts=48),
                    probe=dict(position_prompts=16, covariance_prompts=16)),
    },
    "03_loss_interventions": {  # smoke and cpu train the smoke-size policy: it shows the effects in ~30 s a run
        "smoke": dict(profile="smoke", seeds=[0],                              # CI: checks that everything runs
                      train=dict(steps=10, eval_every=5, prompts_per_step=4, eval_prompts=8, eval_samples=4, eval_k=2)),
        "cpu": dict(profile="smoke", seeds=[0, 1, 2, 3, 4],                    # the shipped runs' sizes
                    train=dict(steps=120, eval_every=20, **SHIPPED_UPDATE)),
        # 4 of the methods, one seed, eval at steps 0 and 8 on 32 prompts × 4 samples. On a free Colab T4, an
        # ESTIMATE, not a measurement: ~40 s a step (sampling ~25 s, 4 LoRA updates ~10 s, rewards ~1 s), so
        # 4 runs × 8 steps ≈ 21 min; 2 evaluations a run of 128 samples ≈ 25 s each ≈ 3.5 min; loading the model
        # for each run ≈ 4 × 20 s: ~27 min.
        "gpu": dict(profile="gpu", seeds=[0], train=dict(steps=8, eval_every=8, eval_prompts=32)),
    },
    "04_branching_rollouts": {  # smoke and cpu train the smoke-size policy; `fork_prompts`: the branch figure's
        "smoke": dict(profile="smoke", seeds=[0], fork_prompts=3,              # CI: checks that everything runs
                      train=dict(steps=6, eval_every=3, prompts_per_step=4, eval_prompts=8, eval_samples=4, eval_k=2)),
        "cpu": dict(profile="smoke", seeds=[0, 1, 2, 3, 4], fork_prompts=3,    # the shipped runs' sizes
                    train=dict(steps=120, eval_every=20, **SHIPPED_UPDATE)),
        # grpo and cure, one seed, eval at steps 0 and 6 on 32 prompts × 4 samples. On a free Colab T4, an
        # ESTIMATE, not a measurement: ~40 s a GRPO step (sampling ~25 s, 4 LoRA updates ~10 s, rewards ~1 s), so
        # grpo takes 6 × 40 s = 4 min; a CURE step samples twice (4 originals, then 3 continuations of each) and
        # up to 3 rounds of dynamic sampling, and trains 16 rows a prompt: ~60-120 s, 6-12 min; 2 evaluations a
        # run of 128 samples ≈ 25 s each ≈ 2 min; loading the model for each run and the branch figure
        # ≈ 3 × 20 s; sampling the branch figure ≈ 1 min: ~15-20 min.
        "gpu": dict(profile="gpu", seeds=[0], fork_prompts=2, train=dict(steps=6, eval_every=6, eval_prompts=32)),
    },
    "04_rewards_and_advantages": {  # smoke and cpu train the smoke-size policy
        "smoke": dict(profile="smoke", seeds=[0],                              # CI: checks that everything runs
                      train=dict(steps=6, eval_every=3, prompts_per_step=4, eval_prompts=8, eval_samples=4, eval_k=2)),
        "cpu": dict(profile="smoke", seeds=[0, 1, 2, 3, 4],                    # the shipped runs' sizes
                    train=dict(steps=120, eval_every=20, **SHIPPED_UPDATE)),
        # grpo, riskpo and entropy_adv, one seed, eval at steps 0 and 6 on 32 prompts × 4 samples. On a free
        # Colab T4, an ESTIMATE, not a measurement: ~40 s a step (sampling ~25 s, 4 LoRA updates ~10 s, rewards
        # ~1 s; riskpo and entropy_adv only change advantages), so 3 × 6 × 40 s = 12 min; 2 evaluations a run of
        # 128 samples ≈ 25 s each ≈ 2.5 min; loading the model for each run ≈ 3 × 20 s: ~15 min.
        "gpu": dict(profile="gpu", seeds=[0], train=dict(steps=6, eval_every=6, eval_prompts=32)),
    },
    "04_steps_and_tools": {  # every profile trains the smoke-size policy: GSM8K has no steps and no tool
        "smoke": dict(profile="smoke", seeds=[0],                              # CI: checks that everything runs
                      train=dict(steps=6, eval_every=3, prompts_per_step=4, eval_prompts=8, eval_samples=4, eval_k=2)),
        "cpu": dict(profile="smoke", seeds=[0, 1, 2, 3, 4],                    # the shipped runs' sizes
                    train=dict(steps=120, eval_every=20, **SHIPPED_UPDATE)),
        "gpu": dict(profile="smoke", seeds=[0, 1, 2, 3, 4],                    # the cpu one
                    train=dict(steps=120, eval_every=20, **SHIPPED_UPDATE)),
    },
    "05_attention_entropy": {
        # `profile`: whose policy section 1 measures (no RL run here); `size` and the rest: the tiny Qwen2 LMs
        # trained from scratch in sections 2-5, and their data (sequences of seq_len characters).
        # smoke: a workshop laptop or CI. 11 runs of 400 steps, 6-10 s each and ~2 min for the notebook on 2 busy
        # cores (measured); big enough for the attention to collapse, too small to settle what the loss does after
        "smoke": dict(profile="smoke", train={},
                      size=TinySize(hidden_size=32, num_hidden_layers=2, intermediate_size=96), seq_len=28,
                      n_train=2000, n_test=64, steps=400, reduced_steps=400, probe=16, seeds=[0, 1]),
        # ~15-60 s a run of 300 steps; the figures show the first seed
        "cpu": dict(profile="cpu", train={},
                    size=TinySize(hidden_size=64, num_hidden_layers=4, intermediate_size=192), seq_len=56,
                    n_train=2000, n_test=200, steps=300, reduced_steps=600, probe=64, seeds=[0, 1]),
        # the tiny LMs run on the CPU as in cpu; only the model of section 1 differs
        "gpu": dict(profile="gpu", train={},
                    size=TinySize(hidden_size=64, num_hidden_layers=4, intermediate_size=192), seq_len=56,
                    n_train=2000, n_test=200, steps=300, reduced_steps=600, probe=64, seeds=[0, 1]),
    },
    "08_results_dashboard": {  # the grid of notebook 00 run here; `prompts`: completions in the entropy heatmap
        "smoke": dict(profile="smoke", seeds=[0], prompts=3,
                      train=dict(steps=4, eval_every=2, eval_prompts=8, eval_samples=4, eval_k=2),
                      methods={"grpo": "grpo", "clip_cov 2%": {"method": "clip_cov",
                                                               "settings": {"clip_cov_ratio": "0.02"}}}),
        "cpu": dict(profile="cpu", seeds=[0, 1], prompts=4, train=dict(steps=60),
                    methods={"grpo": "grpo", "clip_cov 2%": {"method": "clip_cov",
                                                             "settings": {"clip_cov_ratio": "0.02"}}}),
        # On a free Colab T4, an ESTIMATE, not a measurement: ~40 s a step, so 4 steps ≈ 3 min; evaluations at
        # steps 0 and 4 on 64 prompts × 4 samples ≈ 45 s each; loading the model ≈ 2 min, once for the run and once
        # for the heatmap; sampling the heatmap ≈ 30 s: ~10 min.
        "gpu": dict(profile="gpu", seeds=[0], prompts=2, train=dict(steps=4, eval_every=4), methods={"grpo": "grpo"}),
    },
}
"""What each notebook that trains the tiny policy trains at each value of its `profile` parameter: `profile`,
the run profile (`PROFILES`) it passes to `make_config`; `train`, the TrainConfig fields it sets on top; the
rest, the notebook's own sizes. Notebook 05 trains no policy with RL: its `profile` names the policy that
section 1 measures. Notebooks 01 (a bandit in numpy), 06 (a small image net) and 07 (search at inference with
the shipped policy and a detection experiment of its own) keep their own `SIZES`: theirs are not trainer
settings of a run profile."""


def course_sizes(notebook: str, profile: str) -> dict:
    """A copy of what `notebook` trains in its `profile` (ValueError naming the choices otherwise)."""
    if notebook not in COURSE:
        _refuse("notebook", notebook, COURSE)
    if profile not in COURSE[notebook]:
        _refuse("profile", profile, COURSE[notebook])
    return copy.deepcopy(COURSE[notebook][profile])
