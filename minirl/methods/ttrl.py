"""TTRL: label-free RL with majority-vote pseudo-labels (Zuo et al., 2025, "TTRL: Test-Time
Reinforcement Learning", arXiv 2504.16084; official code github.com/PRIME-RL/TTRL @3e2cc93, `ttt_metrics.py`;
the baseline of ETTRL, `ettrl.py`, and of EVOL-RL, `evol_rl.py`).

No label is read: the most frequent final answer among the samples of a prompt is taken as its
label, and a completion is rewarded for agreeing with it. Consensus is all it rewards, which is
why its entropy collapses fast (EVOL-RL and ETTRL start from there).

    a_i = answer(o_i)                         (task.answer_of: the final answer, no label used)
    ŷ   = argmax_a #{i ≤ N_vote : a_i = a}    (majority over the N_vote voting samples)
    R̂_i = 1[a_i = ŷ]                          (TTRL `test_time_train_metrics`: rewards vs the estimated label)
    A_i = (R̂_i − mean_G R̂) / std_G R̂          (ordinary GRPO over the N_train = G trained samples)

Settings (`--set name=value`; official keys in brackets):
    vote_rounds   2 — N_vote = vote_rounds · G. The first G samples (the step's rollout) are trained
                  on, all N_vote vote. Official: n_votes_per_prompt=64, n_samples_per_prompt=32
                  [`reward_kwargs.n_votes_per_prompt`, `rollout.n_vote`], i.e. 2. 1 votes with the
                  trained samples only (cheaper; what most re-implementations do).
    abstain_none  True — ours: a completion without an answer does not vote. The official extractor
                  returns "" for such text, which can win the vote; `abstain_none=false` lets None win,
                  and then no completion is rewarded (ours: a missing answer is never "right").
    Ties: the answer met first (in row order) wins — `Counter.most_common`, as in the official code.
    loss: PPO-clip, token-mean (the TTRL verl default), clip 0.2/0.2; KL to the warm start
    β = 0.001, k3 (official `use_kl_loss=True`, `kl_loss_coef=0.001`, `low_var_kl`): the run's
    `kl_coef` defaults to 0.001 for this method (`--set kl_coef=0` turns it off).
    The answers are read with the task's `answer_of` (`ctx.task`). Extra voting samples are
    drawn with `ctx.sample(groups, None)`: None = the training temperature.
    Not reproduced: lr 5e-7 with cosine warm-up (we keep the profile's lr); ETTRL's tree rollout
    and entropy advantage reshaping are in `ettrl.py`, not in this file.

What to watch at the tiny scale (notebook 04_rewards_and_advantages compares it with GRPO over
seeds): TTRL rewards agreement, not truth, so `majority_ratio` can rise and the entropy fall fast while the majority
answer drifts to a consistent wrong one (on countdown, say, the sum of the numbers); the true
accuracy then falls, which `label_accuracy` and the run's own `accuracy` show. This is the failure
EVOL-RL and ETTRL start from.

Metrics (`ttrl/…`; the run's own `reward`/`accuracy` stay the true task reward, a held-out
measurement here): `label_accuracy` (share of prompts whose majority answer is right: some
voting sample with that answer has task reward 1), `majority_ratio` (votes for ŷ / N_vote, the
agreement), `reward_accuracy` (share of trained samples whose pseudo-reward equals the true
one), `pseudo_reward` (mean R̂), `no_answer_frac` (voting samples without an answer).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from ..core import group_advantages
from .grpo import grpo_loss
from .registry import BatchContext, PolicyLossConfig, register_method


@dataclass
class TTRLConfig(PolicyLossConfig):
    vote_rounds: int = 2
    """N_vote / G: voting samples per prompt in units of the group size (official 64/32 = 2)."""
    abstain_none: bool = True
    """A completion without an answer does not vote (ours; see the module docstring)."""


@dataclass
class Votes:
    """The voting samples of each group: trained rows first, then the extra ones."""

    texts: list[list[str]]            # [group][vote]
    answers: list[list]               # task.answer_of of each text
    true_rewards: list[list[float]]   # the task's reward (metrics only, never trained on)
    extra: object = None              # the Rollout of the extra voting samples, if any


def majority_vote(answers: list, abstain_none: bool = True):
    """(ŷ, its count): the most frequent answer, the first met among equals; (None, 0) if nobody votes."""
    counts = Counter(a for a in answers if a is not None or not abstain_none)
    if not counts:
        return None, 0
    return counts.most_common(1)[0]


def vote_set(rollout, rewards: torch.Tensor, ctx: BatchContext, vote_rounds: int) -> Votes:
    """The G trained samples of each group plus (vote_rounds − 1)·G fresh ones at the training
    temperature, with their answers."""
    if not isinstance(vote_rounds, int) or vote_rounds < 1:
        raise ValueError(f"vote_rounds must be a whole number >= 1 (got {vote_rounds!r})")
    task, G = task_of(ctx), ctx.group_size                     # task_of: a task whose answer_of reads answers
    n_groups = len(rollout) // G
    texts = [list(rollout.completions[g * G:(g + 1) * G]) for g in range(n_groups)]
    true = [rewards[g * G:(g + 1) * G].tolist() for g in range(n_groups)]
    extra = None
    if vote_rounds > 1:
        m = (vote_rounds - 1) * G
        extra, extra_rewards = ctx.sample([g for g in range(n_groups) for _ in range(vote_rounds - 1)], None)
        for g in range(n_groups):
            texts[g] += extra.completions[g * m:(g + 1) * m]
            true[g] += extra_rewards[g * m:(g + 1) * m].tolist()
    answers = [[task.answer_of(t, ctx.examples[g]) for t in texts[g]] for g in range(n_groups)]
    return Votes(texts, answers, true, extra)


def label_is_right(answers: list, true_rewards: list[float], label) -> float:
    """1 if a voting sample that gives the label earns the full task reward (the label is right)."""
    return float(label is not None and any(r >= 1.0 for a, r in zip(answers, true_rewards) if a == label))


def ttrl_batch(rollout, rewards, advantages, config: TTRLConfig, ctx: BatchContext):
    """Replace the task rewards by majority-vote pseudo-rewards and recompute GRPO advantages."""
    G = ctx.group_size
    votes = vote_set(rollout, rewards, ctx, config.vote_rounds)
    pseudo, label_acc, ratio = [], [], []
    for answers, true in zip(votes.answers, votes.true_rewards):
        label, count = majority_vote(answers, config.abstain_none)
        pseudo += [float(label is not None and a == label) for a in answers[:G]]     # R̂_i, trained rows
        label_acc.append(label_is_right(answers, true, label))
        ratio.append(count / len(answers))
    R_hat = torch.tensor(pseudo, dtype=rewards.dtype, device=rewards.device)
    A, _ = group_advantages(R_hat, G, ctx.scale_adv_by_std)
    n_votes = sum(len(a) for a in votes.answers)
    metrics = {
        "label_accuracy": sum(label_acc) / len(label_acc),
        "majority_ratio": sum(ratio) / len(ratio),
        "reward_accuracy": (R_hat == (rewards >= 1.0).to(R_hat.dtype)).float().mean().item(),
        "pseudo_reward": R_hat.mean().item(),
        "no_answer_frac": sum(a is None for ans in votes.answers for a in ans) / n_votes,
    }
    return rollout, A, metrics


def task_of(ctx: BatchContext):
    """The run's task (its `answer_of` reads the answers), from the trainer's BatchContext."""
    task = getattr(ctx, "task", None)
    if task is None or getattr(task, "answer_of", None) is None:
        raise ValueError("label-free methods need the task's answer_of (a Task field that reads a completion's "
                         f"final answer); task {getattr(task, 'name', None)!r} has none")
    return task


@register_method("ttrl", config_cls=TTRLConfig, transform_batch=ttrl_batch, default_agg_mode="token-mean",
                 train_defaults={"kl_coef": 0.001},
                 summary="label-free TTRL: reward agreement with the majority answer of the samples")
def ttrl_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: TTRLConfig | None = None, extra=None):
    """GRPO's PPO-clip loss on the pseudo-label advantages that `ttrl_batch` made."""
    return grpo_loss(logp, old_logp, adv, mask, agg_mode, config or TTRLConfig(), extra)
