"""Summaries and reports of runs, read from their metrics.jsonl only: first-versus-last tables of
runs, and the report of a results folder (`python -m minirl report RESULTS`).
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from .compare import comparison_table, slug
from .comparison_figures import entropy_reward_figure, vote_fits  # noqa: F401  (notebook 08 imports it from here)
from .figures import method_comparison_figure
from .plots import series
from .results import collect, comparisons, failures, run_config, write_table
from .run_folder import atomic_file, write_atomic


def summarize(rows: list[dict]) -> dict[str, float]:
    """Entropy, pass@1 and pass@k at the start and end of a run, and its mean step time."""
    out = {}
    for key in ("entropy", "pass_at_1", "pass_at_k", "reward"):
        _, values = series(rows, key)
        if values:
            out[f"{key}_first"], out[f"{key}_last"] = values[0], values[-1]
    _, step_s = series(rows, "step_s")
    if step_s:
        out["step_s"] = sum(step_s) / len(step_s)
    return out


def summary_table(runs: dict[str, list[dict]]) -> str:
    """A Markdown table, one row per run."""
    head = "| run | entropy first → last (nats) | pass@1 first → last | pass@k first → last | s / step |"
    lines = [head, "|---|---|---|---|---|"]
    for label, rows in runs.items():
        s = summarize(rows)

        def arrow(key):
            a, b = s.get(f"{key}_first"), s.get(f"{key}_last")
            return "—" if a is None else f"{a:.3f} → {b:.3f}"
        lines.append(f"| {label} | {arrow('entropy')} | {arrow('pass_at_1')} | {arrow('pass_at_k')} | "
                     f"{s.get('step_s', float('nan')):.3f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ the report of a results folder
def write_report(root, copy_figures_to=None) -> Path:
    """RESULTS/runs.csv (and .parquet where pyarrow is installed), RESULTS/figures/*.png and
    RESULTS/report.md: for each notebook and profile of the grid, the curves over seeds, the
    comparison table and the entropy-reward law of every variant. Returns the report's path."""
    root = Path(root)
    runs = collect(root)
    tables = write_table(runs, root)
    (root / "figures").mkdir(exist_ok=True)
    cell_s = sum(json.loads((r.folder / "done.json").read_text())["seconds"] for r in runs)
    lines = [f"# Results: {root.name}", "",
             f"{len(runs)} runs of metrics schema {runs[0].cell['schema'] if runs else '—'}, {cell_s / 60:.1f} min of "
             f"cells (the sum of each cell's wall time, kernel start included). One row per run and step: "
             + ", ".join(f"[{p.name}]({p.name})" for p in tables) + f". Made by `python -m minirl report {root}`."]
    for name, group in comparisons(runs).items():
        lines += _comparison_section(root, name, group, runs)
    failed = failures(root)
    if failed:
        lines += ["", "## Failed cells", "", *(f"* `{cell}`: {error}" for cell, error in failed.items())]
    if copy_figures_to:
        Path(copy_figures_to).mkdir(parents=True, exist_ok=True)
        for png in (root / "figures").glob("*.png"):
            write_atomic(Path(copy_figures_to) / png.name, png.read_bytes())
    return write_atomic(root / "report.md", "\n".join(lines) + "\n")


def _comparison_section(root: Path, name: str, group: dict, runs) -> list[str]:
    folder = next(r.folder for r in runs if f"{r.cell['notebook']}, profile {r.cell['profile']}" == name)
    config = run_config(folder) if (folder / "config.json").exists() else {}
    k = config.get("eval_k")
    curves = _save(method_comparison_figure(group, k=k), root / "figures" / f"{slug(name)}_curves.png")
    scatter_fig, fits = entropy_reward_figure(group)
    scatter = _save(scatter_fig, root / "figures" / f"{slug(name)}_entropy_reward.png")
    seeds = sorted({seed for by_seed in group.values() for seed in by_seed})
    sizes = (f"{config['steps']} steps of {config['prompts_per_step']} prompts × {config['group_size']} samples on "
             f"{config['task']}, pass@{k} on {config['eval_prompts']} eval prompts × {config['eval_samples']} "
             f"samples; " if config else "")
    return ["", f"## {name}", "",
            f"{len(group)} variants × seeds {', '.join(map(str, seeds))}; {sizes}entropy in nats per token.", "",
            f"![entropy, pass@1 and pass@k over training]({curves.relative_to(root)})", "",
            "Lines: the mean over seeds; bands: the min–max over seeds. With many variants, one row of panels per "
            "family of methods (what the method changes), each against grpo, the thick black line in every row.", "",
            comparison_table(group), "",
            "Final and best pass@1 and final pass@k: mean ± std over seeds. Entropy kept: mean batch entropy "
            "of the last 5 steps over the first 5. Tokens sampled a step: every token the run generated in a "
            "step (votes, branches and re-sampled groups included), its budget, and that against grpo's. No "
            "times: the cells of a grid run side by side, so their wall times do not compare.", "",
            f"![entropy against reward, one panel per variant, with R = −a·exp(H) + b fitted]({scatter.relative_to(root)})",
            "", *_law_table(fits, vote_fits(group)), ""]


def _law_table(fits: dict, votes: dict) -> list[str]:
    """The entropy-reward law's fits as Markdown lines: a table, and what its points and a negative a mean."""
    lines = ["| variant | a | b | R at H = 0 (b − a) | R² | steps fitted |", "|---|---|---|---|---|---|",
             *(f"| {label} | {a:.3f} | {b:.3f} | {b - a:.3f} | {r2:.2f} | {n} |" for label, (a, b, r2, n) in fits.items()),
             "", "Each point is one training step of one seed (batch entropy, batch reward); each panel's curve is the "
             "law R = −a·exp(H) + b fitted by least squares to all steps of that variant (Cui et al. 2025, "
             "arXiv 2505.22617), and the dashed black curve grpo's fit."]
    if votes:
        lines += ["", "The label-free variants log the true reward of their samples as the batch reward, but train on "
                  "agreement with their own majority vote. Here the law is fitted to both: to the true reward, and to "
                  "the share of samples agreeing with the vote (grey + in their panels), what they are trained on:", "",
                  "| label-free variant | a (vote agreement) | R² | a (true reward) | R² |", "|---|---|---|---|---|",
                  *(f"| {label} | {a:.3f} | {r2:.2f} | {fits[label][0]:.3f} | {fits[label][2]:.2f} |"
                    for label, (a, b, r2, n) in votes.items() if label in fits),
                  "", "Agreement rises as their entropy falls; where the vote is wrong for most prompts, the policy "
                  "collapses onto wrong majority answers and the true reward falls with the entropy instead, which is "
                  "what a negative a fitted to the true reward means."]
    return lines


def _save(fig, path: Path) -> Path:
    with atomic_file(path) as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    return path
