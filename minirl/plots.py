"""Figures made from metrics.jsonl files only (they never run training)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

PANELS = {
    "entropy": ("Policy entropy of sampled tokens", "entropy (nats / token)"),
    "pass_at_1": ("Eval pass@1", "pass@1"),
    "pass_at_k": ("Eval pass@k", "pass@k"),
    "reward": ("Training reward (batch mean)", "reward"),
    "cov_mean": ("Cov(log π, A) over batch tokens", "covariance (nats)"),
    "clip_frac": ("PPO clip fraction", "fraction of tokens"),
}


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows where `key` was measured."""
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_runs(runs: dict[str, list[dict]], out: str | Path,
              metrics=("entropy", "pass_at_1", "pass_at_k", "reward"), smooth: int = 5) -> Path:
    """One panel per metric, one line per run (training curves smoothed over `smooth` steps)."""
    cols = 2
    rows_n = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6 * cols, 3.6 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, metrics):
        title, ylabel = PANELS.get(key, (key, key))
        if key not in ("pass_at_1", "pass_at_k") and smooth > 1:
            title += f" ({smooth}-step mean)"
        for label, rows in runs.items():
            x, y = series(rows, key)
            if key not in ("pass_at_1", "pass_at_k") and smooth > 1:
                y = moving_average(y, smooth)
            ax.plot(x, y, label=label, marker="o" if len(x) < 30 else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` points (same length as the input)."""
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out
