"""Several methods × seeds on one task and budget: run them (resumably) and tabulate.

    variants = {"grpo": ("grpo", {}), "clip_cov 2%": ("clip_cov", {"clip_cov_ratio": "0.02"})}
    runs = run_variants(variants, seeds=[0, 1, 2], profile="smoke", steps=100, out="runs/cmp")
    print(comparison_table(runs))

A finished run is read back instead of trained again; a killed one is resumed.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from .config import make_config
from .plots import series
from .trainer import read_metrics, train


def run_variants(variants: dict[str, tuple], seeds, profile: str, steps: int, out,
                 progress: bool = True, **train_overrides) -> dict[str, dict[int, list[dict]]]:
    """Train every (variant, seed) into out/<variant>/seed<k>; returns rows[variant][seed].
    A variant is (method, method settings) or (method, method settings, TrainConfig overrides)."""
    runs: dict[str, dict[int, list[dict]]] = {}
    for label, (method, settings, *own) in variants.items():
        runs[label] = {}
        for seed in seeds:
            folder = Path(out) / _slug(label) / f"seed{seed}"
            rows = read_metrics(folder) if (folder / "metrics.jsonl").exists() else []
            if not rows or rows[-1]["step"] < steps:
                config = make_config(profile, method=method, seed=seed, steps=steps,
                                     method_settings=dict(settings), **{**train_overrides, **(own[0] if own else {})})
                train(config, folder, resume=(folder / "checkpoint.pt").exists(), progress=progress)
                rows = read_metrics(folder)
            runs[label][seed] = rows
    return runs


def run_summary(rows: list[dict]) -> dict[str, float]:
    """The comparison's numbers for one run."""
    _, pass1 = series(rows, "pass_at_1")
    _, passk = series(rows, "pass_at_k")
    _, entropy = series(rows, "entropy")
    _, step_s = series(rows, "step_s")
    head, tail = entropy[:5], entropy[-5:]
    return {
        "final_pass_at_1": pass1[-1], "best_pass_at_1": max(pass1), "final_pass_at_k": passk[-1],
        "entropy_kept": (sum(tail) / len(tail)) / (sum(head) / len(head)),
        "final_entropy": sum(tail) / len(tail),
        "wall_s": rows[-1]["wall_s"], "step_s": statistics.median(step_s),
    }


def comparison_table(runs: dict[str, dict[int, list[dict]]], baseline: str | None = "grpo") -> str:
    """Markdown: mean ± std over seeds of each variant's summary; step-time overhead vs `baseline`."""
    summaries = {label: [run_summary(rows) for rows in by_seed.values()] for label, by_seed in runs.items()}
    base_step = None
    if baseline in summaries:
        base_step = statistics.mean(s["step_s"] for s in summaries[baseline])
    lines = ["| method | seeds | final pass@1 | best pass@1 | final pass@k | final entropy (nats) | "
             "entropy kept | wall s | step time vs grpo |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, items in summaries.items():
        def cell(key, fmt=".3f"):
            values = [s[key] for s in items]
            mean = statistics.mean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{mean:{fmt}} ± {spread:{fmt}}" if len(values) > 1 else f"{mean:{fmt}}"
        overhead = "—" if base_step is None else f"{statistics.mean(s['step_s'] for s in items) / base_step:.2f}×"
        lines.append(f"| {label} | {len(items)} | {cell('final_pass_at_1')} | {cell('best_pass_at_1')} | "
                     f"{cell('final_pass_at_k')} | {cell('final_entropy')} | {cell('entropy_kept', '.2f')} | "
                     f"{cell('wall_s', '.0f')} | {overhead} |")
    return "\n".join(lines)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("_")


# Settings that suit the tiny policy's scale (a step holds ~800-1500 tokens, not millions); each
# method file documents its official defaults for real models. Used by notebook 03.
TINY_SCALE_VARIANTS: dict[str, tuple[str, dict]] = {
    "grpo": ("grpo", {}),
    "dr_grpo": ("dr_grpo", {}),
    "dapo": ("dapo", {}),
    "entropy_bonus 0.03": ("entropy_bonus", {"entropy_coeff": "0.03"}),
    "kl_ref 0.05": ("kl_ref", {"kl_loss_coef": "0.05"}),
    "high_entropy_tokens": ("high_entropy_tokens", {}),
    "clip_cov 2%": ("clip_cov", {"clip_cov_ratio": "0.02"}),
    "kl_cov 2% beta 5": ("kl_cov", {"kl_cov_ratio": "0.02", "ppo_kl_coef": "5"}),
    "steer lambda_min 0.1": ("steer", {"token_weight_min": "0.1"}),
    "siren": ("siren", {}),
    "lp_reg rho 0.1": ("lp_reg", {"logp_neg_k_percent": "0.1"}),
    "ulorl sigma 0.35": ("ulorl", {"sigma": "0.35"}),
    "llds": ("llds", {}),
    "tea_rl alpha 0.2": ("tea_rl", {"cov_alpha": "0.2"}),
    "epo": ("epo", {"entropy_coeff": "0.03", "entropy_smooth_coeff": "10"}),
    "aepo_agentic_loss": ("aepo_agentic_loss", {}),
    "aepo target 0.35": ("aepo", {"entropy_base": "0.35", "prompt_fraction": "1"}),
}


# Notebook 04: the methods that act on rollouts, rewards, advantages and schedules, at settings that
# suit the tiny policy (each method file documents its official defaults). Branching and voting
# methods sample more than G per prompt: `grpo G=16` and `dapo G=4` are the equal-budget controls.
BATCH_LEVEL_VARIANTS: dict[str, tuple] = {
    "grpo": ("grpo", {}),
    "grpo G=16": ("grpo", {}, {"group_size": 16}),
    "dapo G=4": ("dapo", {}, {"group_size": 4}),
    "cure": ("cure", {}),
    "ettrl": ("ettrl", {}),
    "ttrl": ("ttrl", {}),
    "evol_rl": ("evol_rl", {}),
    "riskpo": ("riskpo", {}),
    "entropy_adv alpha 2 kappa 1": ("entropy_adv", {"alpha": "2", "kappa": "1"}),
    "spear T_r 30": ("spear", {"max_replay_loss_steps": "30", "clip_cov_ratio": "0.02", "clip_cov_ub": "40"}),
}
# The methods that need steps and phases run on countdown_steps, against grpo on the same task.
STEPWISE_VARIANTS: dict[str, tuple] = {
    "grpo": ("grpo", {}, {"task": "countdown_steps"}),
    "empg": ("empg", {}, {"task": "countdown_steps"}),
    "pear": ("pear", {}, {"task": "countdown_steps"}),
}
# The agentic methods run on countdown_tool (a calculator call ends a turn), against grpo on the same
# task: AEPO's whole method, its loss alone (what the rollout adds), the rollout without the
# consecutive-branch penalty, and with the released scripts' fixed split; SPEAR with its tool-call reward.
TOOL_VARIANTS: dict[str, tuple] = {
    "grpo": ("grpo", {}, {"task": "countdown_tool"}),
    "aepo_agentic_loss": ("aepo_agentic_loss", {}, {"task": "countdown_tool"}),
    "aepo_agentic": ("aepo_agentic", {}, {"task": "countdown_tool"}),
    "aepo_agentic no penalty": ("aepo_agentic", {"branch_penalty": "0"}, {"task": "countdown_tool"}),
    "aepo_agentic fixed split": ("aepo_agentic", {"enable_dynamic_rollouts": "false"}, {"task": "countdown_tool"}),
    "spear tool reward": ("spear", {"max_replay_loss_steps": "30", "max_toolcall_steps": "60",
                                    "clip_cov_ratio": "0.02", "clip_cov_ub": "40"}, {"task": "countdown_tool"}),
}
