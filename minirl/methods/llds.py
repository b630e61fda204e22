"""LLDS: a likelihood-preserving regulariser against Lazy Likelihood Displacement (Deng et al.,
2025, "On GRPO Collapse in Search-R1: The Lazy Likelihood-Displacement Death Spiral", arXiv
2512.04220; official code:
github.com/vengdeng/LLDS-On-Group-Relative-Policy-Optimization-Collapse-in-Search-R1, `dp_actor.py`).

Under GRPO the likelihood of correct and incorrect responses alike can stagnate and then fall
("lazy likelihood displacement"), until low-confidence responses blow up the gradient. LLDS adds
a hinge penalty on likelihood *decreases* of sampled tokens, gated to where it matters: only
non-negative-advantage tokens, and only inside actions (or responses) whose total log-likelihood
actually went down during the update.

    d_t      = old_logp_t − logp_t                              (> 0: the token lost likelihood)
    P        = { t : M_t = 1, A_t ≥ 0 }                          (preserving set)
    gate(t)  = 1[ Σ_{s ∈ c(t)} d_s > 0 ]     c(t) = the maximal run of P-tokens holding t  (A-gate)
                                             c(t) = all P-tokens of t's response            (R-gate)
    L_LLDS   = λ · (1/Σ M) Σ_t M_t · gate(t) · 1[t ∈ P] · max(0, d_t)
    L        = L_GRPO + L_LLDS

The gate is a detached comparison; the gradient flows through max(0, d_t) only, pushing the lost
likelihood back up. As in the official code, L_LLDS is a token-mean over all response tokens
whatever `loss_agg_mode` the PG term uses, and A ≥ 0 includes zero-advantage tokens.

Settings (official keys, `train_grpo_nqhot.sh`):
  no_reduce_lambda = 0.2    λ (`actor.no_reduce_lambda`).
  chunk_noreduce = True     A-gate (True, the paper's best) or R-gate (False) (`actor.chunk_noreduce`).
  reduce_threshold = 0.0    (`actor.reduce_threshold`) exposed by the official code but never used:
                            its gate compares with 0. OURS: we compare with this value (0 = official).
Not implemented: `mask_answer` / `answer_no_reduce_lambda` / `mask_adaptive` (LLDS-MA) need an
answer-region mask and a search count that single-turn tasks do not have. The recipe also sets
KL-to-ref 0.001 (low_var_kl): `kl_coef` of the trainer, not turned on here.

Which gate is inert here: the A-gate needs tool-observation spans masked out of M, so that a
response splits into several actions. On the single-turn tasks of minirl M is one contiguous run
per response, so the A-gate reduces exactly to the R-gate (the tests show both on a mask with a
hole). At the first mini-batch update of a step d = 0 and L_LLDS = 0; it acts from the second on.
At CPU scale λ = 0.2 is a fine start; the hinge only bites once the policy has moved (ppo_kl > 0).

Metrics: `loss_noreduce` (L_LLDS), `active_frac` (fraction of response tokens penalised: gated,
in P, d > 0), `mean_reduce_chunk` (gated actions per A ≥ 0 response), `pos_old_logp` and
`neg_old_logp` (mean old log-prob of A > 0 and A < 0 tokens: the likelihoods LLD is about; the
official code divides these sums by all response tokens instead).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core import masked_mean, ppo_clip_loss
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class LLDSConfig(PolicyLossConfig):
    no_reduce_lambda: float = 0.2
    """λ: weight of the likelihood-preserving hinge (official 0.2)."""
    chunk_noreduce: bool = True
    """True: gate per action (A-gate, official default); False: per response (R-gate)."""
    reduce_threshold: float = 0.0
    """The gate fires where Σ d > this; the official code ignores its key and uses 0."""


def action_ids(P: torch.Tensor) -> torch.Tensor:
    """(B, T) long: 0 outside P, k = 1, 2, ... on the k-th maximal run of P-tokens in each row."""
    previous = F.pad(P[:, :-1], (1, 0), value=False)
    starts = P & ~previous                                              # first token of each run
    return starts.long().cumsum(dim=1) * P.long()


def displacement_gate(d: torch.Tensor, P: torch.Tensor, per_action: bool, threshold: float = 0.0):
    """gate(t)·1[t ∈ P] as a (B, T) bool, and the (B,) number of gated actions per row."""
    ids = action_ids(P) if per_action else P.long()                     # R-gate: one run per row
    K = int(ids.max())
    sums = d.new_zeros(d.shape[0], K + 1).scatter_add_(1, ids, d * P)   # (B, K+1); column 0 = outside P
    fires = sums > threshold
    fires[:, 0] = False
    return fires.gather(1, ids) & P, fires.sum(dim=1)


@register_method("llds", config_cls=LLDSConfig, default_agg_mode="token-mean",
                 summary="LLDS: hinge on likelihood decreases of A≥0 tokens, gated per action/response")
def llds_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
              config: LLDSConfig | None = None, extra: LossExtras | None = None):
    config = config or LLDSConfig()
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)

    d = old_logp - logp                                                  # (B, T)
    P = mask.bool() & (adv >= 0)                                         # preserving set
    gate, n_gated = displacement_gate(d.detach(), P, config.chunk_noreduce, config.reduce_threshold)
    L_llds = config.no_reduce_lambda * masked_mean(gate * torch.relu(d), mask)
    loss = pg_loss + L_llds

    M = mask.bool()
    preserving_rows = P.any(dim=1)                                       # responses with A ≥ 0
    metrics = {
        **pg_metrics,
        "loss_noreduce": L_llds.item(),
        "active_frac": masked_mean((gate & (d > 0)).float(), mask).item(),
        "mean_reduce_chunk": n_gated[preserving_rows].float().mean().item() if preserving_rows.any() else 0.0,
        "pos_old_logp": masked_mean(old_logp, M & (adv > 0)).item(),
        "neg_old_logp": masked_mean(old_logp, M & (adv < 0)).item(),
    }
    return loss, metrics
