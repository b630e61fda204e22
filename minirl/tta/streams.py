"""Test streams: the order and batch size in which the corrupted test digits reach the adapter.

SAR (Niu et al. 2023) calls three conditions "wild": mixed distribution shifts, batch size 1, and
online imbalanced label shift. Here each condition is a `StreamSpec`:

    iid          one corruption, shuffled, batches of 64               (the mild setting Tent was made for)
    mixed        all five corruptions in one stream, shuffled, 64       (wild: mixed shifts)
    label_shift  all five corruptions, ordered by label, 64             (wild: online label shift, SAR's
                                                                         imbalance ratio → ∞: a batch holds
                                                                         one or two classes)
    batch1       all five corruptions, shuffled, batches of 1           (wild: batch size 1)

Our choice: the wild conditions all draw from the mixed pool (every test digit under each of the
five corruptions: 5 × 899 images), so that label shift and batch size 1 come on top of mixed
shifts and the streams are long enough to collapse in; SAR evaluates them corruption by
corruption. `max_samples` keeps a random subset of the pool (the batch-1 stream is the slow one).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .data import CORRUPTIONS, corrupt

CONDITIONS = {  # name -> (pool: one corruption or "mixed", order, batch size)
    "iid": ("one", "shuffled", 64),
    "mixed": ("mixed", "shuffled", 64),
    "label_shift": ("mixed", "by_label", 64),
    "batch1": ("mixed", "shuffled", 1),
}


class Stream(NamedTuple):
    x: torch.Tensor        # (N, 1, 8, 8), in the order the adapter sees it
    y: torch.Tensor        # (N,) labels, used only for scoring
    batch_size: int
    description: str


def make_stream(x_test: torch.Tensor, y_test: torch.Tensor, condition: str, corruption: str = "gaussian_noise",
                severity: int = 5, seed: int = 0, max_samples: int | None = None,
                batch_size: int | None = None) -> Stream:
    """The stream of `condition` (see `CONDITIONS`); `corruption` is used by "iid" only. The seed fixes
    the corruption noise, the subset and the order. `batch_size` overrides the condition's."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose one of: {', '.join(CONDITIONS)}")
    pool, order, size = CONDITIONS[condition]
    g = torch.Generator().manual_seed(seed)
    names = CORRUPTIONS if pool == "mixed" else (corruption,)
    x = torch.cat([corrupt(x_test, name, severity, g) for name in names])      # (K·N, 1, 8, 8)
    y = y_test.repeat(len(names))                                                # (K·N,)
    index = torch.randperm(len(y), generator=g)
    if max_samples is not None:
        index = index[:max_samples]
    if order == "by_label":
        index = index[torch.sort(y[index], stable=True).indices]                # class 0 first, then 1, ...
    what = "5 corruptions" if pool == "mixed" else corruption
    batch_size = batch_size or size
    return Stream(x[index], y[index], batch_size,
                  f"{condition}: {what}, severity {severity}, {order}, batch {batch_size}, {len(index)} images")
