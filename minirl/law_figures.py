"""Figures of the entropy law measured on the network (notebook 02): the per-step predictions of
minirl/law_check.py against the realised change, and which tokens carry the entropy drain under
the natural and the vanilla weighting. Each returns a titled, labelled matplotlib Figure
(entropy in nats)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .law_check import PROBE_LR
from .plots import series

STEPS = {   # which step the law is checked on: {name: (realised key, {prediction key: label}, title)}
    "probe": ("law_probe_realised",
              {"law_probe_predicted": "first order through the network −η⟨∇H̄, ∇L⟩",
               "law_probe_lemma": "lemma with the realised logit change"},
              f"a clean probe step (plain SGD, η = {PROBE_LR:g})"),
    "update": ("law_realised_change",
               {"law_predicted_change": "first order through the network ⟨∇H̄, Δθ⟩",
                "law_lemma_change": "lemma with the realised logit change"},
               "the trainer's own update (AdamW, 4 mini-batch steps)"),
}


def pearson(x, y) -> float:
    """Pearson r of two series; nan when either does not vary (nothing to correlate)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.corrcoef(x, y)[0, 1]) if len(x) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")


def law_figure(rows: list[dict], step: str = "update") -> tuple[plt.Figure, dict[str, float]]:
    """For the law diagnostics of one kind of step (`step`: "probe" or "update", see STEPS), the
    realised entropy change of each training step and its two first-order predictions over
    training (left), and each prediction against the realised change (middle, right) with the line
    y = x. Returns the figure and {prediction key: Pearson r with the realised change}."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; choose one of: {', '.join(STEPS)}")
    realised_key, predictions, title = STEPS[step]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    steps, realised = series(rows, realised_key)
    axes[0].plot(steps, realised, "k-", lw=1.5, label="realised (exact, same states)")
    r = {}
    for ax, (key, label), colour in zip(axes[1:], predictions.items(), ("tab:blue", "tab:orange")):
        _, predicted = series(rows, key)
        axes[0].plot(steps, predicted, "--", color=colour, lw=1, label=label)
        r[key] = pearson(predicted, realised)
        ax.scatter(predicted, realised, s=12, alpha=0.6, color=colour, label="one training step")
        ends = [min(np.min(predicted), np.min(realised)), max(np.max(predicted), np.max(realised))]
        ax.plot(ends, ends, "k:", lw=1, label="y = x (prediction exact)")
        ax.set(title=f"{label.split(' ⟨')[0].split(' −η')[0].capitalize()}: r = {r[key]:.3f}",
               xlabel="predicted ΔH (nats / token)", ylabel="realised ΔH (nats / token)")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set(title="Entropy change of each step", xlabel="training step", ylabel="ΔH (nats / token)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"The entropy law on {title}")
    return fig, r


def drain_share_figure(cov: torch.Tensor, drains: dict[str, torch.Tensor], mask: torch.Tensor,
                       top_fraction: float = 0.002, shown: float = 0.1) -> plt.Figure:
    """Tokens ranked by the per-token covariance Cov_t, largest first: the running share of Σ Cov_t
    and of each weighting's entropy drain (minirl.law_check.token_drain) that the top tokens carry,
    drawn for the top `shown` fraction of the tokens (beyond it the terms mostly cancel)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    valid = mask.bool()
    order = cov[valid].double().argsort(descending=True)
    n = max(1, int(shown * order.numel()))
    fraction = np.arange(1, n + 1) / order.numel() * 100
    curves = {"Σ Cov_t (what Clip-Cov and KL-Cov rank by)": cov, **{f"entropy drain, {name} weighting": drain
                                                                    for name, drain in drains.items()}}
    for (label, values), style in zip(curves.items(), ("k-", "C0-", "C1-")):
        v = values[valid].double()[order].numpy()
        ax.plot(fraction, (np.cumsum(v) / v.sum())[:n], style, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axvline(top_fraction * 100, color="tab:red", ls="--", label=f"top {top_fraction:.1%} by Cov_t")
    ax.set_xscale("log")
    ax.set(title="Which tokens carry the entropy drain, under each weighting",
           xlabel=f"tokens taken, largest Cov_t first (% of batch, log; the top {shown:.0%} shown)", ylabel="share of the batch total")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
