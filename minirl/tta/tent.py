"""Tent: fully test-time adaptation by entropy minimisation (Wang, Shelhamer, Liu, Olshausen,
Darrell, ICLR 2021). The baseline that SAR, DeYO and the open-set filter start from, and the one
that collapses.

For each test batch x_1..x_B, predict, then take one gradient step on the norm layers' γ, β:

    H(x_i) = −Σ_c p_θ(c|x_i) log p_θ(c|x_i)              (entropy of the prediction, nats)
    L(θ)   = (1/B) Σ_i H(x_i)                              (Tent, Eq. 1: mean entropy of the batch)
    θ     ← θ − η ∇_θ L                                     (SGD with momentum)

Why it collapses. The gradient of H with respect to the logits z is ∂H/∂z_c = −p_c (log p_c + H):
it raises the logit of every class that is more likely than e^{−H} and lowers the others, so
each step makes every prediction more confident in whatever it already predicts, right or
wrong. Nothing in L asks the predictions to stay spread over the classes: the global minimum,
H = 0 everywhere, is reached just as well by sending every input to one class. A stream that
keeps pushing the same direction (batches of one class under label shift; one noisy image at a
time; noisy samples whose gradients are large) walks the shared γ, β there.
"""
from __future__ import annotations

import torch

from .adapter import TestTimeAdapter, softmax_entropy


class Tent(TestTimeAdapter):
    """Entropy minimisation on every sample of every batch (options: `lr`, `momentum`)."""

    name = "tent"

    @torch.enable_grad()
    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)                      # (B, C): the prediction, made before the update
        loss = softmax_entropy(logits).mean()       # L = (1/B) Σ_i H(x_i)
        self.minimise(loss)
        return logits.detach()
