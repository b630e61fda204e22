"""The ROC figure of notebook 07 keeps its title, axis labels and legend inside the image, however long the
title the notebook gives it (an earlier version cut the title off at the figure's edge)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from minirl.contamination import auc, roc_curve  # noqa: E402
from minirl.search.figures import roc_figure  # noqa: E402


def test_roc_figure_text_stays_inside_the_figure():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(32), np.zeros(32)].astype(int)
    curves = {}
    for name in ("Self-Critique S", "perplexity (−PPL)", "mean entropy (−ē, ours)"):
        scores = rng.normal(size=64) + 0.8 * labels
        curves[name] = (*roc_curve(scores, labels), auc(scores, labels))
    title = "Trained-on vs held-out prompts after 40 GRPO steps on 64 prompts of countdown_steps (seed 0, gpu profile)"
    fig = roc_figure(curves, title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    ax = fig.axes[0]
    for artist in (ax.title, ax.xaxis.label, ax.yaxis.label, ax.get_legend()):
        box = artist.get_window_extent(renderer)
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, \
            f"{artist} reaches outside the figure: {box} not within {frame}"
    assert "\n" in ax.get_title()                          # the long title was wrapped, not cut
