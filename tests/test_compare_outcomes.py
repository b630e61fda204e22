"""What notebooks 03 and 04 read from minirl.compare (the means over seeds, the recorded outcomes) and
that 03's entropy-vs-pass@k scatter labels every point without piling labels on one another."""
from __future__ import annotations

import numpy as np
import pytest

from minirl.compare import comparison_outcomes, seed_means, step_mean


def _run(entropies, pass_k, extra=None):
    """Rows as metrics.jsonl holds them: row 0 the evaluation before training, then one row a step."""
    rows = [{"step": 0, "entropy": None, "pass_at_1": 0.1, "pass_at_k": 0.3, "wall_s": 0.0}]
    for step, H in enumerate(entropies, 1):
        rows.append({"step": step, "entropy": H, "response_len": 2 * step, "wall_s": float(step),
                     "step_s": 1.0, **(extra or {})})
    rows[-1].update(pass_at_1=0.2, pass_at_k=pass_k)
    return rows


# 10 steps each: entropy kept = mean(last 5) / mean(first 5)
RUNS = {
    "grpo": {0: _run([1.0] * 5 + [0.5] * 5, 0.6), 1: _run([1.0] * 5 + [0.3] * 5, 0.4)},   # kept 0.5, 0.3
    "clip_cov": {0: _run([2.0] * 5 + [1.8] * 5, 0.7), 1: _run([2.0] * 5 + [1.0] * 5, 0.5)},  # kept 0.9, 0.5
}


def test_seed_means_average_each_seeds_summary():
    assert seed_means(RUNS, "entropy_kept") == pytest.approx({"grpo": 0.4, "clip_cov": 0.7})
    assert seed_means(RUNS, "final_pass_at_k") == pytest.approx({"grpo": 0.5, "clip_cov": 0.6})


def test_step_mean_skips_the_evaluation_row_and_missing_fields():
    assert step_mean(RUNS["grpo"], "response_len") == pytest.approx(11.0)        # 2·(1..10) averages 11
    assert step_mean(RUNS["grpo"], "entropy") == pytest.approx((0.75 + 0.65) / 2)
    assert step_mean(RUNS["grpo"], "entropy", slice(-5, None)) == pytest.approx(0.4)


def test_comparison_outcomes_keep_the_keys_notebook_03_records():
    out = comparison_outcomes(RUNS)
    assert (out["n_runs"], out["n_methods"], out["seeds"], out["steps"]) == (4, 2, 2, 10)
    assert out["entropy_kept"] == pytest.approx({"grpo": 0.4, "clip_cov": 0.7})
    assert out["grpo_entropy_kept"] == pytest.approx(0.4) and out["grpo_final_pass_at_k"] == pytest.approx(0.5)


def test_the_scatters_labels_do_not_overlap_even_when_points_coincide():
    from minirl.figures import entropy_vs_pass_at_k_figure

    runs = {"grpo": RUNS["grpo"], "clip_cov": RUNS["clip_cov"]}
    for i in range(8):                                       # eight methods on (nearly) grpo's point
        runs[f"method {i}"] = {0: _run([1.0] * 5 + [0.4 + 0.001 * i] * 5, 0.5), 1: RUNS["grpo"][1]}
    fig = entropy_vs_pass_at_k_figure(runs, k=8)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts if t.get_text()}
    assert set(labels) == {"grpo (dashed lines)", "clip_cov", *(f"method {i}" for i in range(8))}
    boxes = list(labels.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "two labels overlap"
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for b in boxes), "a label left the axes"
    assert np.isfinite([b.x0 for b in boxes]).all()
