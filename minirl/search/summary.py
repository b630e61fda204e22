"""Numbers that compare search methods over seeds and prompts: per-step means and accuracy tables.

`results` below are SearchResults of one method and N, one per seed, each over the same prompts.
Accuracy is the share of prompts whose chosen completion earns the task reward; `covered` the
share whose final N particles (samples, for best-of-N) hold at least one right completion, the
most any selection rule could reach. Means and standard deviations are over seeds.
"""
from __future__ import annotations

import statistics

import numpy as np

from .particle_filter import SearchResult

STEP_KEYS = ("ancestors", "distinct_prefixes", "ess_ratio", "temperature", "weight_entropy", "ess_ratio_after")


def step_curve(results: list[SearchResult], key: str) -> np.ndarray:
    """Mean of a per-step log over prompts and seeds, (T,) for t = 1..T. A prompt whose particles
    all finished before T keeps its last value (nothing changes once every particle is done)."""
    logs = [steps for r in results for steps in r.steps]
    if not logs:
        raise ValueError(f"no per-step logs: {results[0].method!r} is not a particle filter")
    T = max(len(steps) for steps in logs)
    table = np.array([[steps[min(t, len(steps) - 1)][key] for t in range(T)] for steps in logs], dtype=float)
    return table.mean(axis=0)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary_row(label: str, n: int, results: list[SearchResult]) -> dict:
    """accuracy, covered (mean, std over seeds), tokens sampled a prompt, and surviving ancestors."""
    accuracy = _mean_std([statistics.mean(r.rewards) for r in results])
    covered = _mean_std([statistics.mean(r.covered) for r in results])
    tokens = statistics.mean(statistics.mean(r.tokens) for r in results)
    ancestors = float(step_curve(results, "ancestors")[-1]) if results[0].steps else float(n)
    return dict(method=label, N=n, accuracy=accuracy[0], accuracy_std=accuracy[1], covered=covered[0],
                covered_std=covered[1], tokens=tokens, final_ancestors=ancestors, seeds=len(results),
                prompts=len(results[0].rewards))


def markdown_table(rows: list[dict]) -> str:
    lines = ["| method | N | accuracy | final N hold a right answer | tokens sampled a prompt | distinct ancestors at the end |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['N']} | {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} | "
                     f"{r['covered']:.3f} ± {r['covered_std']:.3f} | {r['tokens']:.1f} | {r['final_ancestors']:.2f} |")
    return "\n".join(lines)
