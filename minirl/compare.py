"""Several methods × seeds on one task and budget, tabulated from their metrics rows.

    variants = {"grpo": ("grpo", {}), "clip_cov 2%": ("clip_cov", {"clip_cov_ratio": "0.02"})}
    runs = run_variants(variants, seeds=[0, 1, 2], profile="smoke", steps=100, out="runs/cmp")  # minirl.variants
    print(comparison_table(runs))
    text, lists = verdicts(runs, k=8)     # which variants kept more entropy than grpo beyond the seed spread
    kept = seed_means(runs, "entropy_kept")  # {variant: mean over seeds}; comparison_outcomes for record_outcomes

`minirl.variants.run_variants` trains them (a finished run is read back, a killed one resumed); the
course's runs of these variants ship with the package (`minirl.shipped`). Nothing here trains, so
this module reads results without torch.
"""
from __future__ import annotations

import statistics

from .intervals import WORDS, Difference, bonferroni, difference, welch_verdict
from .plots import series


def run_summary(rows: list[dict]) -> dict[str, float]:
    """The comparison's numbers for one run."""
    _, pass1 = series(rows, "pass_at_1")
    _, passk = series(rows, "pass_at_k")
    _, entropy = series(rows, "entropy")
    _, step_s = series(rows, "step_s")
    _, tokens = series(rows, "tokens_sampled")
    head, tail = entropy[:5], entropy[-5:]
    return {
        "final_pass_at_1": pass1[-1], "best_pass_at_1": max(pass1), "final_pass_at_k": passk[-1],
        "entropy_kept": (sum(tail) / len(tail)) / (sum(head) / len(head)),
        "final_entropy": sum(tail) / len(tail), "tokens_per_step": statistics.mean(tokens) if tokens else None,
        "wall_s": rows[-1]["wall_s"], "step_s": statistics.median(step_s),
    }


def seed_means(runs: dict[str, dict[int, list[dict]]], key: str) -> dict[str, float]:
    """{variant: the mean over its seeds of `run_summary(rows)[key]`}, e.g. key="entropy_kept"."""
    return {label: statistics.mean(run_summary(rows)[key] for rows in by_seed.values())
            for label, by_seed in runs.items()}


def step_mean(by_seed: dict[int, list[dict]], key: str, rows: slice = slice(1, None)) -> float:
    """One metrics.jsonl field of one variant, averaged over `rows` of each seed's run (default: every
    training step, row 0 being the evaluation before training; rows without the field skipped), then
    over seeds."""
    return statistics.mean(statistics.mean(r[key] for r in run[rows] if r.get(key) is not None)
                           for run in by_seed.values())


def comparison_outcomes(runs: dict[str, dict[int, list[dict]]], baseline: str = "grpo",
                        keys=("entropy_kept", "final_pass_at_k")) -> dict:
    """What a comparison notebook keeps with `minirl.course.record_outcomes`: the numbers of runs,
    variants, seeds and steps, and for each key the mean over seeds of every variant ({key: {label:
    mean}}) and of `baseline` ({f"{baseline}_{key}": mean})."""
    out = {"n_runs": sum(len(by_seed) for by_seed in runs.values()), "n_methods": len(runs),
           "seeds": max(len(by_seed) for by_seed in runs.values()),
           "steps": max(rows[-1]["step"] for by_seed in runs.values() for rows in by_seed.values())}
    for key in keys:
        out[key] = seed_means(runs, key)
        if baseline in runs:
            out[f"{baseline}_{key}"] = out[key][baseline]
    return out


def comparison_table(runs: dict[str, dict[int, list[dict]]], baseline: str | None = "grpo",
                     timings: bool = False) -> str:
    """Markdown: mean ± std over seeds of each variant's summary, and the tokens it sampled a step
    (its budget) against `baseline`'s. `timings` adds wall and step times: only for runs that ran one
    at a time on one machine (grid cells run side by side, so theirs do not compare)."""
    summaries = {label: [run_summary(rows) for rows in by_seed.values()] for label, by_seed in runs.items()}
    base = summaries.get(baseline)

    def ratio(items, key):
        if not base or any(s[key] is None for s in [*items, *base]):
            return "—"
        return f"{statistics.mean(s[key] for s in items) / statistics.mean(s[key] for s in base):.2f}×"

    head = ("| method | seeds | final pass@1 | best pass@1 | final pass@k | final entropy (nats) | entropy kept | "
            f"tokens sampled a step | tokens vs {baseline} |")
    lines = [head + (f" wall s | step time vs {baseline} |" if timings else ""), "|---" * (11 if timings else 9) + "|"]
    for label, items in summaries.items():
        def cell(key, fmt=".3f"):
            values = [s[key] for s in items]
            if None in values:                      # e.g. tokens_sampled, in runs made by other trainers
                return "—"
            mean = statistics.mean(values)
            return f"{mean:{fmt}} ± {statistics.stdev(values):{fmt}}" if len(values) > 1 else f"{mean:{fmt}}"
        line = (f"| {label} | {len(items)} | {cell('final_pass_at_1')} | {cell('best_pass_at_1')} | "
                f"{cell('final_pass_at_k')} | {cell('final_entropy')} | {cell('entropy_kept', '.2f')} | "
                f"{cell('tokens_per_step', '.0f')} | {ratio(items, 'tokens_per_step')} |")
        lines.append(line + (f" {cell('wall_s', '.0f')} | {ratio(items, 'step_s')} |" if timings else ""))
    return "\n".join(lines)


def budget_table(runs: dict[str, dict[int, list[dict]]], k: int, baseline: str = "grpo") -> str:
    """Markdown, cheapest first: the tokens each variant sampled a step (mean ± std over seeds), that
    against `baseline`'s, and its final pass@k, so that pass@k is read beside what it cost (variants
    whose runs logged no `tokens_sampled` are left out)."""
    cost = {label: [run_summary(rows) for rows in by_seed.values()] for label, by_seed in runs.items()}
    cost = {label: items for label, items in cost.items() if all(s["tokens_per_step"] is not None for s in items)}
    tokens = {label: statistics.mean(s["tokens_per_step"] for s in items) for label, items in cost.items()}
    lines = [f"| method | tokens sampled a step | vs {baseline} | final pass@{k} |", "|---|---|---|---|"]
    for label in sorted(cost, key=tokens.get):
        per_seed = [s["tokens_per_step"] for s in cost[label]]
        spread = f" ± {statistics.stdev(per_seed):.0f}" if len(per_seed) > 1 else ""
        ratio = f"{tokens[label] / tokens[baseline]:.2f}×" if baseline in tokens else "—"
        passk = statistics.mean(s["final_pass_at_k"] for s in cost[label])
        lines.append(f"| {label} | {tokens[label]:.0f}{spread} | {ratio} | {passk:.3f} |")
    return "\n".join(lines)


VERDICTS = WORDS  # ("higher", "no clear difference", "lower", "undecided (1 seed)")


def seed_verdict(values: list[float], base: list[float]) -> Difference:
    """`values` − `base` (one number a seed each) as `minirl.intervals.difference`: the mean difference,
    its 95 % Welch interval (and bootstrap interval) and the probability of improvement; `.verdict` is 'higher' / 'lower'
    when the interval excludes 0, 'no clear difference' when it does not."""
    return difference(values, base)


def verdicts(runs: dict[str, dict[int, list[dict]]], k: int, title: str = "", control: str | None = None,
             baseline: str = "grpo") -> tuple[str, dict[str, dict[str, list[str]]]]:
    """Each variant's entropy kept and final pass@k against `baseline`'s (and pass@k against `control`'s):
    the difference of the means over seeds with its 95 % Welch interval and P(a seed beats a
    baseline seed), by `seed_verdict`; and which verdicts survive the Bonferroni level for all the
    comparisons printed. Returns the printable text and {"entropy_kept" | "final_pass_at_k": {verdict: labels}}."""
    def by_seed(label, key):
        return [run_summary(rows)[key] for rows in runs[label].values()]

    others = [label for label in runs if label != baseline]
    m = 2 * len(others) + (len(others) - 1 if control in others else 0)
    strict = bonferroni(max(m, 1))
    lines = [f"{title + ': ' if title else ''}difference to {baseline} (mean over seeds) [95 % Welch interval], "
             f"P = probability that a seed beats a {baseline} seed", "",
             f"{'method':<28} {'seeds':>5}  {'entropy kept':<44} {f'final pass@{k}':<44}"
             + (f" final pass@{k} vs {control}" if control else "")]
    groups: dict[str, dict[str, list[str]]] = {"entropy_kept": {}, "final_pass_at_k": {}}
    survivors = []
    for label in others:
        row = f"{label:<28} {len(runs[label]):>5}  "
        for key, fmt in (("entropy_kept", ".2f"), ("final_pass_at_k", ".3f")):
            d = seed_verdict(by_seed(label, key), by_seed(baseline, key))
            groups[key].setdefault(d.verdict, []).append(label)
            row += f"{d.verdict:<20} {d.text(fmt):<16} P {d.improvement:.2f}  "
            if d.verdict in (WORDS[0], WORDS[2]) and welch_verdict(by_seed(label, key), by_seed(baseline, key),
                                                                   strict) == d.verdict:
                survivors.append(f"{label} ({key.replace('_', ' ')} {d.verdict})")
        if control and label != control:
            d = seed_verdict(by_seed(label, "final_pass_at_k"), by_seed(control, "final_pass_at_k"))
            row += f"{d.verdict:<20} {d.text():<16} P {d.improvement:.2f}"
        lines.append(row.rstrip())
    lines.append("")
    for key, name in (("entropy_kept", "entropy kept"), ("final_pass_at_k", f"final pass@{k}")):
        for word in (w for w in VERDICTS if w in groups[key]):
            than = f" than {baseline}" if word in (WORDS[0], WORDS[2]) else ""
            lines.append(f"{name}, {word}{than}: {', '.join(groups[key][word])}")
    lines.append(f"{m} comparisons at the 95 % level: about {0.05 * m:.1f} intervals exclude 0 by chance alone; "
                 f"at the Bonferroni level ({100 * strict:.2f} %) these verdicts still hold: {', '.join(survivors) or 'none'}")
    return "\n".join(lines), groups


def slug(label: str) -> str:
    """`label` as a folder name: letters, digits and -_. kept, anything else _."""
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
