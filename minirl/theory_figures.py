"""Figures of the theory notebook (01) that go beyond the η sweep: the sign map with its
first-order and exact borders, and the relative error of the first-order prediction over random
bandits. Each function takes the arrays `minirl.theory` computes and returns a titled, labelled
matplotlib Figure (entropy in nats)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import SymLogNorm

from . import theory


def sign_map_figure(probs, advs, grid: np.ndarray, n_arms: int, eta: float) -> plt.Figure:
    """Exact ΔH (colour, symmetric log scale) of a natural step δz = η A e_0 on arm 0 of
    probability π_0 (`minirl.theory.sign_map`), with the borders where it changes sign: A = 0,
    the first-order border π_0 = 1/K and the exact border (`minirl.theory.exact_sign_border`)."""
    fig, ax = plt.subplots(figsize=(7, 4.8), layout="constrained")
    limit = np.abs(grid).max()
    mesh = ax.pcolormesh(probs, advs, grid, cmap="RdBu", shading="auto",
                         norm=SymLogNorm(linthresh=limit * 1e-3, vmin=-limit, vmax=limit))
    ticks = [s * limit * 10.0 ** -e for s in (-1, 1) for e in (0, 1, 2)] + [0.0]
    fig.colorbar(mesh, ax=ax, label="exact ΔH (nats, symmetric log scale)", ticks=sorted(ticks), format="%.0e")
    ax.axhline(0, color="k", ls="--", lw=1, label="A = 0")
    ax.axvline(1 / n_arms, color="k", ls=":", lw=1.5, zorder=4, label=rf"first-order border $\pi_0 = 1/K$, K = {n_arms}")
    for side in (advs[advs > 0], advs[advs < 0]):                     # one curve on each side of A = 0
        border = [theory.exact_sign_border(a, eta, n_arms) for a in side]
        ax.plot(border, side, color="gold", lw=2, zorder=3, label=f"exact border at η = {eta}" if side[0] > 0 else None)
    ax.set_xscale("log")
    for x, y, text in [(0.03, 0.9, "rare arm, A > 0:\nH rises"), (0.97, 0.9, "likely arm, A > 0:\nH falls"),
                       (0.03, 0.1, "rare arm, A < 0:\nH falls"), (0.97, 0.1, "likely arm, A < 0:\nH rises")]:
        ax.text(x, y, text, transform=ax.transAxes, ha="left" if x < 0.5 else "right", va="center",
                fontsize=9, bbox=dict(facecolor="white", alpha=0.8, lw=0))
    ax.set(title="Sign of the entropy change: red = H falls, blue = H rises",
           xlabel=r"probability $\pi_0$ of the pushed arm (log scale)", ylabel="advantage A of that arm")
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    return fig


def relative_error_figure(errors: dict[str, dict], eta: float, tolerance: float = 0.02) -> plt.Figure:
    """Relative error of the first-order prediction on random bandits (`errors` maps a label to a
    `minirl.theory.random_bandit_errors` result at step size `eta`). With ΔH = c₁η + c₂η² + O(η³)
    the relative error is ≈ η |c₂| / |c₁|: on the left against |c₁|, on the right |c₂| against
    |c₁|, the bandits past `tolerance` marked ×, above the line η |c₂| / |c₁| = tolerance."""
    fig, (ax_rel, ax_c2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for (label, e), colour in zip(errors.items(), ("tab:blue", "tab:orange")):
        c1, c2 = np.abs(e["first_order"]), np.abs(e["remainder"]) / eta ** 2   # |c₁|, ≈ |c₂|
        over = e["rel_error"] > tolerance
        ax_rel.loglog(c1, e["rel_error"], ".", ms=3, alpha=0.5, color=colour, label=label)
        ax_c2.loglog(c1[~over], c2[~over], ".", ms=3, alpha=0.5, color=colour, label=f"{label}, within {tolerance:.0%}")
        ax_c2.loglog(c1[over], c2[over], "x", ms=4, color=colour, label=f"{label}, past {tolerance:.0%}")
    ax_rel.axhline(tolerance, color="tab:red", lw=1, label=f"{tolerance:.0%} relative error")
    c1 = np.logspace(*np.log10(ax_c2.get_xlim()), 50)
    ax_c2.loglog(c1, tolerance / eta * c1, "k--", lw=1, label=rf"$\eta\,|c_2|/|c_1|$ = {tolerance:.0%}")
    for ax in (ax_rel, ax_c2):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax_rel.set(title=f"Random bandits, one step of η = {eta}", xlabel="|c₁| = |first-order ΔH| / η (nats)",
               ylabel="|ΔH exact − ΔH predicted| / |ΔH exact|")
    ax_c2.set(title="Past 2 %: the first-order term small against the second", xlabel="|c₁| (nats)",
              ylabel="|c₂| ≈ |ΔH exact − ΔH predicted| / η² (nats)")
    return fig
