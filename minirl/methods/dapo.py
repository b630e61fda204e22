"""DAPO: Decoupled clip and Dynamic sAmpling Policy Optimization (Yu et al., 2025, arXiv 2503.14476;
in verl as its DAPO recipe, `docs/algo/dapo.md`).

Raising only the upper clip bound lets unlikely tokens with positive advantage grow (the symmetric
clip caps them first, and that is one road to entropy collapse); averaging over all tokens of the
batch, not per response, stops long responses from being diluted. Dynamic sampling drops groups whose
G rewards are all equal (zero advantage, no signal) and samples more prompts instead.

    r_{i,t} = exp(logp_{i,t} − old_logp_{i,t})
    ℓ_{i,t} = max(−A_i·r_{i,t}, −A_i·clip(r_{i,t}, 1 − ε_low, 1 + ε_high)),   ε_high > ε_low (clip-higher)
    L = Σ_{i,t} M ℓ / Σ_{i,t} M                                               (token-mean)
    subject to 0 < #{correct o_i} < G for every group in the batch            (dynamic sampling)

(the DAPO objective, paper §3, Eq. 8 [equation number unverified]). verl adds dual-clip for A < 0.

Settings (`--set name=value`), official values from verl's DAPO recipe:
    clip_ratio_low   0.2   `actor.clip_ratio_low`
    clip_ratio_high  0.28  `actor.clip_ratio_high`
    clip_ratio_c     10.0  `actor.clip_ratio_c` (dual-clip bound)
    loss_agg_mode    token-mean (`actor.loss_agg_mode`)
Trainer settings turned on by default (train_defaults): `dynamic_sampling=True`
(`algorithm.filter_groups.enable`, metric = acc; `informative_groups` below, which any method's run
uses when it sets `dynamic_sampling`); `max_gen_batches` (verl
`filter_groups.max_num_gen_batches`, 10 in the recipe, 3 here) bounds the re-sampling. The trainer logs
`gen_batches` (rounds used) and `frac_all_equal_groups` (of the batch it kept). No KL (`use_kl_loss=False`).

Not implemented: overlong reward shaping (`reward_model.overlong_buffer`) — it is a reward term for
10^4-token responses and our tasks stop after a handful of tokens; overlong filtering is not in verl either.

Metrics: `clip_frac` as in GRPO; `dapo/clip_frac_high` = fraction of tokens with A > 0 and
r > 1 + ε_high (where clip-higher still binds), `dapo/clip_frac_low` = A < 0 and r < 1 − ε_low.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import masked_mean, ppo_clip_loss
from ..rollout import concat_rollouts
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class DAPOConfig(PolicyLossConfig):
    clip_ratio_low: float = 0.2
    """ε_low (verl `actor.clip_ratio_low`, DAPO recipe 0.2)."""
    clip_ratio_high: float = 0.28
    """ε_high, clip-higher (verl `actor.clip_ratio_high`, DAPO recipe 0.28)."""
    clip_ratio_c: float | None = 10.0
    """Dual-clip bound for A < 0 (verl `actor.clip_ratio_c`, DAPO recipe 10.0)."""


@register_method("dapo", config_cls=DAPOConfig, default_agg_mode="token-mean",
                 train_defaults={"dynamic_sampling": True},
                 summary="clip-higher (0.2/0.28), token-mean loss, dynamic sampling of informative groups")
def dapo_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: DAPOConfig | None = None, extra: LossExtras | None = None):
    config = config or DAPOConfig()
    eps_low, eps_high = config.clip_ratio_low, config.clip_ratio_high
    loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)
    ratio = (logp - old_logp).exp().detach()                                     # r (B, T)
    metrics = {
        **pg_metrics,
        "clip_frac_high": masked_mean(((adv > 0) & (ratio > 1 + eps_high)).float(), mask).item(),
        "clip_frac_low": masked_mean(((adv < 0) & (ratio < 1 - eps_low)).float(), mask).item(),
    }
    return loss, metrics


def informative_groups(sampler, pool: list, prompts_per_step: int, group_size: int, max_rounds: int, pad_id: int):
    """Dynamic sampling: P groups whose G rewards are not all equal, sampled round after round from
    the next P prompts of `pool` until P such groups are kept or `max_rounds` rounds are used; the
    batch is then topped up with set-aside groups, so that its size never changes. `sampler` gives
    `groups(examples)` (G rows per example) and `rewards(rollout, examples)` (the step's sampler).
    Returns (rollout, rewards, one example per group, rounds used)."""
    P, G = prompts_per_step, group_size
    kept, dropped = [], []                 # (rollout of one round, its rewards, group index, example)
    for r in range(max_rounds):
        examples = pool[r * P:(r + 1) * P]
        rollout = sampler.groups(examples)
        rewards = sampler.rewards(rollout, examples)
        grouped = rewards.view(-1, G)
        for g, equal in enumerate((grouped == grouped[:, :1]).all(dim=1).tolist()):
            (dropped if equal else kept).append((rollout, rewards, g, examples[g]))
        if len(kept) >= P:
            break
    chosen = (kept + dropped)[:P]
    parts = [ro.select(torch.arange(g * G, (g + 1) * G)) for ro, _, g, _ in chosen]
    rewards = torch.cat([rw[g * G:(g + 1) * G] for _, rw, g, _ in chosen])
    return concat_rollouts(parts, pad_id), rewards, [e for *_, e in chosen], r + 1
