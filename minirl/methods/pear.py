"""PEAR: Phase Entropy Aware Reward (Huang, Lu, Zhang, 2025, "PEAR: Phase Entropy Aware Reward for
Efficient Reasoning", arXiv 2510.08026, Eqs. 5–7 as a secondary note transcribes them, consistent
with the paper's OpenReview reviews, openreview.net/forum?id=HLc2igXEA3; the PDF and the official
`entropy.py` of github.com/iNLP-Lab/PEAR, not available, were not read).

A correct response is worth less the more uncertain its reasoning was, measured against the
entropy of its own answer: the reward pushes the thinking phase to be short and decisive while
leaving the answer phase free. Wrong responses keep the format score, so correctness stays the
first signal; the shaped reward then goes through the ordinary GRPO advantage.

    k        = position of the separator token (`</think>` in the paper, `#` in countdown_steps);
               it belongs to neither phase
    H̄_think  = mean_{t<k} H_t,   H̄_answer = mean_{t>k} H_t       (H_t: π_old's full-vocabulary entropy)   (Eq. 5)
    P(y)     = max(0, H̄_think − α·H̄_answer)                                                         (Eq. 6)
    r(y)     = min(1, s − P(y))  if y is correct,  r_fmt otherwise                                     (Eq. 7)
    no separator: k = T, H̄_answer = 0, so P = H̄_think
    A_i      = (r_i − mean_G r) / std_G r                          (GRPO; the loss is unchanged)

The phases come from the task: `task.info["segment"](text, example).answer_start`, the character
index of the separator, mapped to a token by decoding growing prefixes of the response (so a
token of several characters, as real tokenizers have, is found too). A task without a segmenter
has no answer phase: the whole response counts as thinking (P = mean entropy of the response).

Settings (`--set name=value`; paper default, official name where known):
    alpha        1.0 — α, the answer-entropy coefficient (paper ablation: −1, 0, 0.5, 1, 2; 1 best).
    score        1.0 — s (`compute_score(score=1.0)`).
    format_score 0.0 — r_fmt, the reward of a wrong or unparseable response (`format_score=0.0`).
    pear_floor   None — ours: nothing bounds r from below, so a correct response with
                 P > s − r_fmt scores under a wrong one; a number clips r of correct responses from
                 below at it (r_fmt is the natural choice). None is the paper's form.
    Ours: a response is correct when its task reward is ≥ 1; the EOS token belongs to the answer
    phase (it is a generated token after the separator); a response cut off before the separator
    is scored like any other (it is wrong on our tasks, so r = r_fmt); loss PPO-clip, token-mean.

With std-scaled GRPO advantages a lone correct response in its group gets the same advantage
whatever its r, so PEAR acts only among two or more correct responses (or where r < r_fmt): it
needs a warm start that is often right (the countdown_steps warm start, trained 1500 steps; notebook
04 compares PEAR with GRPO there over seeds). What it targets is `pear/think_entropy` of correct
answers and their length, not pass@1. On countdown_steps the answer repeats the last step, so
H̄_answer is close to 0 and α barely matters.

Metrics (`pear/…`): `think_entropy`, `answer_entropy` (mean H̄ of each phase over the responses
that have it), `penalty_correct` (mean P over correct responses), `no_answer_frac` (responses
without an answer phase), `below_format_frac` (responses whose r fell below r_fmt, before the
floor), `reward_mean` (mean r).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import group_advantages
from .grpo import grpo_loss
from .registry import BatchContext, PolicyLossConfig, register_method


@dataclass
class PEARConfig(PolicyLossConfig):
    alpha: float = 1.0
    """α: weight of the answer-phase entropy subtracted from the thinking-phase entropy."""
    score: float = 1.0
    """s: the reward of a correct response before the penalty."""
    format_score: float = 0.0
    """r_fmt: the reward of a wrong or unparseable response."""
    pear_floor: float | None = None
    """Lower bound of a correct response's reward (ours; None = the paper's unbounded form)."""


def token_at_char(tokenizer, ids: list[int], char_index: int) -> int:
    """Index of the token whose decoded text covers character `char_index` of decode(ids)
    (binary search on prefix lengths); len(ids) if the text is shorter."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[:mid + 1])) > char_index:
            hi = mid
        else:
            lo = mid + 1
    return lo


def phase_entropies(H: torch.Tensor, length: int, k: int | None) -> tuple[float, float | None]:
    """(H̄_think, H̄_answer) of one response's token entropies H (T,) with `length` valid tokens and
    the separator at token k (None: no answer phase, H̄_answer = None, counted as 0 in P)."""
    think = H[:length if k is None else k]
    answer = H[k + 1:length] if k is not None else H[:0]
    H_think = think.mean().item() if len(think) else 0.0
    return H_think, (answer.mean().item() if len(answer) else None)


def separator_token(rollout, row: int, segment, example, tokenizer) -> int | None:
    """Token index of the separator in row `row`, or None where there is none."""
    if segment is None:
        return None
    start = segment(rollout.completions[row], example).answer_start
    if start is None:
        return None
    length = int(rollout.response_mask[row].sum())
    ids = rollout.response_ids[row, :length].tolist()
    if ids and ids[-1] == tokenizer.eos_token_id:                 # completions are decoded without EOS
        ids = ids[:-1]
    k = token_at_char(tokenizer, ids, start)
    return k if k < len(ids) else None


def pear_batch(rollout, rewards, advantages, config: PEARConfig, ctx: BatchContext):
    """Shape the reward of every response by its phase entropies, then GRPO advantages."""
    task = getattr(ctx, "task", None)
    segment = task.info.get("segment") if task is not None else None        # no segmenter: all reasoning
    if segment is not None and ctx.tokenizer is None:
        raise ValueError("pear needs ctx.tokenizer to map the separator's character to a token")
    G, H = ctx.group_size, rollout.entropy                                    # H (B, T) of π_old
    r, H_think, H_answer, penalty_correct, below = [], [], [], [], 0
    for i in range(len(rollout)):
        length = int(rollout.response_mask[i].sum())
        k = separator_token(rollout, i, segment, ctx.examples[i // G], ctx.tokenizer)
        h_think, h_answer = phase_entropies(H[i], length, k)
        P = max(0.0, h_think - config.alpha * (h_answer or 0.0))                          # Eq. 6
        correct = rewards[i].item() >= 1.0
        r_i = min(1.0, config.score - P) if correct else config.format_score               # Eq. 7
        below += r_i < config.format_score
        if correct and config.pear_floor is not None:
            r_i = max(r_i, config.pear_floor)
        r.append(r_i)
        H_think.append(h_think)
        if h_answer is not None:
            H_answer.append(h_answer)
        if correct:
            penalty_correct.append(P)
    r = torch.tensor(r, dtype=rewards.dtype, device=rewards.device)
    A, _ = group_advantages(r, G, ctx.scale_adv_by_std)
    metrics = {"think_entropy": _mean(H_think), "answer_entropy": _mean(H_answer),
               "penalty_correct": _mean(penalty_correct), "no_answer_frac": 1.0 - len(H_answer) / len(rollout),
               "below_format_frac": below / len(rollout), "reward_mean": r.mean().item()}
    return rollout, A, metrics


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@register_method("pear", config_cls=PEARConfig, transform_batch=pear_batch, default_agg_mode="token-mean",
                 summary="PEAR: reward correct answers minus thinking-phase entropy relative to answer entropy")
def pear_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: PEARConfig | None = None, extra=None):
    """GRPO's PPO-clip loss on the PEAR-shaped advantages."""
    return grpo_loss(logp, old_logp, adv, mask, agg_mode, config or PEARConfig(), extra)
