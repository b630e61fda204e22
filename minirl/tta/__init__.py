"""Test-time adaptation (TTA): entropy minimisation on unlabelled test data, the way it collapses,
and three ways to keep it from collapsing, on a small digit classifier (notebook 06).

    from minirl.tta import get_tta_method
    adapter = get_tta_method("sar")(source_model, lr=0.01)      # a TestTimeAdapter
    logits = adapter(x_batch)                                    # predict, then adapt on the batch

Every method is registered here by name, in `TTA_METHODS`:

    source   no adaptation (the reference)
    tent     entropy minimisation on every sample (Wang et al. 2021): the baseline that collapses
    sar      reliable-sample filter + sharpness-aware step + reset to the source (Niu et al. 2023)
    deyo     entropy + shape-dependence (PLPD) filter and weighting (Lee et al. 2024)
    ostta    keep the samples whose confidence did not drop: the open-set "wisdom of crowds" filter
             (Lee et al. 2023)

`minirl.tta.evaluate.evaluate` runs one method on one test condition and returns its accuracy, its
final prediction entropy and the share of predictions in the most frequent class;
`minirl.tta.verdicts` turns those into the notebook's verdicts (collapsed or not, better or worse than
the unadapted model beyond the seed spread).
"""
from __future__ import annotations

from .adapter import Source, TestTimeAdapter, softmax_entropy
from .deyo import DeYO
from .ostta import OSTTA
from .sar import SAR
from .tent import Tent

TTA_METHODS: dict[str, type[TestTimeAdapter]] = {cls.name: cls for cls in (Source, Tent, SAR, DeYO, OSTTA)}


def get_tta_method(name: str) -> type[TestTimeAdapter]:
    """The adapter class registered as `name`; build it with `cls(source_model, **options)`."""
    if name not in TTA_METHODS:
        raise ValueError(f"unknown test-time method {name!r}; choose one of: {', '.join(TTA_METHODS)}")
    return TTA_METHODS[name]


__all__ = ["TTA_METHODS", "get_tta_method", "TestTimeAdapter", "softmax_entropy"]
