"""DeYO: "Entropy is not Enough for Test-Time Adaptation: From the Perspective of Disentangled
Factors" (Lee, Jung, Lee, Park, Kim, Lim, Lee, ICLR 2024; official code
github.com/Jhyun17/DeYO, `methods/deyo.py`).

A confident prediction can rest on the wrong evidence (background, texture, noise). DeYO asks how
much the confidence in the predicted class depends on the object's *shape*: destroy the shape by
shuffling the image's patches, and see how far the probability of that class falls.

    ŷ        = argmax_c p_θ(c|x)
    PLPD(x)  = p_θ(ŷ|x) − p_θ(ŷ|x'),   x' = x with its patches shuffled       (pseudo-label probability difference)
    keep x   iff  H(x) < τ_Ent = 0.5·ln C   and   PLPD(x) > τ_PLPD = 0.2
    α(x)     = 1/exp(H(x) − Ent_0) + 1/exp(−PLPD(x)),   Ent_0 = 0.4·ln C      (both detached)
    L        = mean_{kept} α(x)·H(x)

The weight favours samples that are confident (low H) and shape-driven (high PLPD). A sample whose
prediction survives the shuffle (PLPD ≤ 0.2) is predicted from something other than the digit's
shape (e.g. noise that the model reads as a class) and gets no gradient.

Options (official default first):
    lr, momentum      SGD, as for every method in a comparison.
    margin_fraction   0.5: τ_Ent = 0.5·ln C (`deyo_margin`).
    e0_fraction       0.4: Ent_0 = 0.4·ln C (`deyo_margin_e0`).
    plpd_threshold    0.2 (`plpd_threshold`).
    patches_per_side  4 (`patch_len`; in the code it is the number of patches per side, 4×4 = 16 patches
                      of 56 pixels on ImageNet). On an 8×8 digit it gives 2×2-pixel patches, which still
                      destroy a digit's shape; 2 (four 4×4 quadrants) keeps more of it. Our choice: 4.
    aug               "patch" (the default) or "pixel" (all 64 pixels shuffled, one permutation per batch,
                      as in the code's `aug_type=pixel`).
    filter_ent, filter_plpd, reweight_ent, reweight_plpd   all True (the code's flags, all 1).
    seed              0: seeds the adapter's own generator for the shuffles (ours).
"""
from __future__ import annotations

import math

import torch

from .adapter import TestTimeAdapter, softmax_entropy

AUGMENTATIONS = ("patch", "pixel")


def shuffle_patches(x: torch.Tensor, patches_per_side: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """x (B, C, H, W) cut into a patches_per_side × patches_per_side grid, the patches of each image
    put in a random order of its own; H and W must be multiples of patches_per_side."""
    b, c, h, w = x.shape
    k = patches_per_side
    if h % k or w % k:
        raise ValueError(f"patches_per_side={k} does not divide the {h}×{w} image; choose a divisor such as 2 or 4")
    ph, pw = h // k, w // k
    patches = x.reshape(b, c, k, ph, k, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, k * k, c, ph, pw)
    order = torch.rand(b, k * k, generator=generator).argsort(dim=1)           # (B, k²): each image's order
    patches = patches[torch.arange(b).unsqueeze(1), order]
    return patches.reshape(b, k, k, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def shuffle_pixels(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x (B, C, H, W) with its H·W pixels permuted, one permutation for the whole batch."""
    b, c, h, w = x.shape
    order = torch.randperm(h * w, generator=generator)
    return x.reshape(b, c, h * w)[:, :, order].reshape(b, c, h, w)


def plpd(probs: torch.Tensor, probs_shuffled: torch.Tensor) -> torch.Tensor:
    """PLPD = p(ŷ|x) − p(ŷ|x'), ŷ = argmax p(·|x); probs (B, C), probs_shuffled (B, C) -> (B,)."""
    y_hat = probs.argmax(dim=1, keepdim=True)                                   # (B, 1)
    return (probs.gather(1, y_hat) - probs_shuffled.gather(1, y_hat)).squeeze(1)


def deyo_weights(entropy: torch.Tensor, plpd_value: torch.Tensor, ent0: float,
                 reweight_ent: bool = True, reweight_plpd: bool = True) -> torch.Tensor:
    """α = 1/exp(H − Ent_0) + 1/exp(−PLPD), each term switched by its flag (both off: α = 1, no
    weighting, as in the code); (B,), (B,) -> (B,)."""
    if not (reweight_ent or reweight_plpd):
        return torch.ones_like(entropy)
    return reweight_ent * torch.exp(-(entropy - ent0)) + reweight_plpd * torch.exp(plpd_value)


class DeYO(TestTimeAdapter):
    """Entropy and PLPD filtering and weighting (see the module docstring)."""

    name = "deyo"

    def __init__(self, model, margin_fraction: float = 0.5, e0_fraction: float = 0.4, plpd_threshold: float = 0.2,
                 patches_per_side: int = 4, aug: str = "patch", filter_ent: bool = True, filter_plpd: bool = True,
                 reweight_ent: bool = True, reweight_plpd: bool = True, seed: int = 0, **options):
        super().__init__(model, **options)
        if aug not in AUGMENTATIONS:
            raise ValueError(f"unknown aug {aug!r}; choose one of: {', '.join(AUGMENTATIONS)}")
        self.margin_fraction, self.e0_fraction, self.plpd_threshold = margin_fraction, e0_fraction, plpd_threshold
        self.patches_per_side, self.aug = patches_per_side, aug
        self.filter_ent, self.filter_plpd = filter_ent, filter_plpd
        self.reweight_ent, self.reweight_plpd = reweight_ent, reweight_plpd
        self.generator = torch.Generator().manual_seed(seed)

    def destroy_shape(self, x: torch.Tensor) -> torch.Tensor:
        if self.aug == "patch":
            return shuffle_patches(x, self.patches_per_side, self.generator)
        return shuffle_pixels(x, self.generator)

    @torch.enable_grad()
    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)                                              # (B, C), the prediction
        log_c = math.log(logits.shape[-1])
        entropy = softmax_entropy(logits)                                   # (B,)
        keep = entropy.detach() < self.margin_fraction * log_c             # H < τ_Ent
        if not self.filter_ent:
            keep = torch.ones_like(keep)
        self.selected = 0.0
        if not keep.any():
            return logits.detach()
        with torch.no_grad():
            probs_shuffled = self.model(self.destroy_shape(x[keep])).softmax(dim=1)   # (|keep|, C)
        value = plpd(logits[keep].detach().softmax(dim=1), probs_shuffled)             # (|keep|,)
        entropy = entropy[keep]
        if self.filter_plpd:
            shape_driven = value > self.plpd_threshold                      # PLPD > τ_PLPD
            entropy, value = entropy[shape_driven], value[shape_driven]
        self.selected = len(entropy) / len(x)
        alpha = deyo_weights(entropy.detach(), value, self.e0_fraction * log_c, self.reweight_ent, self.reweight_plpd)
        if len(entropy):
            self.minimise((alpha * entropy).mean())                         # L = mean_kept α·H
        return logits.detach()
