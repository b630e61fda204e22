"""Figures of notebook 05: each function takes tensors or `train_lm` rows and returns a titled,
labelled matplotlib Figure (entropy in nats)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .bound import min_entropy_given_spread


def head_entropy_heatmap(entropy: torch.Tensor, title: str, normalised: bool = False) -> plt.Figure:
    """One cell per (layer, head) of a (layers, heads) entropy tensor, its value written in it."""
    values = entropy.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * values.shape[1], 1.3 + 0.5 * values.shape[0]), layout="constrained")
    mesh = ax.imshow(values, cmap="viridis", vmin=0, vmax=1 if normalised else None, aspect="auto")
    for (layer, head), v in np.ndenumerate(values):
        ax.text(head, layer, f"{v:.2f}", ha="center", va="center", color="w" if v < values.max() / 2 else "k")
    fig.colorbar(mesh, ax=ax, label="Ent / log n (0 to 1)" if normalised else "attention entropy (nats)")
    ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(values.shape[1]), yticks=range(values.shape[0]))
    return fig


def _curve(rows, key, layer=None):
    steps = [r["step"] for r in rows if key in r]
    values = [r[key] if layer is None else r[key][layer] for r in rows if key in r]
    return steps, values


def training_figure(runs: dict[str, list[dict]], floor: float | None = None, title: str = "") -> plt.Figure:
    """Left: the loss of every run per step. Then one panel per run: its mean attention entropy per
    layer per step (mean over heads and queries)."""
    fig, axes = plt.subplots(1, 1 + len(runs), figsize=(4.2 * (1 + len(runs)), 3.8), layout="constrained")
    ax_loss, layer_axes = axes[0], axes[1:]
    for label, rows in runs.items():
        steps, loss = _curve(rows, "loss")
        ax_loss.plot(steps, loss, lw=1, label=label)
    if floor is not None:
        ax_loss.axhline(floor, color="k", ls=":", lw=1, label=f"floor of the language ({floor:.2f})")
    ax_loss.set(title="Training loss", xlabel="step", ylabel="cross-entropy (nats / token)")
    ax_loss.legend(fontsize=8)
    top = max(max(_curve(rows, "attn_entropy", 0)[1] or [0]) for rows in runs.values())
    for ax, (label, rows) in zip(layer_axes, runs.items()):
        for layer in range(len(rows[0]["attn_entropy"])):
            ax.plot(*_curve(rows, "attn_entropy", layer), lw=1.2, label=f"layer {layer}")
        if rows[-1].get("diverged"):
            ax.axvline(rows[-1]["step"], color="r", ls="--", lw=1, label="diverged")
        ax.set(title=f"Attention entropy: {label}", xlabel="step", ylabel="mean attention entropy (nats)",
               ylim=(-0.05 * top, 1.05 * top))
        ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def bound_figure(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], n_keys: int) -> plt.Figure:
    """Left: every query's actual attention entropy against its lower bound, one colour per model.
    Right: the bound b(Δ, n) against the logit spread Δ for n = n_keys."""
    fig, (ax, ax_b) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    top = 0.0
    for label, (actual, bound) in pairs.items():
        real = ~actual.isnan()
        ax.scatter(bound[real].numpy(), actual[real].numpy(), s=3, alpha=0.3, label=label)
        top = max(top, actual[real].max().item())
    ax.plot([0, top], [0, top], "k--", lw=1, label="actual = bound")
    ax.set(title="Every query: entropy ≥ its bound", xlabel="lower bound b(Δ_i, n_i) (nats)",
           ylabel="actual attention entropy (nats)")
    ax.legend(fontsize=8, markerscale=4)
    spread = torch.linspace(0, 15, 300)
    ax_b.plot(spread, min_entropy_given_spread(spread, n_keys), label=f"b(Δ, n = {n_keys})")
    ax_b.axhline(np.log(n_keys), color="k", ls=":", lw=1, label=f"log n = {np.log(n_keys):.2f} (uniform)")
    ax_b.set(title="The bound falls exponentially with the logit spread", xlabel="logit spread Δ = 2σ‖x_i‖ max‖x_j‖",
             ylabel="least possible entropy (nats)")
    ax_b.legend(fontsize=8)
    for a in (ax, ax_b):
        a.grid(alpha=0.3)
    return fig


def layer_entropy_bars(results: dict[str, torch.Tensor], max_entropy: float, title: str) -> plt.Figure:
    """Grouped bars: each run's mean attention entropy per layer; each head as a dot on its bar."""
    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    width = 0.8 / len(results)
    for i, (label, heads) in enumerate(results.items()):
        heads = heads.detach().cpu().numpy()                                        # (L, H)
        x = np.arange(heads.shape[0]) + (i - (len(results) - 1) / 2) * width
        bars = ax.bar(x, heads.mean(axis=1), width, alpha=0.7, label=f"{label} (mean of heads)")
        ax.plot(np.repeat(x, heads.shape[1]), heads.flatten(), "o", ms=3, color=bars[0].get_facecolor(),
                alpha=1.0, mec="k", mew=0.4)
    ax.axhline(max_entropy, color="k", ls=":", lw=1, label=f"uniform over the causal context ({max_entropy:.2f})")
    ax.set(title=title, xlabel="layer", ylabel="attention entropy (nats); dots: heads",
           xticks=range(next(iter(results.values())).shape[0]))
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig
