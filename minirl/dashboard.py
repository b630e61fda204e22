"""The results dashboard of notebook 08: a results folder of `python -m minirl reproduce` as widgets
(overlay variants, seeds and metrics; per-token entropy of completions sampled from a run's policy).
The widget machinery is `minirl.widgets`; this module adds what needs the trainer and the results."""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .branching import fork_candidates, top_entropy_positions
from .config import TrainConfig
from .figures import branch_fork_figure, method_comparison_figure
from .results import collect, comparisons, run_config
from .rollout import sample
from .saved_policy import policy_at
from .trainer import Trainer
from .widgets import controls, interactive_figure

OVERLAY_METRICS = ("entropy", "pass_at_1", "pass_at_k", "reward", "accuracy", "cov_mean", "cov_top", "clip_frac",
                   "response_len", "step_s")


def results_dashboard(root, metrics=("entropy", "pass_at_1", "pass_at_k")) -> None:
    """Pick the variants, seeds and metrics of a results folder to overlay (mean over the chosen
    seeds, min–max band), one comparison (notebook and profile) at a time."""
    groups = comparisons(collect(root))
    labels = list(dict.fromkeys(label for group in groups.values() for label in group))
    seeds = sorted({seed for group in groups.values() for by_seed in group.values() for seed in by_seed})
    widgets = controls()

    def draw(comparison, variants, chosen_seeds, chosen_metrics):
        runs = {label: {s: rows for s, rows in groups[comparison][label].items() if s in chosen_seeds}
                for label in variants if label in groups[comparison]}
        runs = {label: by_seed for label, by_seed in runs.items() if by_seed}
        if not runs or not chosen_metrics:
            fig, ax = plt.subplots(figsize=(6, 1.5))
            ax.text(0.5, 0.5, "choose at least one variant, seed and metric", ha="center", va="center")
            ax.axis("off")
            return fig
        return method_comparison_figure(runs, metrics=tuple(chosen_metrics))

    interactive_figure(
        draw,
        comparison=widgets.Dropdown(options=list(groups), value=next(iter(groups)), description="runs of"),
        variants=widgets.SelectMultiple(options=labels, value=tuple(labels), rows=min(8, len(labels)),
                                        description="variants"),
        chosen_seeds=widgets.SelectMultiple(options=seeds, value=tuple(seeds), rows=min(4, len(seeds)),
                                            description="seeds"),
        chosen_metrics=widgets.SelectMultiple(options=OVERLAY_METRICS, value=tuple(metrics), rows=5,
                                              description="metrics"))


def entropy_heatmap_view(root, n_prompts: int = 4, n_forks: int = 2) -> None:
    """Completions sampled (seed 0) from a run's policy at step 0 or at its last checkpoint, each
    token coloured by its entropy, the `n_forks` highest-entropy positions of each framed. Where no
    run holds a checkpoint (shipped results keep metrics only) it shows step 0 and says so."""
    runs = {run.id: run for run in collect(root)}
    saved = {i: run for i, run in runs.items() if (run.folder / "checkpoint.pt").exists()}
    steps = [("0: the starting policy", 0)]
    if saved:
        runs = saved
        steps.append((f"last: the final checkpoint ({max(run.rows[-1]['step'] for run in runs.values())})", 1))
    else:
        print(f"The runs in {root} hold no checkpoints, so only step 0 (the policy they started from) is shown; "
              "the last step needs a results folder with checkpoints (`python -m minirl reproduce GRID` writes one).")
    widgets = controls()

    def draw(run_id, step):
        run = runs[run_id]
        return token_entropy_figure(str(run.folder), run.rows[-1]["step"] if step else 0, n_prompts, n_forks)

    interactive_figure(
        draw, run_id=widgets.Dropdown(options=list(runs), value=next(iter(runs)), description="run"),
        step=widgets.Dropdown(options=steps, value=steps[-1][1], description="step"))


def token_entropy_figure(folder: str, step: int, n_prompts: int = 4, n_forks: int = 2) -> plt.Figure:
    """`branch_fork_figure` (notebook 04_branching_rollouts) of the run's completions at `step`, without
    branches."""
    s = sampled_completions(folder, step, n_prompts, n_forks)
    fig = branch_fork_figure(s["rollout"], s["tokenizer"], s["forks"], root_rewards=s["rewards"],
                             prompts=s["prompts"], max_tokens=s["max_tokens"])
    fig.legends.clear()                                   # its legend explains branches, which are not drawn here
    fig.axes[0].set_title(f"{s['label']} at step {step}: each token coloured by its entropy\n"
                          f"red frames: the {n_forks} highest-entropy positions of each completion")
    return fig


@functools.lru_cache(maxsize=8)
def sampled_completions(folder: str, step: int, n_prompts: int, n_forks: int) -> dict:
    """One completion for each of the first `n_prompts` eval prompts (seed 0), their rewards and
    forks; cached, so that the dashboard redraws a run it has shown at once."""
    if step == 0 and not (Path(folder) / "checkpoint.pt").exists():   # metrics and config only (shipped results):
        saved = run_config(folder)                                     # the policy it started from, by its config
        trainer = Trainer(TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}))
        policy, tokenizer, task, config = trainer.model.eval(), trainer.tokenizer, trainer.task, trainer.config
    else:
        policy, tokenizer, task, config = policy_at(folder, step)
    examples = task.eval[:n_prompts]
    torch.manual_seed(0)
    rollout = sample(policy, tokenizer, [e.prompt for e in examples], max_new_tokens=task.max_new_tokens)
    candidates = fork_candidates(rollout.response_ids, rollout.response_mask, skip_ids=tokenizer.all_special_ids)
    tiny = config.backend == "tiny"                       # one token per character: whole completions fit
    return {"rollout": rollout, "tokenizer": tokenizer, "label": f"{config.method} (seed {config.seed})",
            "forks": top_entropy_positions(rollout.entropy, candidates, n_forks),
            "rewards": [task.reward(text, e) for text, e in zip(rollout.completions, examples)],
            "prompts": [e.prompt for e in examples] if tiny else None,
            "max_tokens": task.max_new_tokens + 1 if tiny else 24}
