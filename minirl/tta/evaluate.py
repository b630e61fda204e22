"""Run a test-time method on a stream and measure it: how often it is right, how confident it has
become, and whether its predictions have collapsed onto one class.

    result = evaluate("tent", "batch1", model, split.x_test, split.y_test, seed=0, base_lr=0.01)
    result["accuracy"], result["final_entropy"], result["top_class_fraction"]

Metrics (all over the stream's online predictions, each made before the update on its batch):

    accuracy            fraction of correct predictions
    final_entropy       mean prediction entropy H = −Σ_c p_c ln p_c (nats) over the last `tail`
                        (20 %) of the stream: ~0 after a collapse; ln 10 = 2.30 is a uniform guess
    top_class_fraction  fraction of all predictions that go to the most frequent predicted class:
                        ~0.1 on the balanced digits, 1.0 when everything is sent to one class
    resets              how many times the method went back to the source weights (SAR)
    selected            mean fraction of a batch that the method's loss used (1 for Tent)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import get_tta_method
from .adapter import TestTimeAdapter, softmax_entropy
from .streams import Stream, make_stream


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """The learning rate for a batch size, by the rule of SAR's code (`main.py`, ResNet): base_lr at
    batch size ≥ 32, else base_lr · batch_size / 64 · 2 (so batch size 1 gets base_lr / 32)."""
    return base_lr if batch_size >= 32 else base_lr * batch_size / 64 * 2


@dataclass
class StreamResult:
    """What an adapter predicted on a stream, sample by sample, and what it did batch by batch."""

    predictions: torch.Tensor                      # (N,) predicted class
    labels: torch.Tensor                           # (N,) true class
    entropy: torch.Tensor                          # (N,) prediction entropy, nats
    selected: list[float] = field(default_factory=list)   # per batch: fraction the loss used
    reset_at: list[int] = field(default_factory=list)     # sample index after which a reset happened

    def summary(self, tail: float = 0.2) -> dict[str, float]:
        last = self.entropy[-max(1, int(tail * len(self.entropy))):]
        counts = torch.bincount(self.predictions)
        return {"accuracy": (self.predictions == self.labels).float().mean().item(),
                "final_entropy": last.mean().item(),
                "top_class_fraction": (counts.max() / len(self.predictions)).item(),
                "resets": len(self.reset_at),
                "selected": sum(self.selected) / max(1, len(self.selected))}


def run_stream(adapter: TestTimeAdapter, stream: Stream) -> StreamResult:
    """Feed the stream to the adapter batch by batch (predict, then adapt) and record everything."""
    predictions, entropies, selected, reset_at = [], [], [], []
    for start in range(0, len(stream.y), stream.batch_size):
        resets = adapter.resets
        logits = adapter(stream.x[start:start + stream.batch_size])         # (B, C)
        predictions.append(logits.argmax(dim=1))
        entropies.append(softmax_entropy(logits))
        selected.append(adapter.selected)
        if adapter.resets > resets:
            reset_at.append(start + len(logits))
    return StreamResult(torch.cat(predictions), stream.y, torch.cat(entropies), selected, reset_at)


def evaluate(method: str, condition: str, model: nn.Module, x_test: torch.Tensor, y_test: torch.Tensor,
             corruption: str = "gaussian_noise", severity: int = 5, seed: int = 0, max_samples: int | None = None,
             base_lr: float = 0.01, return_result: bool = False, **options) -> dict:
    """Run `method` (a name in TTA_METHODS, built from `model` with `options`) on the stream of
    `condition` (a name in CONDITIONS; `corruption` for "iid" only) and return its summary:
    accuracy, final_entropy, top_class_fraction, resets, selected. The SGD learning rate is
    `scaled_lr(base_lr, batch size)` unless `lr` is among the options. `seed` fixes the stream
    (noise, order) and torch's RNG; with `return_result` the StreamResult comes back as "result"."""
    stream = make_stream(x_test, y_test, condition, corruption, severity, seed, max_samples)
    torch.manual_seed(seed)
    options.setdefault("lr", scaled_lr(base_lr, stream.batch_size))
    adapter = get_tta_method(method)(model, **options)
    result = run_stream(adapter, stream)
    summary = {"method": method, "condition": condition, "corruption": corruption if condition == "iid" else "mixed",
               "severity": severity, "seed": seed, "lr": options["lr"], **result.summary()}
    return {**summary, "result": result} if return_result else summary
