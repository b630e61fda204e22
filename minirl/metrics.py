"""What a run logs: the keys of a `metrics.jsonl` row, its schema number, and reading the file back.

The trainer writes these rows, and everything that reads results (tables, reports, comparisons,
the shipped runs, plots) reads them here, without importing the trainer, torch or transformers.
Each key is defined in docs/metrics.md.
"""
from __future__ import annotations

import json
from pathlib import Path

from .run_folder import METRICS

METRICS_SCHEMA = 1
"""The version of the row's layout; results written under another schema are refused, never mixed."""
TIME_KEYS = ("tokens_per_s", "step_s", "wall_s")
"""Timings: the only keys whose values differ between two same-seed runs."""
UPDATE_KEYS = ("pg_loss", "clip_frac", "clip_frac_lower", "ppo_kl", "kl_ref", "grad_norm", "batch_entropy_change")
"""What a method's loss may report under these bare names; anything else goes under "<method>/"."""
METRIC_KEYS = ("step", "entropy", "reward", "accuracy", "pass_at_1", "pass_at_k", "eval_entropy",
               "response_len", "tokens_sampled", "pg_loss", "clip_frac", "clip_frac_lower", "ppo_kl", "kl_ref", "grad_norm",
               "cov_mean", "cov_top", "entropy_delta", "batch_entropy_change", "frac_all_equal_groups") + TIME_KEYS
"""The keys every row holds (null where not measured), in the order they are written."""


def metric_name(method: str, key: str) -> str:
    """Update metrics keep their names; a method's own ones go under its name (so a method can
    never overwrite a rollout metric such as `entropy`)."""
    return key if key in UPDATE_KEYS else f"{method}/{key}"


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (a folder or the file itself). A last line without its
    newline (cut by a kill while it was written) is left out; any other damaged line is refused
    in one line naming the file and the line."""
    path = Path(path)
    path = path / METRICS if path.is_dir() else path
    lines = path.read_text().split("\n")[:-1]              # what follows the last newline is a cut line, or ""
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {number} is not a JSON row ({err})") from None
    return rows
