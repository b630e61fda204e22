"""ETTRL: entropy-fork tree majority rollout (ETMR) + entropy-based advantage reshaping (EAR)
(Liu et al., 2025, "ETTRL: Balancing Exploration and Exploitation in LLM Test-Time Reinforcement
Learning Via Entropy Mechanism", arXiv 2508.11356, §3). No public code: the mechanics follow two
secondary summaries of the paper's method section that agree on the formulas, not yet checked
against the PDF; our choices are listed below.

Label-free test-time RL (TTRL) rewards a response by whether its final answer agrees with the
majority of many samples. ETMR gets those samples as a forest that forks only at the root chains'
highest-entropy tokens (shared prefixes cost fewer tokens, the leaves differ where the policy was
undecided); EAR damps the advantage of high-entropy responses and amplifies confident ones.

    roots     o_1..o_M ∼ π_old(·|q)                   (the trainer's rollout: M = group_size)
    forks     F_m = the N positions of o_m with the highest H_{m,t}  (top-N, no threshold)
    leaves    o_m  and  o_m[:t] ⊕ y_b,  y_b ∼ π_old(·|q ⊕ o_m[:t]),  t ∈ F_m, b = 1..B   (ETMR)
              R_tree = M(1 + N·B) leaves per prompt; cost ≈ (1 + ½NB)/(1 + NB) of R_tree samples
              (if the forks are spread evenly along the roots)
    label     ŷ = majority answer over the leaves (task.answer_of);  R_i = 1[answer(o_i) = ŷ]   (TTRL)
    A_i       GRPO over the R_tree leaves of the prompt; loss: PPO-clip, token-mean (verl's default, TTRL's)
    EAR res   H_i = mean_t H_{i,t};  H̄ = mean_i H_i;  Y_i = 1 + (H̄ − H_i)/H̄;  Â_i = Y_i·A_i   (Adv-Res)
    EAR clip  Â_i = clip(A_i, −β, β)

Settings (`--set name=value`; no official keys, the names are ours; paper values from the summaries):
    n_trees             M = the trainer's `group_size` (paper 12)
    fork_top_n          2     N (paper 2); 0 turns ETMR off: plain TTRL on M samples
    branches_per_fork   2     B (paper 2)
    fork_resample_token True  the branch re-samples the fork token (as CURE/ARPO); False keeps it
    ear_mode            res   res | clip | none
    ear_clip_beta       2.0   β of Adv-Clip (paper 2, single-source)
    ear_y_min           None  lower bound on Y_i (None: the paper's form, Y_i < 0 flips the advantage)
    train_branch_prefix True  a branch is a whole response in the loss (prefix included); False trains
                              only its sampled tokens (the prefix moves into the prompt, as in CURE)

Our choices: the tree forks once (branches are not forked again) from the rollout's roots; a root with
fewer than N valid positions reuses its positions in turn (every prompt keeps R_tree leaves, a fixed
group size); with `fork_resample_token=False` the EOS position cannot be a fork; all leaves are trained
(TTRL trains a subset of its votes, 32 of 64); leaves without an answer do not vote and get reward 0 (TTRL's
Counter counts an empty extraction as an answer); a tie goes to the answer seen first (roots first, as
Counter.most_common); EAR uses each leaf's whole response, entropies of π_old at the training temperature
(the summaries do not say which pass), and Y = 1 when H̄ = 0; the vote replaces the task reward only
for training (`reward` and `accuracy` still report the truth). No KL term by default (TTRL used k3
with β = 0.001: `--set kl_coef`).

At tiny scale the vote is right only if the warm start is (`label_accuracy` well above ½); from a
weak warm start at the smoke lr, TTRL and ETTRL can agree on a shared wrong answer within a few dozen
steps: use a stronger warm start and `--set lr=5e-5`. The highest-entropy tokens of 4–8-token answers
tend to be the first ones, so the branches are nearly whole responses and `token_ratio` stays well
above the 0.6 of evenly spread forks.

Metrics (`ettrl/…`): `majority_ratio` (share of leaves voting for ŷ), `label_accuracy` (ŷ is right,
read from the true rewards of the leaves that voted for it), `reward_accuracy` (pseudo reward = true
reward), `unique_answers` (distinct answers / leaves), `leaf_accuracy` (true), `y_min`/`y_mean`/`y_max`,
`y_negative_frac`, `tokens_sampled` (roots + branch tokens sampled in the step), `token_ratio` (that /
R_tree independent samples of the roots' mean length), `leaves` (rows trained).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..branching import fork_candidates, grouped_concat, prefix_into_prompt, sampled_tokens, top_entropy_positions
from ..core import group_advantages, masked_mean
from .grpo import grpo_loss
from .ttrl import majority_vote
from .registry import BatchContext, PolicyLossConfig, register_method

EAR_MODES = ("res", "clip", "none")


@dataclass
class ETTRLConfig(PolicyLossConfig):
    fork_top_n: int = 2
    """N: forks per root chain, its highest-entropy positions (paper 2, per the summaries)."""
    branches_per_fork: int = 2
    """B: branches sampled at each fork (paper 2, per the summaries)."""
    fork_resample_token: bool = True
    """True: a branch re-samples the fork token; False: it keeps it and starts after it."""
    ear_mode: str = "res"
    """Advantage reshaping: "res" (Adv-Res, Y_i·A_i), "clip" (Adv-Clip), "none" (plain GRPO)."""
    ear_clip_beta: float = 2.0
    """β of Adv-Clip: A clipped to [−β, β] (paper 2, single-source)."""
    ear_y_min: float | None = None
    """Lower bound on Y_i; None is the paper's form, where Y_i < 0 flips the sign of A_i."""
    train_branch_prefix: bool = True
    """True: every leaf is trained as a whole response; False: branches only on sampled tokens."""


def read_answers(completions: list[str], ctx: BatchContext, L: int, config: ETTRLConfig) -> list:
    """answer(o_i) of every leaf, read by the task's `answer_of` (never with the label)."""
    if getattr(ctx, "answer_of", None) is None:
        raise ValueError("ettrl votes with the task's answer_of (a Task field that reads a completion's final "
                         "answer); this task has none")
    return [ctx.answer_of(text, ctx.examples[i // L]) for i, text in enumerate(completions)]


def _check(config: ETTRLConfig) -> None:
    if (config.ear_mode or "none") not in EAR_MODES:               # `--set ear_mode=none` arrives as None
        raise ValueError(f"unknown ear_mode {config.ear_mode!r}; choose one of: {', '.join(EAR_MODES)}")
    if config.fork_top_n < 0 or config.branches_per_fork < 0 or config.ear_clip_beta <= 0:
        raise ValueError("ettrl needs fork_top_n >= 0, branches_per_fork >= 0 and ear_clip_beta > 0 (got "
                         f"{config.fork_top_n}, {config.branches_per_fork}, {config.ear_clip_beta})")


def fork_points(rollout, config: ETTRLConfig, eos_id: int) -> list[list[int]]:
    """F_m: N fork positions t of every root, highest entropy first (reused in turn when too few).
    A branch continues o[:t] (fork token re-sampled) or o[:t + 1] (kept); a root with no valid
    position branches from the start: t = 0, or −1 when the fork token is kept."""
    skip = () if config.fork_resample_token else (eos_id,)
    top = top_entropy_positions(rollout.entropy, fork_candidates(rollout.response_ids, rollout.response_mask, skip),
                                config.fork_top_n)
    start = [0 if config.fork_resample_token else -1]
    return [[(c or start)[j % max(len(c), 1)] for j in range(config.fork_top_n)] for c in top]


def majority_rewards(answers: list, n_groups: int) -> tuple[torch.Tensor, list]:
    """TTRL's pseudo reward R_i = 1[answer_i = majority answer of its group] and each group's label."""
    L = len(answers) // n_groups
    rewards, labels = [], []
    for g in range(n_groups):
        group = answers[g * L:(g + 1) * L]
        label, _ = majority_vote(group)                       # unreadable answers abstain; ties: first met
        labels.append(label)
        rewards += [float(label is not None and a == label) for a in group]
    return torch.tensor(rewards), labels


def entropy_reshape(adv, H_resp, group_size: int, config: ETTRLConfig):
    """EAR: Â = Y·A with Y_i = 1 + (H̄ − H_i)/H̄ (res), or clip(A, −β, β) (clip). Returns (Â, Y)."""
    if config.ear_mode == "clip":
        return adv.clamp(-config.ear_clip_beta, config.ear_clip_beta), torch.ones_like(adv)
    if config.ear_mode in ("none", None):
        return adv, torch.ones_like(adv)
    H = H_resp.view(-1, group_size)                                              # (n_groups, L)
    H_bar = H.mean(dim=1, keepdim=True)
    Y = torch.where(H_bar > 0, 1 + (H_bar - H) / H_bar.clamp(min=1e-12), torch.ones_like(H)).reshape(-1)
    if config.ear_y_min is not None:
        Y = Y.clamp(min=config.ear_y_min)
    return Y * adv, Y


def grow_trees(rollout, rewards, config: ETTRLConfig, ctx: BatchContext):
    """ETMR: B branches at each of the N forks of every root. Returns the leaves (grouped per
    prompt: M roots, then their branches), their true rewards, H_i of each leaf and the tokens
    the branches sampled."""
    N, B, n_groups = config.fork_top_n, config.branches_per_fork, len(rollout) // ctx.group_size
    H_resp = masked_mean(rollout.entropy, rollout.response_mask, dim=1)          # (B,) H_i of the roots
    if N * B == 0:
        return rollout, rewards, H_resp, 0
    forks = fork_points(rollout, config, ctx.tokenizer.eos_token_id)
    shift = 0 if config.fork_resample_token else 1
    rows = [i for i in range(len(rollout)) for _ in range(N)]
    prefixes = [rollout.response_ids[i, :t + shift].tolist() for i in range(len(rollout)) for t in forks[i]]
    branches, branch_rewards = ctx.continue_rows(rows, prefixes, B)
    H_branch = masked_mean(branches.entropy, branches.response_mask, dim=1)      # whole leaf, prefix included
    extra_tokens = sampled_tokens(branches)
    if not config.train_branch_prefix:
        branches = prefix_into_prompt(branches, ctx.pad_id)
    leaves, order = grouped_concat(rollout, branches, n_groups, ctx.pad_id)
    true_rewards = torch.cat([rewards, branch_rewards.to(rewards.device)])[order]
    return leaves, true_rewards, torch.cat([H_resp, H_branch.to(H_resp.device)])[order], extra_tokens


def ettrl_batch(rollout, rewards, advantages, config: ETTRLConfig, ctx: BatchContext):
    """Grow each root into a tree, vote, reward leaves by agreement, reshape advantages by entropy."""
    _check(config)
    n_groups, L = len(rollout) // ctx.group_size, ctx.group_size * (1 + config.fork_top_n * config.branches_per_fork)
    leaves, true_rewards, H_resp, extra_tokens = grow_trees(rollout, rewards, config, ctx)
    answers = read_answers(leaves.completions, ctx, L, config)
    pseudo, labels = majority_rewards(answers, n_groups)
    pseudo = pseudo.to(rewards.device)
    adv, _ = group_advantages(pseudo, L, ctx.scale_adv_by_std)
    adv, Y = entropy_reshape(adv, H_resp.to(adv.device), L, config)
    root_tokens = sampled_tokens(rollout)
    return leaves, adv, {
        **vote_metrics(answers, labels, pseudo, true_rewards, n_groups),
        "y_min": Y.min().item(), "y_mean": Y.mean().item(), "y_max": Y.max().item(),
        "y_negative_frac": (Y < 0).float().mean().item(), "leaves": float(len(leaves)),
        "tokens_sampled": float(root_tokens + extra_tokens),
        "token_ratio": (root_tokens + extra_tokens) / (root_tokens * L / ctx.group_size)}


def vote_metrics(answers, labels, pseudo, true_rewards, n_groups: int) -> dict:
    """TTRL's diagnostics of the vote, measured against the true rewards."""
    L, correct = len(answers) // n_groups, (true_rewards >= 1.0).float()
    groups = [range(g * L, (g + 1) * L) for g in range(n_groups)]
    label_right = [any(answers[i] is not None and answers[i] == labels[g] and correct[i] for i in rows)
                   for g, rows in enumerate(groups)]
    return {"majority_ratio": pseudo.mean().item(), "label_accuracy": sum(label_right) / n_groups,
            "reward_accuracy": (pseudo == correct).float().mean().item(), "leaf_accuracy": correct.mean().item(),
            "unique_answers": sum(len({answers[i] for i in rows} - {None}) for rows in groups) / len(answers)}


@register_method("ettrl", config_cls=ETTRLConfig, default_agg_mode="token-mean", transform_batch=ettrl_batch,
                 summary="ETTRL: label-free majority vote over an entropy-fork tree, entropy-reshaped advantages")
def ettrl_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
               config: ETTRLConfig | None = None, extra=None):
    """GRPO's PPO-clip loss on the leaves that `ettrl_batch` prepared."""
    return grpo_loss(logp, old_logp, adv, mask, agg_mode, config or ETTRLConfig(), extra)
