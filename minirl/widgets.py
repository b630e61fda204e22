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

import matplotlib.pyplot as plt
import numpy as np

from . import theory


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


def controls():
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
    widgets = controls()
    interactive_figure(
        functools.partial(entropy_change_figure, n_arms=n_arms),
        eta=widgets.FloatSlider(value=eta, min=0.01, max=3.0, step=0.01, description="η"),
        p_arm=widgets.FloatLogSlider(value=p_arm, base=10, min=-3, max=np.log10(0.98), step=0.02, description="π_0"),
        adv=widgets.FloatSlider(value=adv, min=-2.0, max=2.0, step=0.05, description="A"))
