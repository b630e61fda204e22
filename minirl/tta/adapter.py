"""What every test-time method shares: the prediction entropy, the online protocol, and a copy of
the source weights to return to.

Online test-time adaptation (Wang et al. 2021, "Tent"; Niu et al. 2023, "SAR") sees the test data
once, as a stream of unlabelled batches. For every batch the adapter

    1. predicts with its current weights θ_t          (these predictions are scored),
    2. updates θ_t → θ_{t+1} from the same batch, without labels.

So a batch is predicted before the model has learned from it, and the next batch benefits.
Only the norm layers' affine parameters γ, β are trained (`norm_affine_parameters`), with SGD
and momentum 0.9 as in the official Tent/SAR/DeYO code; every other weight stays the source's.
Batch-norm layers normalise with the statistics of the test batch (Tent's choice, kept by SAR
and DeYO), which is what makes a batch-norm model fragile at batch size 1 or under label shift.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .models import norm_affine_parameters


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(x) = −Σ_c p_c log p_c with p = softmax(logits), in nats; logits (B, C) -> (B,)."""
    logp = logits.log_softmax(dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def use_test_batch_statistics(model: nn.Module) -> nn.Module:
    """Train mode (batch-norm layers normalise with the current batch's mean and variance; group
    and layer norm do not care), every weight frozen except the norm layers' γ and β."""
    model.train()
    model.requires_grad_(False)
    for p in norm_affine_parameters(model):
        p.requires_grad_(True)
    return model


class TestTimeAdapter:
    """Base class: holds the adapted copy of the model, its SGD optimiser over γ, β, and the source
    state for `reset`. A subclass implements `adapt(x) -> logits` (predict first, then update).

    lr        SGD learning rate (the same for every method in a comparison).
    momentum  SGD momentum, 0.9 in the Tent, SAR and DeYO code.
    """

    name = "base"

    def __init__(self, model: nn.Module, lr: float = 0.01, momentum: float = 0.9):
        self.model = use_test_batch_statistics(copy.deepcopy(model))
        self.params = norm_affine_parameters(self.model)
        self.optimizer = torch.optim.SGD(self.params, lr=lr, momentum=momentum)
        self.source_state = copy.deepcopy((self.model.state_dict(), self.optimizer.state_dict()))
        self.resets = 0           # how many times the weights went back to the source's
        self.selected = 1.0       # fraction of the last batch that the loss used

    def adapt(self, x: torch.Tensor) -> torch.Tensor:  # x (B, 1, 8, 8) -> logits (B, C), detached
        raise NotImplementedError

    def reset(self) -> None:
        """Back to the source weights and a fresh optimiser state (SAR's model recovery)."""
        model_state, optimizer_state = copy.deepcopy(self.source_state)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optimizer_state)
        self.resets += 1

    def minimise(self, loss: torch.Tensor) -> None:
        """One SGD step on `loss`; a loss over no sample (an empty selection) changes nothing."""
        self.optimizer.zero_grad()
        if loss.requires_grad and torch.isfinite(loss):
            loss.backward()
            self.optimizer.step()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapt(x)


class Source(TestTimeAdapter):
    """No adaptation: the source model in eval mode (batch norm uses its training statistics)."""

    name = "source"

    def __init__(self, model: nn.Module, **options):
        super().__init__(model, **options)
        self.model.eval()

    @torch.no_grad()
    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
