"""The figures of notebook 06: each function returns a titled, labelled matplotlib Figure
(entropy in nats, accuracy in %); save with `fig.savefig(path)`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .evaluate import StreamResult

METHOD_COLOURS = {"source": "tab:gray", "tent": "tab:red", "sar": "tab:blue", "deyo": "tab:green",
                  "ostta": "tab:purple"}


def _colour(label: str, index: int) -> str:
    return METHOD_COLOURS.get(label.split()[0], f"C{index}")


def _moving_average(values: torch.Tensor, window: int) -> np.ndarray:
    v = values.float().numpy()
    window = max(1, min(window, len(v)))
    return np.convolve(v, np.ones(window) / window, mode="valid")


def corruption_examples_figure(images: dict[str, list[torch.Tensor]], severities: list[int]) -> plt.Figure:
    """One digit under each corruption (rows) and severity (columns); images[name] is a list of (8, 8)."""
    rows, cols = len(images), len(severities)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 1.6, 1.3 * rows), layout="constrained", squeeze=False)
    for r, (name, row) in enumerate(images.items()):
        for c, image in enumerate(row):
            axes[r, c].imshow(image.numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[r, c].set(xticks=[], yticks=[])
            if r == 0:
                axes[r, c].set_title(f"severity {severities[c]}", fontsize=9)
        axes[r, 0].set_ylabel(name.replace("_", "\n"), fontsize=9)
    fig.suptitle("The test digits under our corruptions (pixel intensity 0 = white, 1 = black)")
    return fig


def stream_figure(results: dict[str, StreamResult], window: int = 64, title: str = "") -> plt.Figure:
    """Along the stream, per method: the prediction entropy and the accuracy (moving averages over
    `window` samples), SAR's resets as ticks, and the share of all predictions given to each class."""
    fig, (ax_h, ax_acc, ax_cls) = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for i, (label, r) in enumerate(results.items()):
        colour = _colour(label, i)
        h = _moving_average(r.entropy, window)
        x = np.arange(len(h)) + window
        ax_h.plot(x, h, color=colour, label=label)
        ax_acc.plot(x, 100 * _moving_average(r.predictions == r.labels, window), color=colour, label=label)
        if r.reset_at:
            ax_h.plot(r.reset_at, np.full(len(r.reset_at), -0.05 - 0.04 * i), "|", color=colour, ms=8,
                      label=f"{label}: reset to source ({len(r.reset_at)}×)")
        share = torch.bincount(r.predictions, minlength=10).float() / len(r.predictions)
        width = 0.8 / len(results)
        ax_cls.bar(np.arange(10) + (i - (len(results) - 1) / 2) * width, 100 * share.numpy(), width, color=colour,
                   label=label)
    ax_h.axhline(np.log(10), color="k", ls=":", lw=1, label="ln 10 (uniform over 10 classes)")
    ax_h.set(title="Prediction entropy along the stream", xlabel="test images seen",
             ylabel=f"entropy (nats), mean of the last {window}")
    ax_acc.set(title="Online accuracy along the stream", xlabel="test images seen",
               ylabel=f"accuracy (%), last {window} images", ylim=(0, 100))
    ax_cls.axhline(10, color="k", ls=":", lw=1, label="true share of each class (10 %)")
    ax_cls.set(title="Which classes it predicts", xlabel="predicted class", ylabel="share of all predictions (%)",
               xticks=range(10))
    for ax in (ax_h, ax_acc, ax_cls):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def grouped_bars_figure(stats: dict[tuple, tuple[float, float, int]], methods: list[str], groups: list[str],
                        title: str, ylabel: str = "accuracy (%)", scale: float = 100.0, xlabel: str = "",
                        reference: float | None = None, reference_label: str = "") -> plt.Figure:
    """Bars of mean ± std over seeds: one group per entry of `groups`, one bar per method;
    stats[(method, group)] = (mean, std, n). Methods labelled '... · gn' are hatched."""
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(groups) + 2), 4.2), layout="constrained")
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        cells = [stats.get((method, g), (np.nan, 0.0, 0)) for g in groups]
        ax.bar(np.arange(len(groups)) + (i - (len(methods) - 1) / 2) * width, [scale * c[0] for c in cells], width,
               yerr=[scale * c[1] for c in cells], capsize=3, color=_colour(method, i), label=method,
               hatch="//" if method.endswith("· gn") else None, edgecolor="white", linewidth=0)
    if reference is not None:
        ax.axhline(scale * reference, color="k", ls=":", lw=1, label=reference_label)
    n = max(c[2] for c in stats.values())
    ax.set(title=title, ylabel=f"{ylabel}, mean ± std over {n} seeds", xlabel=xlabel,
           xticks=range(len(groups)), xticklabels=[g.replace("_", " ") for g in groups])
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncols=2)
    return fig


def lr_sweep_figure(stats: dict[tuple, tuple[float, float, int]], methods: list[str], conditions: list[str],
                    lrs: list[float]) -> plt.Figure:
    """Accuracy against the base learning rate, one panel per condition; stats[(method, condition, lr)]."""
    fig, axes = plt.subplots(1, len(conditions), figsize=(4.5 * len(conditions), 3.8), layout="constrained",
                             squeeze=False)
    for ax, condition in zip(axes[0], conditions):
        for i, method in enumerate(methods):
            cells = [stats[(method, condition, lr)] for lr in lrs]
            ax.errorbar(lrs, [100 * c[0] for c in cells], yerr=[100 * c[1] for c in cells], marker="o", capsize=3,
                        color=_colour(method, i), label=method)
        ax.set(xscale="log", title=condition.replace("_", " "), xlabel="base learning rate (batch 64)",
               ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("How much the step size decides between helping and collapsing")
    return fig


def shuffle_examples_figure(x: torch.Tensor, x_shuffled: torch.Tensor, plpd_values: torch.Tensor,
                            predicted: torch.Tensor) -> plt.Figure:
    """Digits (top row) and their patch-shuffled copies (bottom row), titled with the PLPD."""
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n, 3.4), layout="constrained", squeeze=False)
    for i in range(n):
        axes[0, i].imshow(x[i, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[0, i].set_title(f"ŷ = {int(predicted[i])}", fontsize=9)
        axes[1, i].imshow(x_shuffled[i, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[1, i].set_title(f"PLPD {plpd_values[i]:.2f}", fontsize=9)
        for ax in axes[:, i]:
            ax.set(xticks=[], yticks=[])
    axes[0, 0].set_ylabel("x")
    axes[1, 0].set_ylabel("x' (shuffled)")
    fig.suptitle("DeYO's shape test: PLPD = p(ŷ|x) − p(ŷ|x')")
    return fig
