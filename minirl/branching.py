"""Branching from high-entropy tokens: the rollout-side helpers that CURE (arXiv 2508.11016,
`methods/cure.py`) and ETTRL's ETMR (arXiv 2508.11356, `methods/ettrl.py`) share.

Both methods look at the per-token entropy H_{i,t} of a sampled response o_i, choose positions
where the policy was most undecided, and sample new continuations of the prefix o_i[:t] (the
token at t itself is re-sampled). This file holds the three steps that are the same in both:

  1. `fork_candidates`: which positions may be chosen (response tokens, minus special tokens,
     minus tokens whose text is too short, optionally minus position 0);
  2. `top_entropy_positions`: the k candidates with the highest score, highest first;
  3. `prefix_into_prompt`: a continued row's given prefix moved from its response into its
     prompt, so that the loss only ever sees the tokens that were sampled (CURE's code puts
     the prefix in the prompt field in the same way);
plus `grouped_concat`, which puts each prompt's extra rows next to its original ones so that
one GRPO group holds both, and `sampled_tokens`, the generation cost of a rollout.
"""
from __future__ import annotations

import torch

from .rollout import Rollout, concat_rollouts


def fork_candidates(response_ids: torch.Tensor, response_mask: torch.Tensor, skip_ids=(), tokenizer=None,
                    min_chars: int = 0, skip_first: bool = False) -> torch.Tensor:
    """(B, T) bool: the response positions a fork may start from.

    Excluded: padding, tokens in `skip_ids` (special tokens), tokens whose decoded text
    stripped of whitespace has fewer than `min_chars` characters (CURE's code: > 1 character,
    i.e. min_chars = 2), and position 0 when `skip_first` (CURE's code skips it)."""
    valid = response_mask.bool()
    if len(skip_ids):
        valid &= ~torch.isin(response_ids, torch.tensor(list(skip_ids), device=response_ids.device))
    if min_chars > 0:
        if tokenizer is None:
            raise ValueError("a min_chars filter needs the tokenizer to decode tokens")
        ids = response_ids.unique()
        long_enough = torch.tensor([len(tokenizer.decode([t]).strip()) >= min_chars for t in ids.tolist()],
                                   dtype=torch.bool, device=ids.device)
        valid &= torch.isin(response_ids, ids[long_enough])
    if skip_first:
        valid[:, 0] = False
    return valid


def top_entropy_positions(scores: torch.Tensor, candidates: torch.Tensor, k: int) -> list[list[int]]:
    """Per row, the (at most) k candidate positions with the highest score, highest first;
    ties go to the earlier position."""
    masked = scores.masked_fill(~candidates, float("-inf"))
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices            # (B, T)
    n_valid = candidates.sum(dim=1).clamp(max=k).tolist()
    return [order[i, :n].tolist() for i, n in enumerate(n_valid)]


def prefix_into_prompt(rollout: Rollout, pad_id: int) -> Rollout:
    """The same rows with each row's first `prefix_len` response tokens appended to its prompt:
    the response then holds only sampled tokens, so they alone carry loss (and advantage).
    Log-probs and entropies of the moved tokens are dropped; the completion text (what the
    reward read) stays whole; prefix_len becomes 0."""
    prompts, responses = [], []
    for i, p in enumerate(rollout.prefix_len.tolist()):
        n = int(rollout.response_mask[i].sum())
        prompt = rollout.prompt_ids[i][rollout.prompt_mask[i].bool()]
        prompts.append(torch.cat([prompt, rollout.response_ids[i, :p]]))
        responses.append(slice(p, n))
    P = max(len(x) for x in prompts)
    T = max(max(s.stop - s.start for s in responses), 1)
    B, device = len(rollout), rollout.response_ids.device
    prompt_ids = torch.full((B, P), pad_id, dtype=torch.long, device=device)
    prompt_mask = torch.zeros(B, P, device=device, dtype=rollout.prompt_mask.dtype)
    response_ids = torch.full((B, T), pad_id, dtype=torch.long, device=device)
    mask, old_log_prob, entropy = (torch.zeros(B, T, device=device) for _ in range(3))
    for i, (prompt, s) in enumerate(zip(prompts, responses)):
        prompt_ids[i, P - len(prompt):], prompt_mask[i, P - len(prompt):] = prompt, 1   # left-padded
        n = s.stop - s.start
        response_ids[i, :n], mask[i, :n] = rollout.response_ids[i, s], 1.0
        old_log_prob[i, :n], entropy[i, :n] = rollout.old_log_prob[i, s], rollout.entropy[i, s]
    return Rollout(prompt_ids, prompt_mask, response_ids, mask, old_log_prob, entropy, list(rollout.completions),
                   torch.zeros(B, dtype=torch.long))


def grouped_concat(original: Rollout, extra: Rollout, n_groups: int, pad_id: int) -> tuple[Rollout, torch.Tensor]:
    """Rows of `original` (n_groups blocks of G) and `extra` (n_groups blocks of K, block g
    belonging to prompt g) interleaved as [G originals of prompt 0, its K extra rows, G of
    prompt 1, ...]: one group of G + K per prompt. Returns the rollout and the row order
    (indices into the concatenation original ⊕ extra) to apply to per-row tensors."""
    G, K = len(original) // n_groups, len(extra) // n_groups
    if G * n_groups != len(original) or K * n_groups != len(extra):
        raise ValueError(f"{len(original)} + {len(extra)} rows do not split into {n_groups} groups")
    order = torch.cat([torch.cat([torch.arange(g * G, (g + 1) * G),
                                  len(original) + torch.arange(g * K, (g + 1) * K)]) for g in range(n_groups)])
    return concat_rollouts([original, extra], pad_id).select(order), order


def sampled_tokens(rollout: Rollout) -> int:
    """Tokens the rollout generated: its response tokens minus the given prefixes."""
    return int(rollout.response_mask.sum().item() - rollout.prefix_len.sum().item())
