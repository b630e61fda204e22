"""Figures made from metrics.jsonl files only (they never run training), and the one colour map
every method comparison draws with (`METHOD_FAMILIES`, `line_styles`).

The colour map: each registered method belongs to one family (what it changes: see the table of
stages in `minirl.methods.registry`), and has one colour, the same in every figure. Inside a family
no two methods share a colour, so a panel that shows one family against GRPO (thick black) tells its
lines apart by colour alone; where one figure holds two lines of one colour (variants of one method,
`grpo G=16` beside `grpo`, or methods of two families in one panel) each gets its own dash.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .run_folder import atomic_file

# What a method changes, in the order the comparison figures draw the families. GRPO is the baseline
# every panel shows; a method not listed (a user's own) falls in "other methods".
METHOD_FAMILIES = {
    "baselines and controls": ("grpo", "dr_grpo", "dapo"),
    "covariance and token selection": ("clip_cov", "kl_cov", "high_entropy_tokens", "steer", "ulorl"),
    "entropy and KL regularisers": ("entropy_bonus", "kl_ref", "epo", "tea_rl", "siren", "lp_reg", "llds"),
    "sampling, advantage and replay": ("aepo", "aepo_agentic", "aepo_agentic_loss", "cure", "riskpo", "entropy_adv",
                                       "spear", "empg", "pear"),
    "label-free rewards (majority vote)": ("ttrl", "ettrl", "evol_rl"),
}
OTHER_FAMILY = "other methods"
BASELINE_STYLE = dict(color="black", lw=2.8, zorder=5)
# Nine colours that read apart (tab10 without its grey, which draws "the rest"); dashes for shared colours.
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan")
DASHES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))

PANELS = {
    "entropy": ("Policy entropy of sampled tokens", "entropy (nats / token)"),
    "pass_at_1": ("Eval pass@1", "pass@1"),
    "pass_at_k": ("Eval pass@k", "pass@k"),
    "reward": ("Training reward, batch mean", "reward"),
    "cov_mean": ("Cov(log π, A) over batch tokens", "covariance (nats)"),
    "clip_frac": ("PPO clip fraction", "fraction of tokens"),
}


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows where `key` was measured."""
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_runs(runs: dict[str, list[dict]], out: str | Path,
              metrics=("entropy", "pass_at_1", "pass_at_k", "reward"), smooth: int = 5) -> Path:
    """`runs_figure` saved as the PNG `out` (what `python -m minirl plot` and `demo` write)."""
    fig = runs_figure(runs, metrics, smooth)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    return out


def runs_figure(runs: dict[str, list[dict]], metrics=("entropy", "pass_at_1", "pass_at_k", "reward"),
                smooth: int = 5) -> plt.Figure:
    """One panel per metric, one line per run (training curves smoothed over `smooth` steps). When
    the runs logged the same values for their first steps (same warm start, seed and first batch),
    the title says through which step their lines lie on top of each other."""
    cols = 2
    rows_n = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6 * cols, 3.6 * rows_n + 0.6), squeeze=False, layout="constrained")
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
    note = coinciding_note(runs, metrics)
    if note:
        fig.suptitle(note, fontsize=10)
    return fig


def shared_steps(runs: dict[str, list[dict]], keys) -> int:
    """The last step through which every run logged the same value of every key in `keys` (at the
    steps where any run logged it); 0 when they differ at the first training step already, and the
    last step of the shortest run when they never differ."""
    by_step = [{r["step"]: r for r in rows} for rows in runs.values()]
    common = sorted(set.intersection(*(set(steps) for steps in by_step))) if by_step else []
    last = 0
    for step in common:
        values = [tuple(rows[step].get(key) for key in keys) for rows in by_step]
        if any(v != values[0] for v in values[1:]):
            return last
        last = step
    return last


def coinciding_note(runs: dict[str, list[dict]], keys) -> str:
    """A sentence for the title when the runs' lines coincide for their first steps, else ''."""
    if len(runs) < 2:
        return ""
    last = shared_steps(runs, keys)
    end = min(rows[-1]["step"] for rows in runs.values() if rows)
    these = "The two runs" if len(runs) == 2 else f"All {len(runs)} runs"
    if last >= end:
        return f"{these} logged the same values at every step: their lines lie on top of each other"
    if last >= 1:
        return (f"{these} logged the same values through step {last} (same warm start, seed and first "
                f"batch{'es' if last > 1 else ''}): their lines start on top of each other and part from step {last + 1}")
    return ""


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` points (same length as the input)."""
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


# ---------------------------------------------------------------- the colour map of methods
def method_of(label: str) -> str:
    """The method a variant label names: its first word ('kl_cov 2% beta 5' → 'kl_cov')."""
    return label.split()[0] if label.split() else label


def method_family(label: str) -> str:
    """The family (a key of METHOD_FAMILIES, or OTHER_FAMILY) of the method `label` names."""
    method = method_of(label)
    return next((family for family, methods in METHOD_FAMILIES.items() if method in methods), OTHER_FAMILY)


def method_colour(method: str) -> str | None:
    """The fixed colour of a listed method (black for grpo); None for a method no family lists."""
    if method == "grpo":
        return BASELINE_STYLE["color"]
    for methods in METHOD_FAMILIES.values():
        if method in methods:
            return PALETTE[[m for m in methods if m != "grpo"].index(method) % len(PALETTE)]
    return None


def line_styles(labels, baseline: str = "grpo") -> dict[str, dict]:
    """{label: matplotlib line style} for the lines of one figure: each method its fixed colour
    (`method_colour`; unlisted methods the palette's colours in turn), the baseline thick black, and
    a different dash for each further line that shares a colour, so no two labels get one
    (colour, dash)."""
    labels = sorted(dict.fromkeys(labels), key=lambda label: label != baseline)     # the baseline's dash: solid
    unlisted = [m for m in dict.fromkeys(map(method_of, labels)) if method_colour(m) is None]
    styles, dashes_used = {}, {}
    for label in labels:
        method = method_of(label)
        colour = method_colour(method) or PALETTE[unlisted.index(method) % len(PALETTE)]
        used = dashes_used.setdefault(colour, [])
        dash = DASHES[len(used) % len(DASHES)]
        used.append(dash)
        if label == baseline:
            styles[label] = dict(BASELINE_STYLE, ls=dash)
        else:
            styles[label] = dict(color=colour, ls=dash, lw=1.6 if dash == "-" else 1.8, zorder=3)
    return styles
