"""First-versus-last summaries of runs, read from their metrics.jsonl."""
from __future__ import annotations

from .plots import series


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
