"""Many `evaluate` calls at once (methods × conditions × corruptions × seeds), and the mean ± std
tables over seeds that the notebook prints.

    rows = run_grid(models, x_test, y_test, methods=["source", "tent", "sar"], conditions=["iid", "batch1"])
    print(format_table(mean_std(rows, ("method", "condition")), ["source", "tent", "sar"], ["iid", "batch1"]))

`models` maps a seed to the source model trained with that seed; the same seed fixes the stream
(corruption noise and order), so a seed is one independent repetition of the whole pipeline.
A condition that holds one corruption ("iid") is run for each corruption; `mean_std` first
averages a seed's rows within a cell (over the corruptions), then takes mean and standard
deviation (ddof = 1) of those per-seed values.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from .data import CORRUPTIONS
from .evaluate import evaluate
from .streams import CONDITIONS


def run_grid(models: dict[int, nn.Module], x_test: torch.Tensor, y_test: torch.Tensor, methods: list[str],
             conditions: list[str], corruptions: tuple[str, ...] = CORRUPTIONS, severity: int = 5,
             max_samples: dict[str, int] | None = None, base_lr: float = 0.01, **options) -> list[dict]:
    """One summary row (see `evaluate`) per seed, method, condition and, for "iid", corruption."""
    rows = []
    for seed, model in models.items():
        for condition in conditions:
            if condition not in CONDITIONS:
                raise ValueError(f"unknown condition {condition!r}; choose one of: {', '.join(CONDITIONS)}")
            for corruption in (corruptions if CONDITIONS[condition][0] == "one" else ("mixed",)):
                for method in methods:
                    rows.append(evaluate(method, condition, model, x_test, y_test, corruption=corruption,
                                         severity=severity, seed=seed, base_lr=base_lr,
                                         max_samples=(max_samples or {}).get(condition), **options))
    return rows


def mean_std(rows: list[dict], by: tuple[str, ...], value: str = "accuracy") -> dict[tuple, tuple[float, float, int]]:
    """{cell key: (mean over seeds, std over seeds (ddof=1), number of seeds)}; a cell's rows of one
    seed (e.g. its five corruptions) are averaged first."""
    per_seed = defaultdict(lambda: defaultdict(list))
    for row in rows:
        per_seed[tuple(row[k] for k in by)][row["seed"]].append(row[value])
    stats = {}
    for key, seeds in per_seed.items():
        values = np.array([np.mean(v) for v in seeds.values()])
        stats[key] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values))
    return stats


def format_table(stats: dict[tuple, tuple[float, float, int]], row_names: list[str], column_names: list[str],
                 scale: float = 100.0, digits: int = 1, corner: str = "method") -> str:
    """A markdown table of `mean ± std` (× scale: 100 for accuracy in %), rows × columns; a missing cell is '—'."""
    lines = [f"| {corner} | " + " | ".join(map(str, column_names)) + " |", "|---" * (len(column_names) + 1) + "|"]
    for row in row_names:
        cells = []
        for column in column_names:
            if (row, column) in stats:
                mean, std, _ = stats[(row, column)]
                cells.append(f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}")
            else:
                cells.append("—")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
