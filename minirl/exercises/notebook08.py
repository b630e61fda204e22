"""Checks for notebook 08's exercises (a summary read from metrics.jsonl, a bootstrap interval over seeds)."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from ..compare import run_summary
from . import answered, passed


def _metrics_rows(rng: np.random.Generator, steps: int, eval_every: int) -> list[dict]:
    """Rows in the trainer's format: step 0 is an evaluation only (no batch entropy), then one training row a
    step, with the evaluation's keys filled every `eval_every` steps and None elsewhere."""
    rows, wall = [], 0.0
    for step in range(steps + 1):
        trained, evaluated = step > 0, step % eval_every == 0
        wall += rng.uniform(0.1, 0.3)
        rows.append({"step": step,
                     "entropy": float(0.6 * math.exp(-step / 15) + 0.05 + rng.normal(0, 0.02)) if trained else None,
                     "reward": float(rng.uniform()) if trained else None,
                     "pass_at_1": float(rng.uniform(0.2, 0.6)) if evaluated else None,
                     "pass_at_k": float(rng.uniform(0.5, 0.9)) if evaluated else None,
                     "eval_entropy": float(rng.uniform(0.3, 0.6)) if evaluated else None,
                     "tokens_sampled": 768 if trained else None, "step_s": 0.15 if trained else None, "wall_s": wall})
    return rows


def check_entropy_kept(fn) -> bool:
    """Exercise 8.1: fn(path) = entropy kept of the run whose metrics.jsonl is at `path`: the mean batch entropy
    of its last 5 training steps over that of its first 5 (rows whose `entropy` is null do not count)."""
    rng = np.random.default_rng(8)
    with tempfile.TemporaryDirectory() as folder:
        for steps, eval_every in [(40, 10), (12, 4), (60, 20)]:
            rows = _metrics_rows(rng, steps, eval_every)
            path = Path(folder) / "metrics.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            got = fn(str(path))
            if not answered(got, "Exercise 8.1"):
                return False
            expected = run_summary(rows)["entropy_kept"]
            assert math.isclose(float(got), expected, rel_tol=1e-9), (
                f"not yet: {float(got):.4f}, expected {expected:.4f} for a run of {steps} steps; one JSON object a "
                "line, skip the rows whose entropy is null (step 0 is an evaluation), then last-5 mean / first-5 mean")
    return passed("Exercise 8.1", "your entropy kept matches minirl.compare.run_summary")


def _exact_bootstrap_means(values: np.ndarray) -> np.ndarray:
    """The mean of every one of the n^n equally likely resamples with replacement (n ≤ 6)."""
    n = len(values)
    index = np.indices((n,) * n).reshape(n, -1).T                      # (n^n, n): every resample
    return values[index].mean(axis=1)


def check_bootstrap_interval(fn) -> bool:
    """Exercise 8.2: fn(values, level, n_resamples, seed) = the percentile bootstrap interval (low, high) of the
    mean of `values`, checked against the exact bootstrap distribution (all n^n resamples)."""
    rng = np.random.default_rng(80)
    for n, level, seed in [(6, 0.9, 0), (5, 0.8, 1), (6, 0.8, 2)]:
        values = np.round(rng.normal(0.4, 0.1, size=n), 4)
        got = fn(values.copy(), level=level, n_resamples=20_000, seed=seed)
        if not answered(got, "Exercise 8.2"):
            return False
        low, high = (float(v) for v in got)
        means, tail, tolerance = _exact_bootstrap_means(values), (1 - level) / 2, 0.015
        for bound, below in [(low, tail), (high, 1 - tail)]:
            share_below, share_at_most = np.mean(means < bound - 1e-12), np.mean(means <= bound + 1e-12)
            assert share_below <= below + tolerance and share_at_most >= below - tolerance, (
                f"not yet: for {n} seeds {values.tolist()} at level {level}, {bound:.4f} has {share_below:.1%} of the "
                f"bootstrap means below it, where {below:.1%} should be; resample n values with replacement, take "
                f"each resample's mean, and cut {tail:.0%} off each tail of those means")
    return passed("Exercise 8.2", "your interval agrees with the exact bootstrap distribution of the mean")


def _first_and_last(path):
    entropy = [row["entropy"] for row in map(json.loads, Path(path).read_text().splitlines()) if row["entropy"] is not None]
    return entropy[-1] / entropy[0]


def _null_as_zero(path):
    entropy = [row["entropy"] or 0.0 for row in map(json.loads, Path(path).read_text().splitlines())]
    return np.mean(entropy[-5:]) / np.mean(entropy[:5])


def _eval_entropy(path):
    entropy = [row["eval_entropy"] for row in map(json.loads, Path(path).read_text().splitlines())
               if row["eval_entropy"] is not None]
    return np.mean(entropy[-5:]) / np.mean(entropy[:5])


def _percentiles_of_values(values, level, n_resamples, seed):
    return tuple(np.percentile(values, [50 * (1 - level), 50 * (1 + level)]))


def _without_replacement(values, level, n_resamples, seed):
    rng = np.random.default_rng(seed)
    means = np.array([rng.permutation(values).mean() for _ in range(n_resamples)])
    return tuple(np.percentile(means, [50 * (1 - level), 50 * (1 + level)]))


def _one_tail_cut(values, level, n_resamples, seed):
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_resamples, len(values)), replace=True).mean(axis=1)
    return tuple(np.percentile(means, [100 * (1 - level), 100 * level]))


MISTAKES = {
    "check_entropy_kept": [_first_and_last, _null_as_zero, _eval_entropy],
    "check_bootstrap_interval": [_percentiles_of_values, _without_replacement, _one_tail_cut],
}
