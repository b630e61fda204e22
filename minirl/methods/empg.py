"""EMPG: Entropy-Modulated Policy Gradients (Wang et al., 2025, "Harnessing Uncertainty: Entropy-
Modulated Policy Gradients for Long-Horizon LLM Agents", arXiv 2509.09265; no official code: the
pseudocode of the project page, empgseed-seed.github.io, and the third-party re-implementation
github.com/WillDreamer/ARLArena, `compute_EMPG_advantage`).

For a softmax policy the expected squared score norm is 1 − exp(−H₂(π)) (paper Prop. 1): confident
steps get small gradients, uncertain ones large. EMPG rescales each step's advantage by a self-
normalised decreasing function of its entropy (confident steps count more, confident errors are
punished harder) and adds a bonus to a step whose successor is confident ("future clarity").

    H_j     = mean token entropy of step j under π_old
    Ĥ_j     = (H_j − min H) / (max H − min H + 1e-8)        min, max over all steps of the batch (Eq. 12)
    g_j     = exp(−k·Ĥ_j) / mean_batch exp(−k·Ĥ)             so that mean g = 1 (Eq. 10)
    f_j     = exp(−k_f·Ĥ_j)                                 future clarity (Eq. 11)
    A^mod_j = g_j·A(τ) + ζ·f_{j+1}                          (Eq. 8) f of the response's next step; none for the last
    A_j     = A^mod_j − mean_batch A^mod                    (Eq. 7 of the pseudocode) centred only, no ÷ std
Every token of step j gets A_j; A(τ) is the response's GRPO advantage. ζ = 0 is "gradient scaling
only" and k = 0 (g ≡ 1) "future bonus only", the paper's two ablations.

Settings (project page; no config keys, ARLArena: `compute_EMPG_advantage(k, k_f, zeta)`): k = 1.0,
k_f = 1.0, ζ = 0.1 (ARLArena uses 0.05). Base: GRPO/DAPO; we keep GRPO's PPO-clip, token-mean.

Steps: the paper's steps are agent turns. Here they come from the task's `info["segment"]` (countdown_
steps: each equation `a*b=c;` is a step, the answer `#c` and the EOS the last one), which the trainer
hands over as `ctx.segment(text, example) -> Segments`; or, with `step_separator` set (e.g. ";" or
"\n"), a step ends after each separator. A task without segments makes each response one step (then
g acts per response and there is no bonus); `steps_per_response` shows it. Tokens are mapped to
characters by the cumulative decoded length of the response's tokens; a token belongs to the step of
its first character, tokens past the text (EOS) to the last step. Ours: 1e-8 in both normalisers (as
ARLArena); H is the full-vocabulary entropy at the training temperature (`rollout.entropy`).

Metrics: `g_min`, `g_max` (the mean is 1 by construction), `frac_confident` (steps with Ĥ < 0.5),
`bonus_mean` (ζ·f over steps that get one), `adv_mean_removed` (the subtracted mean),
`steps_per_response`.
"""
from __future__ import annotations

import re
import warnings
from bisect import bisect_right
from dataclasses import dataclass

import torch

from .grpo import grpo_loss
from .registry import BatchContext, PolicyLossConfig, register_method


@dataclass
class EMPGConfig(PolicyLossConfig):
    k: float = 1.0
    """k: sharpness of the self-calibrating scale g (official 1.0)."""
    k_f: float = 1.0
    """k_f: sharpness of the future-clarity term f (official 1.0)."""
    zeta: float = 0.1
    """ζ: weight of the future-clarity bonus (project page 0.1; ARLArena 0.05)."""
    step_separator: str = ""
    """Empty: steps from the task's segmenter; else a step ends after each occurrence of this text."""


def step_ends(text: str, example, config: EMPGConfig, segment) -> list[int]:
    """Character positions where a new step starts (sorted, exclusive ends of the earlier steps)."""
    if config.step_separator:
        return [m.end() for m in re.finditer(re.escape(config.step_separator), text)]
    if segment is None:
        return []
    seg = segment(text, example)
    return sorted(set(seg.step_ends + ([seg.answer_start] if seg.answer_start is not None else [])))


def token_steps(rollout, ctx: BatchContext, config: EMPGConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) step index of every response token, steps numbered through the batch (−1 on padding),
    and (S,) the row of each step."""
    segment = getattr(ctx, "segment", None)
    if segment is None and not config.step_separator:
        warnings.warn("EMPG: the task gives no step segments (ctx.segment is None) and step_separator is "
                      "empty; every response is one step", stacklevel=3)
    mask = rollout.response_mask.bool()
    sid, row = torch.full(mask.shape, -1, dtype=torch.long), []
    for i, text in enumerate(rollout.completions):
        ids = rollout.response_ids[i][mask[i]].tolist()
        if not ids:
            continue
        if ctx.tokenizer is None:                                   # one character per token
            lengths = [1] * len(ids)
        else:
            lengths = [len(s) for s in ctx.tokenizer.batch_decode([[t] for t in ids], skip_special_tokens=True)]
        example = ctx.examples[i // ctx.group_size] if ctx.examples else None
        ends, start, local = step_ends(text, example, config, segment), 0, []
        for length in lengths:
            local.append(bisect_right(ends, min(start, max(len(text) - 1, 0))))
            start += length
        steps = torch.tensor(local)
        new = torch.cat([torch.ones(1, dtype=torch.bool), steps[1:] != steps[:-1]])
        sid[i, mask[i]] = len(row) + new.long().cumsum(0) - 1
        row += [i] * int(new.sum())
    return sid, torch.tensor(row, dtype=torch.long)


def empg_batch(rollout, rewards, advantages, config: EMPGConfig, ctx: BatchContext):
    """Per-token advantages (B, T): each step's A(τ) rescaled by g, plus ζ·f of the next step, centred."""
    if config.k < 0 or config.k_f < 0 or config.zeta < 0:
        raise ValueError(f"EMPG needs k >= 0, k_f >= 0 and zeta >= 0 (got k={config.k}, k_f={config.k_f}, "
                         f"zeta={config.zeta}); a negative k would amplify uncertain steps instead")
    sid, row = token_steps(rollout, ctx, config)                              # (B, T), (S,)
    valid, n_steps = sid >= 0, len(row)
    if n_steps == 0:
        return rollout, torch.zeros_like(rollout.response_mask, dtype=torch.float), {}
    H_tok = rollout.entropy.detach().float().cpu()
    count = torch.zeros(n_steps).index_add_(0, sid[valid], torch.ones(int(valid.sum())))
    H = torch.zeros(n_steps).index_add_(0, sid[valid], H_tok[valid]) / count  # (S,) H_j
    H_hat = (H - H.min()) / (H.max() - H.min() + 1e-8)                         # Eq. 12
    g = torch.exp(-config.k * H_hat)
    g = g / (g.mean() + 1e-8)                                                  # Eq. 10
    f = torch.exp(-config.k_f * H_hat)                                         # Eq. 11
    has_next = torch.zeros(n_steps, dtype=torch.bool)
    has_next[:-1] = row[1:] == row[:-1]
    bonus = torch.zeros(n_steps)
    bonus[:-1] = config.zeta * f[1:]
    bonus = bonus * has_next
    A_mod = g * advantages.detach().float().cpu()[row] + bonus                 # Eq. 8
    A = A_mod - A_mod.mean()                                                   # zero-mean normalisation
    A_tok = torch.where(valid, A[sid.clamp(min=0)], torch.zeros(()))
    metrics = {"g_min": g.min().item(), "g_max": g.max().item(),
               "frac_confident": (H_hat < 0.5).float().mean().item(),
               "bonus_mean": bonus[has_next].mean().item() if has_next.any() else 0.0,
               "adv_mean_removed": A_mod.mean().item(),
               "steps_per_response": n_steps / max(1, int(valid.any(dim=1).sum()))}
    return rollout, A_tok.to(advantages.device), metrics


@register_method("empg", config_cls=EMPGConfig, transform_batch=empg_batch, default_agg_mode="token-mean",
                 summary="EMPG: step advantages scaled by step confidence, plus a bonus for a clear next step")
def empg_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: EMPGConfig | None = None, extra=None):
    """GRPO's PPO-clip on the per-token advantages that `empg_batch` prepared."""
    return grpo_loss(logp, old_logp, adv, mask, agg_mode, config or EMPGConfig(), extra)
