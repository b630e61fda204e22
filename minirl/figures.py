"""The course's figures: each function takes rows of metrics.jsonl, arrays or a Rollout and
returns a titled, labelled matplotlib Figure (entropy in nats). A report saves them with
`fig.savefig(path)` and then `plt.close(fig)`. Importing `minirl.plots` (as this module does)
selects matplotlib's file-only Agg backend, so a notebook runs `%matplotlib inline` after its
imports to show figures again.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgb
from matplotlib.patches import Patch, Rectangle

from .compare import run_summary
from .comparison_figures import METRIC_AXES, mean_over_seeds, method_comparison_figure  # noqa: F401
from .plots import line_styles, moving_average, series

RUN_COLOURS = {"pass_at_1": "tab:blue", "pass_at_k": "tab:red"}


# ------------------------------------------------------------------ theory (bandit)
def eta_sweep_figure(sweeps: dict[str, dict]) -> plt.Figure:
    """|ΔH_exact − ΔH_pred| (∝ η²) and the relative error (∝ η) against η, log-log, one line
    per update; `sweeps` maps a label to a `minirl.theory.eta_sweep` result."""
    fig, (ax_abs, ax_rel) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for label, s in sweeps.items():
        ax_abs.loglog(s["eta"], s["abs_error"], "o-", label=label)
        ax_rel.loglog(s["eta"], s["rel_error"], "o-", label=label)
    eta = next(iter(sweeps.values()))["eta"]
    low_abs = min(s["abs_error"][0] for s in sweeps.values()) / 10      # guides drawn below the data
    low_rel = min(s["rel_error"][0] for s in sweeps.values()) / 10
    ax_abs.loglog(eta, low_abs * (eta / eta[0]) ** 2, "k--", lw=1, label="slope 2 (∝ η²), for reference")
    ax_rel.loglog(eta, low_rel * eta / eta[0], "k--", lw=1, label="slope 1 (∝ η), for reference")
    ax_abs.set(title="Error of the first-order prediction", xlabel="step size η",
               ylabel="|ΔH exact − ΔH predicted| (nats)")
    ax_rel.set(title="Relative error", xlabel="step size η", ylabel="|error| / |ΔH exact|")
    for ax in (ax_abs, ax_rel):
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    return fig


# ------------------------------------------------------------------ training runs
def training_curves(rows: list[dict], smooth: int = 5, k: int = 8, title: str = "GRPO") -> plt.Figure:
    """Entropy, training reward and eval pass@1 / pass@k (k = `eval_k`) over the steps of one run."""
    fig, (ax_h, ax_r, ax_p) = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    x, y = series(rows, "entropy")
    ax_h.plot(x, moving_average(y, smooth), label=f"training batch ({smooth}-step mean)")
    ax_h.plot(*series(rows, "eval_entropy"), "o", ms=4, label="eval samples")
    ax_h.set(title="Policy entropy", xlabel="training step", ylabel="entropy (nats / token)")
    x, y = series(rows, "reward")
    ax_r.plot(x, y, alpha=0.3, label="per step")
    ax_r.plot(x, moving_average(y, smooth), label=f"{smooth}-step mean")
    ax_r.set(title="Training reward", xlabel="training step", ylabel="mean reward (fraction correct)")
    for key, label in (("pass_at_1", "pass@1"), ("pass_at_k", f"pass@{k}")):
        ax_p.plot(*series(rows, key), "o-", ms=4, color=RUN_COLOURS[key], label=label)
    ax_p.set(title="Eval pass@1 and pass@k", xlabel="training step", ylabel="fraction of eval prompts solved")
    for ax in (ax_h, ax_r, ax_p):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def covariance_figure(rows: list[dict], smooth: int = 5) -> tuple[plt.Figure, float]:
    """The batch covariance over training, the realised entropy change on the step's own
    tokens, and the one against the other. Returns the figure and their Pearson correlation."""
    fig, (ax_c, ax_d, ax_s) = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    x, cov = series(rows, "cov_mean")
    xd, dH = series(rows, "batch_entropy_change")
    ax_c.plot(x, cov, alpha=0.3, label="per step")
    ax_c.plot(x, moving_average(cov, smooth), label=f"{smooth}-step mean")
    ax_c.axhline(0, color="k", lw=0.8)
    ax_c.set(title="Batch covariance Cov(log π, A)", xlabel="training step", ylabel="cov_mean (nats)")
    ax_d.plot(xd, dH, alpha=0.3, label="per step")
    ax_d.plot(xd, moving_average(dH, smooth), label=f"{smooth}-step mean")
    ax_d.axhline(0, color="k", lw=0.8)
    ax_d.set(title="Realised entropy change of the step", xlabel="training step",
             ylabel="batch_entropy_change (nats / token)")
    by_step = dict(zip(xd, dH))
    c = np.array([v for s, v in zip(x, cov) if s in by_step])
    d = np.array([by_step[s] for s in x if s in by_step])
    ax_s.scatter(c, d, s=12, alpha=0.6, label="one training step")
    if len(c) >= 2 and np.ptp(c) > 0 and np.ptp(d) > 0:
        r = float(np.corrcoef(c, d)[0, 1])
        slope, intercept = np.polyfit(c, d, 1)
        line = np.linspace(c.min(), c.max(), 2)
        ax_s.plot(line, slope * line + intercept, "k--", label=f"least squares, slope {slope:.3f}")
        title = f"Predicted vs realised: Pearson r = {r:.2f}"
    else:       # e.g. every group's rewards equal at every step: all advantages, hence Cov, are 0
        r, title = float("nan"), "Predicted vs realised: no variation to correlate"
    ax_s.axhline(0, color="k", lw=0.8)
    ax_s.set(title=title, xlabel="cov_mean (nats)", ylabel="batch_entropy_change (nats / token)")
    for ax in (ax_c, ax_d, ax_s):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig, r


def entropy_law_figure(entropy, performance, a: float, b: float, r2: float, reached: float, n_fit: int,
                       ylabel: str = "eval pass@1") -> plt.Figure:
    """The measured (H, R) points, the law R = −a·exp(H) + b fitted on the first `n_fit` of
    them and drawn down to H = 0, and its ceiling R_max = −a + b next to what the run reached."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    H, R = np.asarray(entropy, dtype=float), np.asarray(performance, dtype=float)
    ax.scatter(H[:n_fit], R[:n_fit], color="tab:blue", label=f"first {n_fit} evaluations (fitted)")
    ax.scatter(H[n_fit:], R[n_fit:], facecolors="none", edgecolors="tab:blue", label="later evaluations (not fitted)")
    grid = np.linspace(0, H.max() * 1.05, 100)
    ax.plot(grid, -a * np.exp(grid) + b, "k-", label=f"fit R = −{a:.3f}·exp(H) + {b:.3f}  (R² = {r2:.2f})")
    ax.axhline(b - a, color="tab:red", ls="--", label=f"predicted ceiling −a + b = {b - a:.3f}")
    ax.axhline(reached, color="tab:green", ls=":", label=f"reached at the last step = {reached:.3f}")
    ax.set(title="Entropy-performance law R = −a·exp(H) + b", xlabel="entropy H (nats / token)",
           ylabel=ylabel, xlim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ tokens
def token_entropy_heatmap(rollouts: dict, tokenizer, rows: int = 8) -> plt.Figure:
    """Per-token entropy (nats) of the first `rows` completions of each Rollout in `rollouts`
    (label → Rollout), with each sampled character written in its cell."""
    fig, axes = plt.subplots(1, len(rollouts), figsize=(5.5 * len(rollouts), 0.45 * rows + 1.6),
                             layout="constrained", squeeze=False)
    vmax = max(float(r.entropy[:rows].max()) for r in rollouts.values())
    for ax, (label, rollout) in zip(axes[0], rollouts.items()):
        H = (rollout.entropy[:rows] * rollout.response_mask[:rows]).numpy()            # (rows, T)
        shown = np.ma.masked_where(rollout.response_mask[:rows].numpy() == 0, H)
        image = ax.imshow(shown, cmap="magma_r", vmin=0, vmax=vmax, aspect="auto")
        for i in range(H.shape[0]):
            for t, token in enumerate(rollout.response_ids[i].tolist()):
                if rollout.response_mask[i, t]:
                    text = "⏎" if token == tokenizer.eos_token_id else tokenizer.convert_ids_to_tokens(token)
                    ax.text(t, i, text, ha="center", va="center", fontsize=10,
                            color="white" if H[i, t] > 0.6 * vmax else "black")
        prompts = tokenizer.batch_decode(rollout.prompt_ids[:rows], skip_special_tokens=True)
        ax.set_yticks(range(H.shape[0]), prompts, fontsize=8)
        ax.set_xticks(range(H.shape[1]), range(1, H.shape[1] + 1))
        ax.set(title=label, xlabel="response position (⏎ = end of sequence)", ylabel="prompt")
    fig.colorbar(image, ax=axes[0].tolist(), label="token entropy H (nats)")
    fig.suptitle("Per-token entropy of sampled completions: the dark cells are the forks")
    return fig


def covariance_share_figure(fraction: np.ndarray, share: np.ndarray, top_fraction: float = 0.002) -> plt.Figure:
    """Running share of the batch covariance carried by the highest-covariance tokens
    (from `minirl.diagnostics.covariance_share`)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.plot(fraction * 100, share, label="largest Cov_t first")
    ax.axhline(1.0, color="k", lw=0.8, label="the whole batch")
    ax.axvline(top_fraction * 100, color="tab:red", ls="--",
               label=f"top {top_fraction:.1%} (cov_top; what Clip-Cov/KL-Cov touch)")
    ax.set_xscale("log")
    ax.set(title="How few tokens carry the covariance", xlabel="tokens taken, largest Cov_t first (% of batch, log)",
           ylabel="share of Σ_t Cov_t")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ method comparison (notebook 03)
# The comparison of many methods (small multiples, one row per family) lives in comparison_figures.py;
# method_comparison_figure is imported from there above.
def _method_style(index: int, label: str) -> dict:
    """The method's fixed colour (`minirl.plots.line_styles`): grpo black, every other method its own."""
    return line_styles([label])[label]


# offsets (points) tried in turn for a point's label: beside it first, then further out
_LABEL_OFFSETS = [(r * dx, r * dy) for r in (7, 16, 28, 42) for dx, dy in
                  ((1, 0.6), (1, -0.6), (-1, 0.6), (-1, -0.6), (0, 1.2), (0, -1.2), (1.4, 0), (-1.4, 0))]


def _place_labels(ax, points: dict[str, tuple[float, float, object]], fontsize: float = 8, bold: str = "") -> None:
    """Label each point (label: (x, y, colour)) at the first offset of `_LABEL_OFFSETS` where its text
    lies inside the axes and overlaps no label placed before and no point; a thin line joins a label
    set further out to its point. Crowded points are labelled first, so they get the near places."""
    fig = ax.figure
    fig.canvas.draw()                                          # fix the layout, so display coordinates hold
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    where = {label: ax.transData.transform((x, y)) for label, (x, y, _) in points.items()}
    taken = [np.array([*xy - 5, *xy + 5]) for xy in where.values()]   # (x0, y0, x1, y1) pixels: the points
    frame = ax.get_window_extent(renderer)
    crowd = {label: sum(np.hypot(*(where[label] - xy)) < 40 for xy in where.values()) for label in points}
    for label in sorted(points, key=lambda name: -crowd[name]):
        x, y, colour = points[label]
        dark = np.array(to_rgb(colour)) * 0.75                 # text a shade darker than its marker
        tries = _LABEL_OFFSETS + [_LABEL_OFFSETS[0]]           # nowhere free: back to the first place
        for n, (dx, dy) in enumerate(tries, 1):
            note = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                               color=dark, ha="left" if dx > 0 else "right" if dx < 0 else "center",
                               va="center", fontweight="bold" if label == bold else None,
                               bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.7))
            box = note.get_window_extent(renderer).extents + np.array([-1, -1, 1, 1])
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
            if (inside and not any(_overlap(box, other) for other in taken)) or n == len(tries):
                break
            note.remove()
        if np.hypot(dx, dy) > 12:
            ax.annotate("", (x, y), xytext=(dx, dy), textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", color=colour, lw=0.6, alpha=0.7, shrinkA=0, shrinkB=4))
        taken.append(box)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def entropy_vs_pass_at_k_figure(runs: dict[str, dict[int, list[dict]]], k: int | None = None,
                                baseline: str = "grpo") -> plt.Figure:
    """Each method's entropy kept (mean of the last 5 batch entropies / mean of the first 5)
    against its final eval pass@k, means over seeds with min–max bars when there are several;
    dashed lines mark `baseline`. Each label sits where it overlaps no other label and no point
    (`_place_labels`), so points that sit together keep readable labels. Does keeping entropy buy pass@k?"""
    fig, ax = plt.subplots(figsize=(9.5, 6.5), layout="constrained")
    points = {}
    for i, (label, by_seed) in enumerate(runs.items()):
        summaries = [run_summary(rows) for rows in by_seed.values()]
        xs = np.array([s["entropy_kept"] for s in summaries])
        ys = np.array([s["final_pass_at_k"] for s in summaries])
        style = _method_style(i, label)
        x, y = xs.mean(), ys.mean()
        err = dict(xerr=[[x - xs.min()], [xs.max() - x]], yerr=[[y - ys.min()], [ys.max() - y]]) if len(xs) > 1 else {}
        ax.errorbar(x, y, fmt="s" if label == baseline else "o", ms=9 if label == baseline else 6,
                    color=style["color"], ecolor=style["color"], elinewidth=1, capsize=2, alpha=0.9,
                    zorder=5 if label == baseline else 3, **err)
        points[label] = (x, y, style["color"])
    if baseline in points:
        ax.axvline(points[baseline][0], color="k", ls="--", lw=0.8)
        ax.axhline(points[baseline][1], color="k", ls="--", lw=0.8)
    pass_k = f"pass@{k}" if k is not None else "pass@k"
    n_seeds = max(len(by_seed) for by_seed in runs.values())
    bars = f"mean over {n_seeds} seeds, bars = min–max" if n_seeds > 1 else "one seed"
    ax.set(title=f"Does keeping entropy buy {pass_k}? ({bars})",
           xlabel="entropy kept (last-5-step / first-5-step batch entropy, ratio)",
           ylabel=f"final eval {pass_k} (fraction of eval prompts)")
    ax.grid(alpha=0.3)
    _place_labels(ax, {(f"{label} (dashed lines)" if label == baseline else label): point
                       for label, point in points.items()}, bold=f"{baseline} (dashed lines)")
    return fig


def aepo_controller_figure(rows: list[dict], target: float, label: str = "aepo") -> plt.Figure:
    """Arbitrary-entropy AEPO's controller at work in one run: the entropy it reads against the
    target, and the temperature it chose each step (T_high above the line heats, T_low cools)."""
    fig, (ax, ax_t) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1), layout="constrained")
    for key, name, style in (("entropy", "batch entropy (full vocabulary)", dict(color="C0", lw=1.2)),
                             ("aepo/controller_entropy", "what the controller reads (−mean log π of the trained batch)",
                              dict(color="C1", lw=1.2, ls="--"))):
        x, y = series(rows, key)
        ax.plot(x, y, label=name, **style)
    ax.axhline(target, color="k", lw=1, ls=":", label=f"target H = {target}")
    ax.set(title=f"{label}: the entropy controller", ylabel="nats")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    x, temperature = series(rows, "aepo/temperature")
    ax_t.step(x, temperature, where="mid", color="C3")
    ax_t.set(xlabel="training step", ylabel="temperature T")
    ax_t.grid(alpha=0.3)
    return fig


def aepo_rollout_figure(runs: dict[str, dict[int, list[dict]]], smooth: int = 5) -> plt.Figure:
    """Agentic AEPO's tree, step by step, for each variant (`runs[label][seed]` = rows): a prompt's
    rows as global samples (solid) and as branches (dashed), and the share of its branches on its
    most-branched global sample (means over seeds, smoothed over `smooth` steps)."""
    fig, (ax, ax_share) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for i, (label, by_seed) in enumerate(runs.items()):
        colour = f"C{i}"
        for key, ls, what in (("global_samples", "-", "global samples"), ("branches", "--", "branches")):
            x, values = mean_over_seeds(by_seed, f"aepo_agentic/{key}", smooth)
            if len(x):
                ax.plot(x, values.mean(axis=0), color=colour, ls=ls, label=f"{label}: {what}")
        x, values = mean_over_seeds(by_seed, "aepo_agentic/top_root_share", smooth)
        if len(x):
            ax_share.plot(x, values.mean(axis=0), color=colour, label=label)
    ax.set(title=f"Rows of a prompt's group ({smooth}-step mean)", xlabel="training step", ylabel="rows per prompt")
    ax_share.set(title="Branches on the most-branched global sample", xlabel="training step",
                 ylabel="share of a prompt's branches", ylim=(0, 1.05))
    for a in (ax, ax_share):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ rollout interventions (notebook 04)
def _token_text(tokenizer, token: int, width: int = 5) -> str:
    """A token as it is drawn in a cell: ⏎ for end of sequence, visible spaces, at most `width` characters."""
    if token == tokenizer.eos_token_id:
        return "⏎"
    text = tokenizer.decode([token]).replace(" ", "␣").replace("\n", "\\n")
    return text if len(text) <= width else text[:width - 1] + "…"


def _token_strip(ax, y: float, ids, H, mask, start: int, max_tokens: int, tokenizer, colour, given: int = 0,
                 framed=(), resampled: int | None = None) -> None:
    """One completion as a row of cells at height y: the first `given` tokens hatched grey (a shared
    prefix), the rest coloured by H through the ScalarMappable `colour`; positions in `framed` get a
    numbered red frame, `resampled` a dashed one."""
    n = int(mask.sum())
    for t in range(start, min(n, start + max_tokens)):
        x = t - start
        shared = t < given
        ax.add_patch(Rectangle((x, y - 0.42), 1, 0.84, facecolor="0.9" if shared else colour.to_rgba(float(H[t])),
                               hatch="///" if shared else None, edgecolor="white", lw=0.5))
        dark = not shared and float(H[t]) > 0.6 * colour.norm.vmax
        ax.text(x + 0.5, y, _token_text(tokenizer, int(ids[t])), ha="center", va="center", fontsize=9,
                color="white" if dark else "0.45" if shared else "black")
        if t in framed or t == resampled:
            ax.add_patch(Rectangle((x + 0.04, y - 0.4), 0.92, 0.8, fill=False, edgecolor="red", lw=2,
                                   ls="-" if t in framed else "--", zorder=3))
        if t in framed:
            ax.text(x + 0.5, y - 0.52, f"fork {list(framed).index(t) + 1}", ha="center", va="bottom", fontsize=7,
                    color="red")


def branch_fork_figure(roots, tokenizer, forks: list[list[int]], branches=None, branches_per_root: int = 0,
                       root_rewards=None, branch_rewards=None, prompts: list[str] | None = None,
                       max_tokens: int = 24) -> plt.Figure:
    """Where branching rollouts (CURE, ETTRL's tree) fork. Each root completion (a row of the Rollout
    `roots`) is drawn token by token, each cell coloured by the token's entropy H (nats) under the policy
    that sampled it, its fork positions (`forks[i]`, highest entropy first) framed in red and numbered.
    Under each root come its `branches_per_root` branches (consecutive rows of the Rollout `branches`):
    the `prefix_len` tokens shared with the root hatched grey, the re-sampled fork token in a dashed frame.
    Rewards (1 = correct) are written beside each line when given; long completions show `max_tokens`
    tokens from a little before the first fork."""
    lines = len(roots) * (1 + branches_per_root)
    fig, ax = plt.subplots(figsize=(0.42 * max_tokens + 4.5, 0.36 * lines + 1.6), layout="constrained")
    vmax = max(float(roots.entropy.max()), float(branches.entropy.max()) if branches is not None else 0.0, 1e-6)
    colour = ScalarMappable(Normalize(0.0, vmax), "magma_r")
    labels, y = [], 0.0
    for i in range(len(roots)):
        start = max(0, min(forks[i]) - 3) if forks[i] and max(forks[i]) >= max_tokens else 0
        mark = "" if root_rewards is None else f"  (reward {float(root_rewards[i]):.0f})"
        head = prompts[i] if prompts is not None else f"completion {i + 1}"
        _token_strip(ax, y, roots.response_ids[i], roots.entropy[i], roots.response_mask[i], start, max_tokens,
                     tokenizer, colour, framed=forks[i])
        labels.append((y, f"{head}{mark}" + (f", from token {start + 1}" if start else "")))
        for b in range(branches_per_root):
            j = i * branches_per_root + b
            y += 1
            given = int(branches.prefix_len[j])
            _token_strip(ax, y, branches.response_ids[j], branches.entropy[j], branches.response_mask[j], start,
                         max_tokens, tokenizer, colour, given=given, resampled=given)
            mark = "" if branch_rewards is None else f"  (reward {float(branch_rewards[j]):.0f})"
            labels.append((y, f"branch {b + 1} from position {given + 1}{mark}"))
        y += 1.4
    ax.set_yticks([p for p, _ in labels], [text for _, text in labels], fontsize=8)
    cut = any(forks[i] and max(forks[i]) >= max_tokens for i in range(len(roots)))
    where = "token in view (rows cut at the front say from which token)" if cut else "response position (token)"
    ax.set(xlim=(0, max_tokens), ylim=(y - 0.6, -1.0), xlabel=f"{where}; ⏎ = end of sequence",
           title="Where the branches fork: each token coloured by its entropy")
    ax.set_xticks(np.arange(max_tokens) + 0.5, range(1, max_tokens + 1), fontsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.colorbar(colour, ax=ax, label="token entropy H (nats)", fraction=0.03)
    fig.legend(handles=[Patch(fill=False, edgecolor="red", lw=2, label="fork: a highest-entropy position"),
                        Patch(fill=False, edgecolor="red", lw=2, ls="--", label="fork token, re-sampled by the branch"),
                        Patch(facecolor="0.9", hatch="///", edgecolor="white", label="prefix shared with the completion")],
               loc="outside lower center", ncols=3, fontsize=8)
    return fig


def pseudo_label_figure(runs: dict[str, dict[int, list[dict]]], methods: dict[str, str], smooth: int = 5) -> plt.Figure:
    """Label-free methods: the accuracy of their majority-vote pseudo-label (`<method>/label_accuracy`,
    dashed) against the true accuracy of the policy's samples (`accuracy`, solid) over the steps, mean
    over seeds with a min–max band; `methods` maps a label of `runs` to its method name."""
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    for i, (label, method) in enumerate(methods.items()):
        colour = f"C{i}"
        for key, ls, what in ((f"{method}/label_accuracy", "--", "pseudo-label right"),
                              ("accuracy", "-", "true accuracy of its samples")):
            x, values = mean_over_seeds(runs[label], key, smooth)
            if len(x) == 0:
                continue
            ax.plot(x, values.mean(axis=0), color=colour, ls=ls, lw=1.6, label=f"{label}: {what}")
            if len(values) > 1:
                ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.1, lw=0)
    ax.set(title=f"Label-free rewards: is the majority right? ({smooth}-step mean over training batches)",
           xlabel="training step", ylabel="fraction (prompts with a right label / correct samples)", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
