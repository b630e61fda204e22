"""The "wisdom of crowds" filter for open-set test-time adaptation (Lee, Das, Choo, Choi, "Towards
Open-Set Test-Time Adaptation Utilizing the Wisdom of Crowds in Entropy Minimization", ICCV 2023).
The official code was not found; the rule below is the paper's, as the third-party
re-implementation github.com/gaozhengqing/UniEnt (`cifar/ostta.py`, `forward_and_adapt`) applies it.

Keep a frozen copy θ_o of the source model next to the adapting θ_a. If most samples are
adapted in a good direction (the crowd), a sample whose confidence *drops* under the adapted
model disagrees with the crowd: it is likely noisy, out-of-distribution, or being pushed to a
wrong class, and entropy minimisation on it would amplify the error. So, per sample:

    c      = argmax_k p_{θ_o}(k|x)                           (the source model's class)
    keep x iff  p_{θ_a}(c|x) ≥ p_{θ_o}(c|x) = max_k p_{θ_o}(k|x)
    L      = mean_{kept} H(p_{θ_a}(·|x))  −  α · H( mean_batch p_{θ_a}(·|x) )

Both models see the same batch (batch norm with the batch's statistics in both). On the first
batch θ_a = θ_o, so every sample passes (≥); the filter bites as θ_a moves away.

Options:
    lr, momentum   SGD, the same as every method in a comparison (our choice; UniEnt uses Adam, lr 1e-3).
    diversity      α = 0 (off). UniEnt subtracts α·H(batch-mean prediction), α = 0.5, for every method,
                   plain Tent included: a choice of that code base, not part of the paper's filter.
"""
from __future__ import annotations

import copy

import torch

from .adapter import TestTimeAdapter, softmax_entropy


def crowd_mask(probs_adapted: torch.Tensor, probs_source: torch.Tensor) -> torch.Tensor:
    """keep = p_a(c|x) ≥ p_o(c|x), c = argmax p_o(·|x); probs (B, C), (B, C) -> bool (B,)."""
    confidence_source, c = probs_source.max(dim=1)                           # (B,), (B,)
    return probs_adapted.gather(1, c.unsqueeze(1)).squeeze(1) >= confidence_source


class OSTTA(TestTimeAdapter):
    """Entropy minimisation on the samples whose confidence did not drop (see the module docstring)."""

    name = "ostta"

    def __init__(self, model, diversity: float = 0.0, **options):
        super().__init__(model, **options)
        self.source_model = copy.deepcopy(self.model).requires_grad_(False)   # θ_o, frozen, same norm mode
        self.diversity = diversity

    @torch.enable_grad()
    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)                                              # (B, C) under θ_a, the prediction
        probs = logits.softmax(dim=1)
        with torch.no_grad():
            probs_source = self.source_model(x).softmax(dim=1)             # (B, C) under θ_o
        keep = crowd_mask(probs.detach(), probs_source)                     # (B,)
        self.selected = keep.float().mean().item()
        loss = softmax_entropy(logits[keep]).mean() if keep.any() else logits.sum() * 0.0
        if self.diversity:
            mean_probs = probs.mean(dim=0)                                  # (C,): the batch's marginal prediction
            loss = loss + self.diversity * (mean_probs * mean_probs.log()).sum()   # − α·H(mean p)
        if keep.any() or self.diversity:
            self.minimise(loss)
        return logits.detach()
