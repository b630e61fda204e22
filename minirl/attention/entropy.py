"""Attention entropy: how spread out each head's attention is, per layer and head (Zhai et al.,
"Stabilizing Transformer Training by Preventing Attention Entropy Collapse", ICML 2023; Jha & Reagen,
"Entropy-Guided Attention for Private LLMs", AAAI'25 PPAI workshop).

Row i of head h's attention map A (after the softmax, under the causal mask) is a distribution
over the n_i keys that query i may attend to. Its entropy, in nats, is

    Ent(A_i) = −Σ_j A_ij log A_ij           0 ≤ Ent(A_i) ≤ log n_i           (Zhai et al., 2023, §3)

0 when the query attends to one key (one-hot), log n_i when it spreads evenly over all of them.
Under a causal mask the query at position i sees n_i = i + 1 keys (fewer with left padding:
only the real tokens up to i count), so the first query of a sequence always has entropy 0. The
normalised entropy Ent(A_i) / log n_i is in [0, 1] whatever the position; it is defined only
for queries with n_i ≥ 2, and averages skip the others.

"Entropy collapse" (Zhai et al.) is a head whose mean entropy falls towards 0: every query
looks at one token. "Entropic overload" (Jha & Reagen) is the opposite: a head whose
normalised entropy stays near 1 attends to everything evenly and so to nothing in particular.

Hugging Face models return the attention maps only from the "eager" attention (SDPA and flash
attention never form A); `attention_entropy` switches the model to eager for one forward pass
and back.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch


def row_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Ent(A_i) = −Σ_j A_ij log A_ij in nats for every row of attention maps (B, H, T, S) → (B, H, T).

    Masked keys carry A_ij = 0 and add nothing (0·log 0 = 0). The log takes max(A_ij, 1e-30) so that
    the gradient stays finite at A_ij = 0 (d(A log A)/dA = log A + 1 is −∞ there, and the softmax's
    backward pass would turn 0·∞ into NaN)."""
    return -(attn * torch.log(attn.clamp(min=1e-30))).sum(dim=-1)


def keys_attended(attention_mask: torch.Tensor) -> torch.Tensor:
    """n_i, the number of real keys query i sees under the causal mask: the running count of real
    tokens up to and including i (B, T) → (B, T); 0 on padding queries."""
    mask = attention_mask.long()
    return mask.cumsum(dim=-1) * mask


def head_entropy(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None,
                 normalise: bool = False) -> torch.Tensor:
    """Mean attention entropy of every head, averaged over the batch's real queries → (layers, heads).

    attentions: one (B, H, T, T) map per layer, as a model returns with `output_attentions=True`.
    normalise=True divides each row by log n_i first and averages only the rows with n_i ≥ 2.
    Gradients flow through (the entropy-guided regulariser trains on them).
    """
    B, H, T, _ = attentions[0].shape
    if attention_mask is None:
        attention_mask = torch.ones(B, T, dtype=torch.long, device=attentions[0].device)
    if attention_mask.shape != (B, T):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; the maps need {(B, T)}")
    n = keys_attended(attention_mask).to(attentions[0].device)                       # (B, T)
    valid = n >= 2 if normalise else n >= 1                                          # (B, T)
    log_n = torch.log(n.clamp(min=2).float())                                        # (B, T)
    per_layer = []
    for attn in attentions:
        ent = row_entropy(attn.float())                                              # (B, H, T)
        if normalise:
            ent = ent / log_n[:, None, :]                                            # Ent(A_i) / log n_i
        w = valid[:, None, :].float()                                                # (B, 1, T)
        per_layer.append((ent * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2)).clamp(min=1))  # (H,)
    return torch.stack(per_layer)                                                    # (L, H)


@contextmanager
def eager_attention(model):
    """Run a Hugging Face model with eager attention (the only kind that returns the maps) inside
    the block, and restore its attention implementation after."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    if before is None:
        raise ValueError(f"{type(model).__name__} has no config._attn_implementation; "
                         "pass its attention maps to head_entropy instead")
    if before != "eager":
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if before != "eager":
            model.set_attn_implementation(before)


def attention_maps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """The model's attention maps, one (B, H, T, T) tensor per layer, from one eager forward pass
    (with gradients if grad is enabled)."""
    with eager_attention(model):
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise RuntimeError(f"{type(model).__name__} returned no attention maps with output_attentions=True")
    return out.attentions


@torch.no_grad()
def attention_entropy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      normalise: bool = False) -> torch.Tensor:
    """Per-head attention entropy of a Hugging Face causal LM on a batch, in nats → (layers, heads).

    input_ids, attention_mask: (B, T), as a tokenizer returns them (left or right padding).
    normalise=True: Ent(A_i)/log n_i in [0, 1], averaged over the queries with n_i ≥ 2.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    maps = attention_maps(model, input_ids, attention_mask)
    return head_entropy(maps, attention_mask, normalise=normalise)
