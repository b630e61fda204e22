"""Figures of notebook 07: particle impoverishment and accuracy at equal budget (search), the ROC
curves of the contamination detectors and the entropy sequences they compare. Each returns a titled,
labelled matplotlib Figure; they take numbers (summary.py, contamination.py), never run a model.
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator, ScalarFormatter


STYLE = {"best_of_n": dict(color="0.3", marker="s"), "pf": dict(color="tab:red", marker="o"),
         "epf": dict(color="tab:blue", marker="^")}


def _style(label: str) -> dict:
    return STYLE.get(label.split(" ")[0], dict(marker="d"))


def particle_diagnostics_figure(curves: dict[str, dict[str, np.ndarray]], n_particles: int) -> plt.Figure:
    """Four panels against the step t: distinct surviving ancestors, ESS/N, τ and Ĥ; `curves` maps
    a method to its `summary.step_curve` of each key."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), layout="constrained")
    panels = [("ancestors", "distinct ancestors (of N)", f"Particles of step 1 with descendants, N = {n_particles}"),
              ("ess_ratio", "ESS / N of softmax(ℓ)", "Weight diversity before resampling"),
              ("temperature", "τ (1 = no annealing)", "Resampling temperature"),
              ("weight_entropy", "Ĥ = H(p) / ln N", "Normalised weight entropy")]
    for ax, (key, ylabel, title) in zip(axes, panels):
        for label, curve in curves.items():
            t = np.arange(1, len(curve[key]) + 1)
            ax.plot(t, curve[key], label=label, **_style(label))
        ax.set(title=title, xlabel="step t (equations, then the answer)", ylabel=ylabel)
        ax.set_xticks(t)
        ax.grid(alpha=0.3)
    axes[0].axhline(n_particles, color="k", lw=0.8, ls=":", label="N (no impoverishment)")
    axes[0].set_ylim(0, n_particles + 0.5)
    axes[0].legend(fontsize=8)
    return fig


def search_accuracy_figure(rows: list[dict]) -> plt.Figure:
    """Accuracy (mean ± std over seeds) and the distinct ancestors left at the end against N, one
    line per method (summary rows; best-of-N's N samples are N independent ancestors)."""
    fig, (ax_acc, ax_anc) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for label in dict.fromkeys(r["method"] for r in rows):
        mine = sorted((r for r in rows if r["method"] == label), key=lambda r: r["N"])
        n = [r["N"] for r in mine]
        ax_acc.errorbar(n, [r["accuracy"] for r in mine], [r["accuracy_std"] for r in mine], capsize=3,
                        label=label, **_style(label))
        ax_anc.plot(n, [r["final_ancestors"] for r in mine], label=label, **_style(label))
    ax_acc.set(title="Accuracy of the chosen answer at equal budget", ylabel="accuracy (share of prompts)")
    ax_anc.set(title="Impoverishment: distinct ancestors left at the end", ylabel="particles of step 1 with descendants")
    ax_anc.set_yscale("log", base=2)
    ax_anc.yaxis.set_major_formatter(ScalarFormatter())
    for ax in (ax_acc, ax_anc):
        ax.set(xlabel="N (particles = samples; about N completions of tokens)")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> plt.Figure:
    """ROC curves (false- against true-positive rate) with their AUC in the legend."""
    fig, ax = plt.subplots(figsize=(5.2, 4.8), layout="constrained")
    for label, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, lw=2, label=f"{label} (AUC {area:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance (AUC 0.50)")
    ax.set(title="\n".join(textwrap.wrap(title, 48)), xlabel="false-positive rate (held-out flagged as trained-on)",
           ylabel="true-positive rate (trained-on flagged)", xlim=(0, 1), ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def entropy_pair_figure(pairs: list[dict]) -> plt.Figure:
    """Per-token entropies of pass 1 and pass 2, one panel per prompt: dicts with `title`, `first`,
    `second` (entropy lists), `first_text`, `second_text` and `score`."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), layout="constrained", squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        ax.plot(np.arange(1, len(pair["first"]) + 1), pair["first"], "o-", label=f"pass 1: {pair['first_text']}")
        ax.plot(np.arange(1, len(pair["second"]) + 1), pair["second"], "x--", label=f"pass 2: {pair['second_text']}")
        ax.set(title=f"{pair['title']}\nS = {pair['score']:.2f}", xlabel="generated token t",
               ylabel="top-50 entropy e_t (nats)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    return fig
