"""The README's generated comparison: made from the shipped runs, and the numbers of its tables."""
from pathlib import Path

from minirl import summary

ROOT = Path(__file__).resolve().parents[1]


def rows(kept: float, pass_k: float = 0.5, pass_1: float = 0.3) -> list[dict]:
    """A run whose entropy falls from 1 to `kept` (so entropy kept = kept) and ends at these pass rates."""
    return [{"step": s, "entropy": 1.0 if s < 5 else kept, "pass_at_1": pass_1, "pass_at_k": pass_k,
             "step_s": 1.0, "tokens_sampled": 100, "wall_s": float(s)} for s in range(10)]


def test_the_table_reads_intervals_worked_out_by_hand():
    runs = {"grpo": {s: rows(v) for s, v in enumerate((0.40, 0.45, 0.50))},
            "a": {s: rows(v) for s, v in enumerate((0.80, 0.85, 0.90))},
            "b": {s: rows(v) for s, v in enumerate((0.40, 0.50, 0.45))}}
    table, groups = summary.grid_table(runs, k=8)
    grpo, a, b = table.splitlines()[2:]
    # grpo: mean 0.45, sd 0.05, t(0.975, 2) = 4.303 · 0.05/√3 = 0.124
    assert grpo.startswith("| grpo | 3 | 0.45 ± 0.12 |  |")
    # a − grpo: 0.40, se = √(2 · 0.05²/3) = 0.0408, 4 degrees of freedom, t = 2.776: ± 0.113; at the
    # Bonferroni level for 2 × 3 comparisons (99.17 %, t = 4.85: ± 0.198) it still excludes 0: bold
    assert a.startswith("| a | 3 | 0.85 ± 0.12 | **+0.40 ± 0.11 ↑** |")
    assert b.startswith("| b | 3 | 0.45 ± 0.12 | +0.00 ± 0.11 |")
    assert groups["entropy_kept"]["higher"] == ["a"] and groups["entropy_kept"]["strict"] == ["a"]
    assert groups["entropy_kept"]["no clear difference"] == ["b"]
    sentences = summary.verdict_sentences(groups, k=8)
    assert "* entropy kept higher than grpo's: a (still at the Bonferroni level: a)." in sentences
    assert "* entropy kept, no clear difference from grpo: b." in sentences


def test_the_readme_section_is_the_one_the_shipped_runs_make():
    readme = (ROOT / "README.md").read_text()
    assert summary.BEGIN in readme, "the README lost its generated comparison section"
    current = readme.split(summary.BEGIN, 1)[1].split(summary.END, 1)[0]
    assert summary.BEGIN + current + summary.END == summary.section(), \
        "the README's comparison is stale: run `python -m minirl.summary --readme README.md`"
