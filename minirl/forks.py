"""Where a completion's entropy lives: the *forks*, the few positions where the policy really
chooses between different continuations (notebook 02, section 5)."""
from __future__ import annotations

from .rollout import Rollout


def forks_marked(batch: Rollout, row: int, tokenizer, threshold: float = 1.0) -> str:
    """Completion `row` of `batch` as text, each token drawn where H ≥ threshold nats written ⟨token|H⟩."""
    n = int(batch.response_mask[row].sum())
    pieces = [tokenizer.decode([token]) if H < threshold else f"⟨{tokenizer.decode([token])}|{H:.1f}⟩"
              for token, H in zip(batch.response_ids[row, :n].tolist(), batch.entropy[row, :n].tolist())]
    return "".join(pieces)


def position_entropy(batch: Rollout, width: int = 1) -> list[float]:
    """Mean entropy (nats) at each response position over the batch's rows that reach it, or over
    blocks of `width` positions (positions counted from 1; sub-word tokens need blocks)."""
    H_sum, n = (batch.entropy * batch.response_mask).sum(dim=0), batch.response_mask.sum(dim=0)   # (T,), (T,)
    return [(h.sum() / c.sum()).item() for h, c in zip(H_sum.split(width), n.split(width))]
