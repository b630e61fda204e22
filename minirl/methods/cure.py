"""CURE: Critical-token-guided re-concatenation (Li et al., 2025, "CURE: Critical-Token-Guided
Re-concatenation for Entropy-collapse Prevention", arXiv 2508.11016; official code
github.com/bytedance/CURE, `recipe/CURE_First_Stage/dapo_ray_trainer.py`).

Stage 1 samples a few responses, cuts each one just before a high-entropy ("critical") token and
samples several new continuations from there, then trains on originals and branches as one
group: the policy explores from its own decision points instead of only from the prompt. Stage
2 is plain DAPO, which cashes in the exploration.

Stage 1, per prompt (official code: `RayDAPOTrainer.fit` and `get_critic_key_token_mask`):
    o_1..o_n1 ∼ π_old(·|q)                                  (the trainer's rollout, n1 = group_size)
    C_j = first `critical_top_k` positions t of o_j by H_{j,t} descending, skipping t = 0,
          special tokens and tokens whose text (stripped) is shorter than `critical_min_chars`
    t*_j ∼ Uniform(C_j)      (t*_j = 0 when C_j is empty)
    o_{j,k} = o_j[:t*_j] ⊕ y,  y ∼ π_old(·|q ⊕ o_j[:t*_j]),  k = 1..n2   (the critical token is re-sampled)
    A over the group {o_j} ∪ {o_{j,k}} of n1(1 + n2) responses   (GRPO/DAPO group advantage)
    branches carry loss only on y: their prefix is moved into the prompt (branching.prefix_into_prompt)
    loss: DAPO's (clip-higher, token-mean, dual-clip 10); dynamic sampling on
Stage 2 (`ctx.step > stage1_steps`): DAPO with n1(1 + n2) fresh samples per prompt (the official
stage 2 keeps rollout.n = 16): the batch is topped up with n2 more rounds of n1 samples per prompt.

Settings (`--set name=value`; official `+trainer.*` keys, recipe run_cure_stage_1.sh):
    n1                  = the trainer's `group_size`; CURE sets it to 4 (`+trainer.n1=4`) by default
    n2                  3      `+trainer.n2`: continuations per critical token
    critical_top_k      20     `+trainer.critical_top_k`
    critical_token_type entropy `+trainer.critical_token_type` (`random`: the ablation, random order)
    critical_min_chars  1      official behaviour is 2 (`len(text.strip()) > 1`), which on our character
                               vocabulary excludes every token; 1 only drops whitespace (a scaled
                               substitute, as for every vocabulary-size constant here)
    stage1_steps        300    stage 1 ran 300 steps (stage 2 starts from `global_step_300`)
    stage2_match_budget True   ours: False makes stage 2 the trainer's DAPO with group_size = n1
    clip_ratio_low/high 0.2 / 0.28, clip_ratio_c 10.0, token-mean, dynamic sampling (DAPO recipe)

Our choices: one run holds both stages (the paper restarts from the stage-1 checkpoint; we keep the
optimizer); dynamic sampling filters on the n1 originals before branching (the official filter sees all
16; a group whose 4 originals agree is dropped here even if branches would differ); continuations are
rewarded on the whole text o_j[:t*] ⊕ y (verl's reward reads the continuation only, the same for a boxed
final answer); the branch prompt q ⊕ o_j[:t*] is never truncated (the official code keeps its first
max_prompt_length tokens, silently cutting the end of the prefix);
overlong reward shaping is not implemented (see dapo.py). With ≤ 8-token responses the official top-20
covers every position, so t* is uniform; critical_top_k=1 (the argmax) is the setting where entropy picks
the token; compare it with `critical_token_type=random` (the paper's ablation) over seeds.

Metrics (`cure/…`): `stage`; `critical_pos`, `critical_entropy` (mean t* and H at t*); `fallback_frac`
(responses with no valid candidate); `branch_accuracy`; `group_all_equal` (enlarged groups with equal
rewards); `extra_tokens` (tokens sampled beyond the n1 originals); `tokens_sampled` (all tokens sampled
in the step's batch, originals + extra: compare methods at equal values of it; rounds that dynamic
sampling threw away are not included, see `gen_batches`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..branching import fork_candidates, grouped_concat, prefix_into_prompt, sampled_tokens, top_entropy_positions
from ..core import group_advantages
from .dapo import DAPOConfig, dapo_loss
from .registry import BatchContext, register_method

CRITICAL_TOKEN_TYPES = ("entropy", "random")


@dataclass
class CUREConfig(DAPOConfig):
    n2: int = 3
    """Continuations sampled from each critical token (official `+trainer.n2=3`)."""
    critical_top_k: int = 20
    """t* is drawn uniformly among this many top-entropy valid positions (official 20)."""
    critical_token_type: str = "entropy"
    """"entropy" (official) or "random" (the ablation: candidates in random order)."""
    critical_min_chars: int = 1
    """Skip tokens whose stripped text is shorter than this (official 2; 1 on a character vocabulary)."""
    stage1_steps: int = 300
    """Steps of stage 1 (branching); later steps are stage 2, plain DAPO (official 300)."""
    stage2_match_budget: bool = True
    """Stage 2 samples n1(1 + n2) responses per prompt like the official stage 2 (ours: False keeps n1)."""


def _check(config: CUREConfig, ctx: BatchContext) -> None:
    if config.critical_token_type not in CRITICAL_TOKEN_TYPES:
        raise ValueError(f"unknown critical_token_type {config.critical_token_type!r}; "
                         f"choose one of: {', '.join(CRITICAL_TOKEN_TYPES)}")
    for name in ("n2", "critical_top_k"):
        if getattr(config, name) < 1:
            raise ValueError(f"cure setting {name} must be at least 1 (got {getattr(config, name)})")
    if config.critical_min_chars < 0 or config.stage1_steps < 0:
        raise ValueError("cure settings critical_min_chars and stage1_steps must be >= 0 "
                         f"(got {config.critical_min_chars}, {config.stage1_steps})")


def critical_positions(rollout, config: CUREConfig, tokenizer) -> tuple[list[int], int]:
    """t*_j for every row (uniform among the row's first `critical_top_k` candidates by entropy, the
    module docstring's C_j) and how many rows fell back to t* = 0."""
    candidates = fork_candidates(rollout.response_ids, rollout.response_mask, skip_ids=tokenizer.all_special_ids,
                                 tokenizer=tokenizer, min_chars=config.critical_min_chars, skip_first=True)
    scores = rollout.entropy if config.critical_token_type == "entropy" else torch.rand_like(rollout.entropy)
    top = top_entropy_positions(scores, candidates, config.critical_top_k)
    t_star = [c[int(torch.randint(len(c), ()))] if c else 0 for c in top]       # uniform among the top-k
    return t_star, sum(not c for c in top)


def cure_batch(rollout, rewards, advantages, config: CUREConfig, ctx: BatchContext):
    """Stage 1: originals + n2 continuations of each from its critical token, one group per prompt.
    Stage 2: DAPO, topped up to n1(1 + n2) samples per prompt (or untouched)."""
    _check(config, ctx)
    G, n_groups = ctx.group_size, len(rollout) // ctx.group_size
    stage = 1 if ctx.step <= config.stage1_steps else 2
    metrics = {"stage": float(stage)}
    if stage == 2 and not config.stage2_match_budget:
        return rollout, advantages, {**metrics, "extra_tokens": 0.0, "tokens_sampled": float(sampled_tokens(rollout))}
    if stage == 1:
        t_star, fallback = critical_positions(rollout, config, ctx.tokenizer)
        prefixes = [rollout.response_ids[i, :t].tolist() for i, t in enumerate(t_star)]
        extra, extra_rewards = ctx.continue_rows(list(range(len(rollout))), prefixes, config.n2)
        H_star = rollout.entropy[torch.arange(len(rollout)), torch.tensor(t_star)]
        metrics.update(critical_pos=sum(t_star) / len(t_star), critical_entropy=H_star.mean().item(),
                       fallback_frac=fallback / len(t_star))
    else:                                          # n2 more rounds of n1 samples of every prompt
        extra, extra_rewards = ctx.sample([g for g in range(n_groups) for _ in range(config.n2)], None)
    extra_tokens = sampled_tokens(extra)
    merged, order = grouped_concat(rollout, prefix_into_prompt(extra, ctx.pad_id), n_groups, ctx.pad_id)
    all_rewards = torch.cat([rewards, extra_rewards.to(rewards.device)])[order]
    adv, all_equal = group_advantages(all_rewards, G * (1 + config.n2), ctx.scale_adv_by_std)
    metrics.update(branch_accuracy=(extra_rewards >= 1.0).float().mean().item(),
                   group_all_equal=all_equal.float().mean().item(), extra_tokens=float(extra_tokens),
                   tokens_sampled=float(sampled_tokens(rollout) + extra_tokens))
    return merged, adv, metrics


@register_method("cure", config_cls=CUREConfig, default_agg_mode="token-mean", transform_batch=cure_batch,
                 train_defaults={"dynamic_sampling": True, "group_size": 4},
                 summary="CURE: re-sample from high-entropy critical tokens, train originals + branches (then DAPO)")
def cure_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: CUREConfig | None = None, extra=None):
    """DAPO's loss on the batch that `cure_batch` prepared."""
    return dapo_loss(logp, old_logp, adv, mask, agg_mode, config or CUREConfig(), extra)
