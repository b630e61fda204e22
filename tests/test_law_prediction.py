"""The entropy law judged by prediction: exact on runs that follow it, the noise floor by hand."""
import math

import pytest

from minirl.law_prediction import law_by_prediction, noise_floor, predict_run


def run(a: float, b: float, entropies, wobble=()) -> list[dict]:
    """Evaluation rows on the law R = −a·exp(H) + b (plus `wobble` added to the later ones)."""
    rows = []
    for i, H in enumerate(entropies):
        R = -a * math.exp(H) + b + (wobble[i] if i < len(wobble) else 0.0)
        rows.append({"step": 10 * i, "eval_entropy": H, "pass_at_1": R})
        rows.append({"step": 10 * i + 5, "eval_entropy": None, "pass_at_1": None})   # a step without evaluation
    return rows


def test_noise_floor_by_hand():
    assert noise_floor(0.5, 16, 64) == pytest.approx(math.sqrt(0.25 / 1024))      # 0.015625
    assert noise_floor(0.0, 16, 64) == 0.0
    with pytest.raises(ValueError, match="n_samples=0"):
        noise_floor(0.5, 0, 64)


def test_a_run_on_the_law_is_predicted_exactly():
    result = predict_run(run(0.3, 0.8, [0.5, 0.45, 0.4, 0.3, 0.2, 0.15]), n_fit=3, n_samples=16, n_prompts=64)
    assert result["a"] == pytest.approx(0.3) and result["b"] == pytest.approx(0.8)
    assert result["ceiling"] == pytest.approx(0.5) and result["error"] == pytest.approx(0.0, abs=1e-12)
    assert result["fit_until_step"] == 20 and result["predicted_steps"] == 3
    assert result["final"] == pytest.approx(-0.3 * math.exp(0.15) + 0.8)


def test_errors_on_the_predicted_part_only_and_the_mean_over_seeds():
    # seed 0 follows the law; seed 1 is off by +0.02 and −0.04 on its two predicted evaluations
    runs = {0: run(0.3, 0.8, [0.5, 0.45, 0.4, 0.3]), 1: run(0.3, 0.8, [0.5, 0.45, 0.4, 0.3], (0, 0, 0.02, -0.04))}
    summary = law_by_prediction(runs, n_samples=16, n_prompts=64)            # fits the first 2 of 4
    assert summary["per_seed"][1]["error"] == pytest.approx(0.03)
    mean, low, high = summary["error"]
    assert mean == pytest.approx(0.015)
    # two seeds, errors 0 and 0.03: s = 0.0212, t(0.975, 1) = 12.706 → ± 0.1906
    assert (low, high) == pytest.approx((0.015 - 0.1906, 0.015 + 0.1906), abs=1e-3)
    with pytest.raises(ValueError, match="n_fit"):
        predict_run(run(0.3, 0.8, [0.5, 0.4]), n_fit=2, n_samples=16, n_prompts=64)
