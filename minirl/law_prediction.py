"""The entropy law R = −a·exp(H) + b judged by what it predicts, over seeds.

R² of the fit on a whole run says little: once a run plateaus, R² measures evaluation noise. So fit
the law on the early evaluations of each run and ask what it predicts for the later ones:

* the prediction error |R − R̂| on the evaluations the fit did not see, against the evaluation's own
  noise floor (the standard error of a pass@1 estimate on the fixed eval prompts);
* the predicted ceiling b − a (pass@1 once the entropy is used up, H = 0) against the final and the
  best pass@1 the run reached, each as a mean over seeds with its 95 % t interval.

The noise floor: an evaluation samples n completions of each of N fixed prompts; prompt i's pass@1
estimate c_i / n has variance p_i(1 − p_i)/n, so the mean over prompts has standard error
√(Σ p_i(1 − p_i)/n) / N — what a bootstrap over each prompt's samples estimates. metrics.jsonl keeps
only the mean p̄, and Σ p_i(1 − p_i) ≤ N·p̄(1 − p̄), so `noise_floor` is the upper bound
√(p̄(1 − p̄)/(n·N)): the true floor is at most this.

    summary = law_by_prediction(shipped.load("cpu_all_methods").runs["grpo"], n_samples=16, n_prompts=64)
"""
from __future__ import annotations

import math

import numpy as np

from .entropy_law import fit_entropy_law
from .intervals import mean_interval


def noise_floor(pass_at_1: float, n_samples: int, n_prompts: int) -> float:
    """Upper bound of the standard error of a pass@1 estimate from n_samples on each of n_prompts fixed prompts."""
    if n_samples < 1 or n_prompts < 1:
        raise ValueError(f"need at least one sample of one prompt, got n_samples={n_samples}, n_prompts={n_prompts}")
    return math.sqrt(pass_at_1 * (1 - pass_at_1) / (n_samples * n_prompts))


def evaluations(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, eval entropy H, pass@1 R) of the rows that hold an evaluation."""
    evals = [row for row in rows if row.get("pass_at_1") is not None and row.get("eval_entropy") is not None]
    return (np.array([row["step"] for row in evals]), np.array([row["eval_entropy"] for row in evals]),
            np.array([row["pass_at_1"] for row in evals]))


def predict_run(rows: list[dict], n_fit: int, n_samples: int, n_prompts: int) -> dict[str, float]:
    """Fit on a run's first `n_fit` evaluations; the error on the rest, their noise floor, the ceiling."""
    steps, H, R = evaluations(rows)
    if not 2 <= n_fit < len(R):
        raise ValueError(f"n_fit must leave at least one of the run's {len(R)} evaluations to predict "
                         f"and fit at least two; got {n_fit}")
    a, b, ceiling = fit_entropy_law(H[:n_fit], R[:n_fit])
    predicted = -a * np.exp(H[n_fit:]) + b
    floor = [noise_floor(r, n_samples, n_prompts) for r in R[n_fit:]]
    return {"a": a, "b": b, "ceiling": ceiling, "error": float(np.mean(np.abs(R[n_fit:] - predicted))),
            "noise_floor": float(np.mean(floor)), "final": float(R[-1]), "best": float(R.max()),
            "fit_until_step": int(steps[n_fit - 1]), "predicted_steps": len(R) - n_fit}


def law_by_prediction(by_seed: dict[int, list[dict]], n_samples: int, n_prompts: int,
                      n_fit: int | None = None) -> dict:
    """`predict_run` for every seed (fit on the first half of the evaluations unless `n_fit`), and each
    quantity's mean over seeds with its 95 % t interval: {key: (mean, low, high)}, plus "per_seed"."""
    per_seed = {}
    for seed, rows in by_seed.items():
        count = len(evaluations(rows)[0])
        per_seed[seed] = predict_run(rows, n_fit or (count + 1) // 2, n_samples, n_prompts)
    keys = ("a", "b", "ceiling", "error", "noise_floor", "final", "best")
    summary = {key: mean_interval([run[key] for run in per_seed.values()]) for key in keys}
    summary["gap_final"] = mean_interval([run["ceiling"] - run["final"] for run in per_seed.values()])
    summary["gap_best"] = mean_interval([run["ceiling"] - run["best"] for run in per_seed.values()])
    summary["per_seed"] = per_seed
    return summary
