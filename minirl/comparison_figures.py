"""Figures that compare many methods (`runs[label][seed]` = metrics rows, as from
`minirl.variants.run_variants`, `minirl.shipped.load(...).runs` or `minirl.results.comparisons`),
drawn as small multiples a student can read at a glance:

* `method_comparison_figure`: one row of panels per family of methods (`minirl.plots.METHOD_FAMILIES`),
  each family against GRPO (the same thick black line in every row), one column per metric;
* `entropy_reward_figure`: one panel per variant, its training steps as points and the law
  R = −a·exp(H) + b of Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning
  Language Models" (arXiv 2505.22617) fitted to them, GRPO's fit in every panel for reference.

Colours come from `minirl.plots.line_styles`: one colour per method in every figure, and no two
lines of one panel alike.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from .entropy_law import entropy_law_r_squared, fit_entropy_law
from .plots import METHOD_FAMILIES, OTHER_FAMILY, line_styles, method_family, method_of, moving_average, series

METRIC_AXES = {
    "entropy": ("Policy entropy, training batch", "entropy (nats / token)"),
    "pass_at_1": ("Eval pass@1", "pass@1 (fraction of eval prompts)"),
    "pass_at_k": ("Eval pass@k", "pass@k (fraction of eval prompts)"),
    "reward": ("Training reward", "mean reward (fraction correct)"),
}
EVAL_METRICS = ("pass_at_1", "pass_at_k", "eval_entropy")
SINGLE_PANEL_MAX = 7        # up to this many variants (the baseline included) share one row of panels


def family_rows(labels, baseline: str = "grpo") -> dict[str, list[str]]:
    """{family: its variant labels, the baseline first}, families in METHOD_FAMILIES' order, for the
    families that have a variant other than the baseline."""
    order = [*METHOD_FAMILIES, OTHER_FAMILY]
    rows: dict[str, list[str]] = {}
    for label in labels:
        if label != baseline:
            rows.setdefault(method_family(label), []).append(label)
    present = [baseline] if baseline in labels else []
    return {family: present + rows[family] for family in order if family in rows}


def mean_over_seeds(by_seed: dict[int, list[dict]], key: str, smooth: int):
    """Steps measured in every seed, and the per-seed values there: (steps, (seeds, steps) array)."""
    per_seed = []
    for rows in by_seed.values():
        x, y = series(rows, key)
        per_seed.append(dict(zip(x, moving_average(y, smooth) if smooth > 1 else y)))
    steps = sorted(set.intersection(*(set(d) for d in per_seed))) if per_seed else []
    return np.array(steps), np.array([[d[s] for s in steps] for d in per_seed], dtype=float)


def _draw_metric(ax, runs, labels, key: str, styles: dict, smooth: int, baseline: str) -> None:
    """One panel: the mean over seeds of each label in `labels`, with its min–max band over seeds."""
    is_eval = key in EVAL_METRICS
    for label in labels:
        x, values = mean_over_seeds(runs[label], key, 1 if is_eval else smooth)
        if len(x) == 0:
            continue
        style = styles[label]
        ax.plot(x, values.mean(axis=0), label=label, marker="o" if is_eval else None, ms=3, **style)
        if len(values) > 1:
            ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=style["color"],
                            alpha=0.12 if label == baseline else 0.07, lw=0)
    ax.grid(alpha=0.3)


def _metric_axes(key: str, k: int | None, smooth: int) -> tuple[str, str]:
    title, ylabel = METRIC_AXES.get(key, (key, key))
    if key == "pass_at_k" and k is not None:
        title, ylabel = title.replace("pass@k", f"pass@{k}"), ylabel.replace("pass@k", f"pass@{k}")
    if key not in EVAL_METRICS and smooth > 1:
        title += f" ({smooth}-step mean)"
    return title, ylabel


def method_comparison_figure(runs: dict[str, dict[int, list[dict]]],
                             metrics=("entropy", "pass_at_1", "pass_at_k"), k: int | None = None,
                             smooth: int = 5, baseline: str = "grpo") -> plt.Figure:
    """One column per metric; the mean over seeds of each variant, with a min–max band when there
    are several seeds. Training-batch metrics are smoothed over `smooth` steps; eval metrics are not.

    Up to SINGLE_PANEL_MAX variants share one row of panels. More are drawn as small multiples: one
    row per family of methods (`minirl.plots.METHOD_FAMILIES`: baselines, covariance and token
    selection, regularisers, sampling/advantage/replay, label-free rewards), each row its family's
    variants against `baseline` (thick black in every row), with the row's legend beside it. Each
    panel scales its own y axis (the label-free methods' pass@k falls far below the others')."""
    rows = family_rows(runs, baseline)
    single = len(runs) <= SINGLE_PANEL_MAX or len(rows) <= 1
    if single:
        rows = {"": list(runs)}
    n_rows, n_cols = len(rows), len(metrics)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.4 * n_cols + (2.4 if n_rows > 1 else 0), 2.9 * n_rows + 1.0),
                             sharex=True, squeeze=False, layout="constrained")
    for r, (family, labels) in enumerate(rows.items()):
        styles = line_styles(labels, baseline)
        for c, key in enumerate(metrics):
            ax = axes[r][c]
            _draw_metric(ax, runs, labels, key, styles, smooth, baseline)
            title, ylabel = _metric_axes(key, k, smooth)
            ax.set_ylabel(ylabel, fontsize=9)
            if r == 0:
                ax.set_title(title)
            if r == n_rows - 1:
                ax.set_xlabel("training step")
            ax.tick_params(labelbottom=True)
        if not single:
            axes[r][-1].legend(title=family, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                               title_fontsize=9, alignment="left", frameon=False)
    if single:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(labels)), fontsize=8)
    n_seeds = max(len(by_seed) for by_seed in runs.values())
    band = f"mean over {n_seeds} seeds, band = min–max" if n_seeds > 1 else "one seed"
    each = f": each row one family of methods against {baseline}, the thick black line" if n_rows > 1 else ""
    fig.suptitle(f"Every method on the same task, seeds and budget{each} ({band})")
    return fig


# ------------------------------------------------------------------ the entropy-reward law, per variant
def _law_points(by_seed: dict[int, list[dict]], key: str = "reward"):
    """Every training step of every seed that logged both: (H, R, step) arrays."""
    points = [(r["entropy"], r[key], r["step"]) for rows in by_seed.values() for r in rows
              if r.get("entropy") is not None and r.get(key) is not None]
    return tuple(np.array(column, dtype=float) for column in zip(*points)) if points else (np.array([]),) * 3


def _fit(H, R):
    """(a, b, R², n) of R = −a·exp(H) + b by least squares, or None with fewer than two distinct H."""
    if len(H) < 2 or np.ptp(H) == 0:
        return None
    a, b, _ = fit_entropy_law(H, R)
    return a, b, entropy_law_r_squared(H, R, a, b), len(H)


def vote_key(label: str, by_seed: dict[int, list[dict]]) -> str | None:
    """The metric a label-free method trains on, where it logs one: `<method>/majority_ratio`, the
    share of its samples that agree with the majority answer (its reward up to the method's shaping)."""
    key = f"{method_of(label)}/majority_ratio"
    return key if any(key in r for rows in by_seed.values() for r in rows) else None


def vote_fits(runs: dict[str, dict[int, list[dict]]]) -> dict[str, tuple]:
    """{label: (a, b, R², points)} of the law fitted to the majority-agreement share of each
    label-free variant (those that log `<method>/majority_ratio`), against batch entropy."""
    fits = {}
    for label, by_seed in runs.items():
        key = vote_key(label, by_seed)
        fit = _fit(*_law_points(by_seed, key)[:2]) if key else None
        if fit:
            fits[label] = fit
    return fits


def _law_line(ax, H, fit, **style) -> None:
    grid = np.linspace(H.min(), H.max(), 50)
    ax.plot(grid, -fit[0] * np.exp(grid) + fit[1], **style)


def entropy_reward_figure(runs: dict[str, dict[int, list[dict]]], baseline: str = "grpo", ncols: int = 6):
    """One panel per variant: each training step of each seed as a point (batch entropy H, batch
    reward R), coloured by the step, and the law R = −a·exp(H) + b fitted to the variant's points
    (its colour, thick), with `baseline`'s fit drawn in every other panel (black, dashed).

    A label-free method (TTRL, ETTRL, EVOL-RL) logs the true reward of its samples as `reward`, but
    trains on agreement with its own majority vote. Its panel also shows that agreement share (grey +)
    and the law fitted to it (dashed): agreement rises as entropy falls, as the law says, while the
    true reward falls, because the vote is wrong for most prompts and the policy collapses onto the
    wrong majority answers. Hence the negative a fitted to its true reward.

    Up to `ncols` variants share one row; more are drawn one row per family of methods
    (`minirl.plots.METHOD_FAMILIES`), the baseline in the first. Returns the figure and {label: (a, b, R², points)} of the fits to `reward`."""
    fits = {label: fit for label, by_seed in runs.items() if (fit := _fit(*_law_points(by_seed)[:2]))}
    drawn = [label for label in runs if len(_law_points(runs[label])[0])]
    if not drawn:
        raise ValueError("no run logged both entropy and reward at any step: nothing to draw")
    rows = {"": drawn} if len(drawn) <= ncols else family_rows(drawn, baseline)
    for family in list(rows)[1:]:
        rows[family] = [label for label in rows[family] if label != baseline]   # the baseline: first row only
    ncols = max(len(labels) for labels in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.75 * ncols + 1.4, 2.45 * len(rows) + 1.3), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    steps = max(r["step"] for by_seed in runs.values() for rows_ in by_seed.values() for r in rows_)
    base_H = _law_points(runs[baseline])[0] if baseline in runs else np.array([])
    for ax_row, (family, labels) in zip(axes, rows.items()):
        for ax, label in zip(ax_row, labels):
            dots = _law_panel(ax, label, runs[label], fits, baseline, base_H, steps)
        for ax in ax_row[len(labels):]:
            ax.axis("off")
        ax_row[0].set_ylabel(f"{family}\n\nbatch reward R" if family else "batch reward R", fontsize=8)
        ax_row[0].tick_params(labelleft=True)
    for column in axes.T:                                 # x label under the lowest panel of each column
        lowest = [ax for ax in column if ax.axison][-1]
        lowest.set_xlabel("batch entropy H (nats / token)", fontsize=8)
        lowest.tick_params(labelbottom=True)
    fig.colorbar(dots, ax=axes, label="training step", fraction=0.02, pad=0.01)
    fig.legend(handles=_law_legend(baseline), loc="outside lower center", ncols=4 if ncols >= 4 else 2, fontsize=8,
               frameon=False)
    fig.suptitle("Entropy against reward, one panel per variant: every training step of every seed, "
                 "with R = −a·exp(H) + b fitted")
    return fig, fits


def _law_panel(ax, label: str, by_seed: dict, fits: dict, baseline: str, base_H, steps: int):
    """One variant's panel of `entropy_reward_figure`; returns its scatter (for the colour bar)."""
    H, R, step = _law_points(by_seed)
    colour = line_styles([label], baseline)[label]["color"]
    dots = ax.scatter(H, R, c=step, cmap="viridis", vmin=0, vmax=steps, s=4, alpha=0.45, lw=0)
    title = label
    key = vote_key(label, by_seed)
    if key:
        vH, vR, _ = _law_points(by_seed, key)
        ax.scatter(vH, vR, marker="+", s=9, color="0.55", lw=0.6, alpha=0.6)
        vote = _fit(vH, vR)
        if vote:
            _law_line(ax, vH, vote, color=colour, lw=2, ls="--")
            title += f"\nvote agreement: a = {vote[0]:.2f}, R² = {vote[2]:.2f}"
    if label != baseline and baseline in fits:
        _law_line(ax, base_H, fits[baseline], color="black", lw=1.2, ls="--")
    if label in fits:
        a, b, r2, _ = fits[label]
        _law_line(ax, H, fits[label], color=colour, lw=2.8 if label == baseline else 2.2)
        title += f"\ntrue reward: a = {a:.2f}, b = {b:.2f}, R² = {r2:.2f}"
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    return dots


def _law_legend(baseline: str) -> list:
    return [Line2D([], [], color="0.3", marker="o", ls="", ms=3, label="one training step of one seed (colour: step)"),
            Line2D([], [], color="0.3", lw=2.2, label="the law fitted to the panel's true reward"),
            Line2D([], [], color="black", lw=1.2, ls="--", label=f"{baseline}'s fit, for reference"),
            Line2D([], [], color="0.55", marker="+", ls="--", label="label-free: share agreeing with the vote, its fit")]
