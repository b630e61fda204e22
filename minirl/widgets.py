"""Interactive figures for the notebooks: ipywidgets controls that redraw a figure.

Each one is shown as a single output that holds both the live widget and a PNG of its default
view. Jupyter, JupyterLab and VS Code show the widget; where widgets cannot render (GitHub,
nbviewer, a notebook executed by papermill or nbval) the PNG is shown instead. Without
ipywidgets only the PNG is shown.
"""
from __future__ import annotations

import base64
import functools
import io
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import theory
from .branching import fork_candidates, top_entropy_positions
from .config import TrainConfig
from .figures import branch_fork_figure, method_comparison_figure
from .results import collect, comparisons, run_config
from .rollout import sample
from .saved_policy import policy_at
from .trainer import Trainer


def interactive_figure(draw, **controls) -> None:
    """Show draw(**values) under the ipywidgets `controls` (name → widget); redraw on change."""
    from IPython.display import Image, display  # optional: IPython, present in a notebook's kernel

    first = _png(draw(**{name: c.value for name, c in controls.items()}))
    widgets = _ipywidgets()
    if widgets is None:
        display(Image(data=first))
        return
    # The image is put into the Output widget's state directly, not displayed inside `with out:`:
    # that form routes display messages through the widget's msg_id, and papermill's client (no
    # frontend) was seen to wait forever for a cell that used it while another notebook ran.
    out = widgets.Output()
    out.append_display_data(Image(data=first))

    def redraw(change):
        png = _png(draw(**{name: c.value for name, c in controls.items()}))
        out.outputs = ()
        out.append_display_data(Image(data=png))

    for control in controls.values():
        control.observe(redraw, names="value")
    view = widgets.VBox([widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")), out])
    bundle = widget_bundle(view)                             # the widget, for frontends that render it
    bundle["image/png"] = base64.b64encode(first).decode()   # the default view, for those that cannot
    display(bundle, raw=True)


def widget_bundle(view) -> dict:
    """The MIME bundle that shows `view` in a notebook, under ipywidgets 8 and 7 alike.

    ipywidgets 8 builds it in `_repr_mimebundle_`; ipywidgets 7 (what Colab ships) has no such
    method and writes the same view record (widget protocol 2) from `_ipython_display_`, so it is
    built here from the widget's model id."""
    if hasattr(view, "_repr_mimebundle_"):
        return dict(view._repr_mimebundle_())
    return {"text/plain": repr(view),
            "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                         "model_id": view.model_id}}


def _ipywidgets():
    """The ipywidgets module, or None where it is not installed. On Colab, whose frontend draws
    only its own widgets until asked, the custom widget manager is switched on first."""
    try:
        import ipywidgets  # optional: without it only the PNG is shown
    except ImportError:
        return None
    enable_colab_widgets()
    return ipywidgets


def enable_colab_widgets(modules=None) -> bool:
    """Switch on Colab's custom widget manager (needed for ipywidgets' sliders there); True if it
    did. Elsewhere, or where Colab's output module lacks the switch, nothing happens."""
    modules = sys.modules if modules is None else modules
    if "google.colab" not in modules:
        return False
    try:
        from google.colab import output  # optional: on Colab only
    except ImportError:
        return False
    enable = getattr(output, "enable_custom_widget_manager", None)
    if enable is None:
        return False
    enable()
    return True


class Fixed:
    """A control that cannot move: what `interactive_figure` gets where ipywidgets is missing."""

    def __init__(self, value=None, **_):
        self.value = value


class _NoWidgets:
    """Stands in for ipywidgets where it is missing: every control (FloatSlider, ...) is a fixed value."""

    def __getattr__(self, name):
        return Fixed


def _controls():
    """What makes the controls: ipywidgets, or fixed values where it is missing."""
    return _ipywidgets() or _NoWidgets()


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


# ------------------------------------------------------------------ theory notebook (01)
def entropy_change_figure(eta: float, p_arm: float, adv: float, n_arms: int = 10) -> plt.Figure:
    """One natural policy-gradient step δz = η·A on arm 0 of a K-armed softmax whose arm 0 has
    probability π_0 (the others share the rest): the policy before and after, and the exact and
    predicted (−Cov(log π, δz)) entropy change against π_0, at this η and A."""
    fig, (ax_p, ax_h) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    z = theory.one_arm_policy(p_arm, n_arms)
    dz = theory.logit_step(z, np.eye(n_arms)[0] * adv, eta, "natural")
    arms = np.arange(n_arms)
    ax_p.bar(arms - 0.2, theory.softmax(z), 0.4, label="π before")
    ax_p.bar(arms + 0.2, theory.softmax(z + dz), 0.4, label="π after the step")
    ax_p.set(title=f"The policy: arm 0 pushed by δz_0 = η·A = {eta * adv:+.2f}", xlabel="arm a",
             ylabel="probability π_a", xticks=arms)
    probs = np.logspace(np.log10(0.5 / n_arms**2), np.log10(0.98), 200)
    exact, predicted = np.array([_one_arm_change(p, adv, eta, n_arms) for p in probs]).T
    ax_h.semilogx(probs, exact, label="exact ΔH")
    ax_h.semilogx(probs, predicted, "--", label="predicted −Cov(log π, δz)")
    now_exact, now_predicted = _one_arm_change(p_arm, adv, eta, n_arms)
    ax_h.plot([p_arm, p_arm], [now_exact, now_predicted], "ko", ms=5, label=f"π_0 = {p_arm:.3f}")
    ax_h.axhline(0, color="k", lw=0.8)
    ax_h.axvline(1 / n_arms, color="k", ls=":", label=f"π_0 = 1/K (K = {n_arms}): first-order border")
    try:                                # the exact border moves with η·A (none when A = 0)
        border = theory.exact_sign_border(adv, eta, n_arms)
        ax_h.axvline(border, color="tab:red", ls="--", lw=1, label=f"π_0 = {border:.3f}: exact border at this η, A")
    except ValueError:
        pass
    ax_h.set(title=f"ΔH at π_0 = {p_arm:.3f}: exact {now_exact:+.4f}, predicted {now_predicted:+.4f} nats",
             xlabel="probability π_0 of the pushed arm (log scale)", ylabel="entropy change ΔH (nats)")
    for ax in (ax_p, ax_h):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _one_arm_change(p_arm: float, adv: float, eta: float, n_arms: int) -> tuple[float, float]:
    z = theory.one_arm_policy(p_arm, n_arms)
    return theory.entropy_change(z, np.eye(n_arms)[0] * adv, eta, "natural")


def entropy_change_explorer(eta: float = 0.5, p_arm: float = 0.6, adv: float = 1.0, n_arms: int = 10) -> None:
    """Sliders for η, π_0 and A over `entropy_change_figure`."""
    widgets = _controls()
    interactive_figure(
        functools.partial(entropy_change_figure, n_arms=n_arms),
        eta=widgets.FloatSlider(value=eta, min=0.01, max=3.0, step=0.01, description="η"),
        p_arm=widgets.FloatLogSlider(value=p_arm, base=10, min=-3, max=np.log10(0.98), step=0.02, description="π_0"),
        adv=widgets.FloatSlider(value=adv, min=-2.0, max=2.0, step=0.05, description="A"))


# ------------------------------------------------------------------ results dashboard (08)
OVERLAY_METRICS = ("entropy", "pass_at_1", "pass_at_k", "reward", "accuracy", "cov_mean", "cov_top", "clip_frac",
                   "response_len", "step_s")


def results_dashboard(root, metrics=("entropy", "pass_at_1", "pass_at_k")) -> None:
    """Pick the variants, seeds and metrics of a results folder to overlay (mean over the chosen
    seeds, min–max band), one comparison (notebook and profile) at a time."""
    groups = comparisons(collect(root))
    labels = list(dict.fromkeys(label for group in groups.values() for label in group))
    seeds = sorted({seed for group in groups.values() for by_seed in group.values() for seed in by_seed})
    widgets = _controls()

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
    widgets = _controls()

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
