"""AEPO (arbitrary entropy): steer the entropy to a target with positively rewarded samples drawn
at another temperature (Wang et al., 2025, "Arbitrary Entropy Policy Optimization", arXiv
2510.08141; official code github.com/597358816/AEPO, `verl/trainer/ray_trainer.py`, branch `AEPO`).

Samples drawn hotter than the policy are less likely under it, so reinforcing the correct ones
raises its entropy; colder samples lower it. A bang-bang controller picks the temperature from
the last step's entropy and a target, so the entropy settles near the target instead of
collapsing. Only better-than-their-group samples are used, so the term never pushes towards
wrong answers.

    ∇J_AEPO = ∇J_GRPO + α · E_{q, o ∼ π_θ^T}[ ∇ log π_θ(o|q) · R(q,o) ]          (paper, eq. for J_AEPO)
    T       = T_high  if H ≤ H_target  else  T_low

What the released code does each step (and this file, in `aepo_batch`):
  1. the ordinary GRPO batch: rollout, rewards, advantages;
  2. H = the previous step's entropy estimate, 0 before the first step (so step 1 goes hot);
  3. G fresh samples at temperature T for the first quarter of the step's prompts, rewarded and
     given GRPO advantages within their own groups;
  4. keep those with A > 0.05 and set their advantage to 1 (REINFORCE with R = 1);
  5. m = min(reinforce_sample_num, #kept), halved (floor) when cooling;
  6. the m kept samples **replace the first m rows** of the GRPO batch (its size is unchanged) and
     the ordinary PPO-clip update runs, their old log-probs taken at the training temperature.
α is thus implicit: m / B of the batch. There is no importance correction for the temperature.

The loss is GRPO's PPO-clip with token-mean aggregation (EasyR1's `masked_mean`).
The controller's H: the released code reads `actor/entropy_loss`, which is −mean log π of the
trained batch's sampled tokens (an estimate of the entropy, taken over the mixed batch, during
the update). `controller_entropy = "sampled_nll"` (default) is that estimate over the mixed
batch's old log-probs, before the update; `"full"` uses the full-vocabulary entropy of the same
positions (the H(π) of the paper).

Settings (official keys `trainer.*`; script examples/qwen-math-7b-AEPO.sh): entropy_base = 0.5
(H_target; the README's best run uses 0.75), temperature_high = 1.2, temperature_low = 0.8,
reinforce_sample_num = 60 (of 512 prompts × n = 5 = 2560 rows, 2.3 %; the script's comment: "as
small as possible when entropy is controllable"). Hard-coded in the code and exposed here:
prompt_fraction = 1/4, advantage_threshold = 0.05. Ours: if no prompt falls in the first
quarter (fewer than 4 prompts a step) we take one; with nothing kept, m = 0 and the step is
plain GRPO (the released code would fail). The official target 0.5 sits at the top of the
tiny models' entropy range, so it only ever heats: choose a target inside the range a grpo run's
`entropy` covers (`compare.TINY_SCALE_VARIANTS` uses 0.35, notebook 03).

Metrics: `temperature` (T of the step), `replaced` (m), `kept_frac` (share of the temperature
samples with A > threshold), `extra_accuracy` (their accuracy), `controller_entropy` (the H
the next step's controller reads).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import group_advantages, masked_mean
from ..rollout import concat_rollouts
from .grpo import grpo_loss
from .registry import BatchContext, MethodState, PolicyLossConfig, register_method

CONTROLLER_ENTROPIES = ("sampled_nll", "full")


@dataclass
class AEPOConfig(PolicyLossConfig):
    entropy_base: float = 0.5
    """H_target: heat when the entropy is at or below it, cool above (official 0.5)."""
    temperature_high: float = 1.2
    """T_high, the temperature of the extra samples when heating (official 1.2)."""
    temperature_low: float = 0.8
    """T_low, when cooling (official 0.8)."""
    reinforce_sample_num: int = 60
    """Most rows of the batch replaced by kept temperature samples (official 60); half when cooling."""
    prompt_fraction: float = 0.25
    """Share of the step's prompts (the first ones) sampled again at T (hard-coded 1/4 in the code)."""
    advantage_threshold: float = 0.05
    """A temperature sample is kept when its group advantage exceeds this (hard-coded 0.05)."""
    controller_entropy: str = "sampled_nll"
    """"sampled_nll" (the code's −mean log π of the trained tokens) or "full" (full-vocabulary H)."""


class AEPOState(MethodState):
    """The controller's memory: the entropy estimate of the last trained batch."""

    def __init__(self):
        self.entropy = 0.0          # the released code starts at 0, so the first step heats


def aepo_batch(rollout, rewards, advantages, config: AEPOConfig, ctx: BatchContext):
    """Replace the first m rows of the batch by kept temperature samples with advantage 1."""
    if config.controller_entropy not in CONTROLLER_ENTROPIES:
        raise ValueError(f"unknown controller_entropy {config.controller_entropy!r}; "
                         f"choose one of: {', '.join(CONTROLLER_ENTROPIES)}")
    state = ctx.state
    heating = state.entropy <= config.entropy_base
    T = config.temperature_high if heating else config.temperature_low
    n_groups = len(rollout) // ctx.group_size
    groups = list(range(max(1, int(n_groups * config.prompt_fraction))))
    extra, extra_rewards = ctx.sample(groups, T)
    extra_adv, _ = group_advantages(extra_rewards, ctx.group_size, ctx.scale_adv_by_std)
    kept = (extra_adv > config.advantage_threshold).nonzero().squeeze(-1)
    m = min(config.reinforce_sample_num, len(kept), len(rollout))
    if not heating:
        m //= 2
    if m > 0:
        rollout = concat_rollouts([extra.select(kept[:m]), rollout.select(torch.arange(m, len(rollout)))],
                                  ctx.pad_id)
        advantages = torch.cat([torch.ones(m, device=advantages.device), advantages[m:]])
    mask = rollout.response_mask
    if config.controller_entropy == "sampled_nll":
        state.entropy = -masked_mean(rollout.old_log_prob, mask).item()
    else:
        state.entropy = masked_mean(rollout.entropy, mask).item()
    metrics = {"temperature": T, "replaced": float(m), "kept_frac": len(kept) / len(extra),
               "extra_accuracy": (extra_rewards >= 1.0).float().mean().item(),
               "controller_entropy": state.entropy}
    return rollout, advantages, metrics


@register_method("aepo", config_cls=AEPOConfig, state_cls=AEPOState, transform_batch=aepo_batch,
                 summary="arbitrary-entropy AEPO: reinforce correct samples drawn hotter or colder to hold a target entropy")
def aepo_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: AEPOConfig | None = None, extra=None):
    """GRPO's PPO-clip loss on the batch that `aepo_batch` prepared."""
    return grpo_loss(logp, old_logp, adv, mask, agg_mode, config or AEPOConfig(), extra)
