"""The digits and the corruptions that shift them: scikit-learn's `load_digits` (1,797 handwritten
digits, 8×8 pixels, 10 classes; it ships inside scikit-learn, so nothing is downloaded) and five
image corruptions in the spirit of ImageNet-C / CIFAR-10-C, re-scaled by us for 8×8 images.

    split = load_digit_split()                          # x: (N, 1, 8, 8) in [0, 1], y: (N,)
    x_noisy = corrupt(split.x_test, "gaussian_noise", severity=5, generator=torch.Generator().manual_seed(0))

Severities run from 1 (mild) to 5 (strong). ImageNet-C's parameters are tuned for 224×224 photos;
a digit is 64 pixels whose strokes are 1-2 pixels wide, so the values in `SEVERITIES` are ours,
picked so that severity 5 costs the source model roughly a third to two thirds of its accuracy.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEVERITIES = {  # severity 1..5 -> the corruption's parameter (our choice for 8×8 digits, see above)
    "gaussian_noise": (0.1, 0.2, 0.3, 0.4, 0.5),      # σ of additive N(0, σ²) noise
    "shot_noise": (30.0, 12.0, 6.0, 3.0, 1.5),        # photons λ at full intensity: Poisson(λx)/λ
    "impulse_noise": (0.05, 0.1, 0.15, 0.2, 0.3),     # fraction of pixels set to 0 or 1 (salt and pepper)
    "gaussian_blur": (0.5, 0.7, 0.9, 1.1, 1.4),       # σ of the blur kernel in pixels
    "contrast": (0.85, 0.7, 0.6, 0.5, 0.45),           # c: x -> c·(x - mean) + mean, each image's mean
}
CORRUPTIONS = tuple(SEVERITIES)


class DigitSplit(NamedTuple):
    x_train: torch.Tensor  # (N_train, 1, 8, 8), pixel intensities in [0, 1]
    y_train: torch.Tensor  # (N_train,) class 0..9
    x_test: torch.Tensor   # (N_test, 1, 8, 8)
    y_test: torch.Tensor   # (N_test,)


def load_digit_split(test_fraction: float = 0.5, seed: int = 0) -> DigitSplit:
    """scikit-learn's digits, intensities divided by 16 (the data's maximum) into [0, 1], split
    stratified by class into a source training set and a test set that the corruptions shift."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0   # (1797, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.long)                           # (1797,)
    train, test = train_test_split(torch.arange(len(y)).numpy(), test_size=test_fraction,
                                   stratify=y.numpy(), random_state=seed)
    return DigitSplit(x[train], y[train], x[test], y[test])


def _gaussian_noise(x, sigma, g):
    return x + sigma * torch.randn(x.shape, generator=g)


def _shot_noise(x, photons, g):
    return torch.poisson(x * photons, generator=g) / photons


def _impulse_noise(x, amount, g):
    hit = torch.rand(x.shape, generator=g) < amount                          # which pixels are replaced
    salt = (torch.rand(x.shape, generator=g) < 0.5).float()                  # by 1 (salt) or 0 (pepper)
    return torch.where(hit, salt, x)


def _gaussian_blur(x, sigma, g):
    offsets = torch.arange(-2, 3, dtype=torch.float32)                         # a 5-tap kernel
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))    # blur rows
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))  # then columns


def _contrast(x, c, g):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)                                # each image's own mean
    return c * (x - mean) + mean


_CORRUPT = {"gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
            "gaussian_blur": _gaussian_blur, "contrast": _contrast}


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`x` (N, 1, 8, 8) in [0, 1] with corruption `name` at `severity` 1..5, clipped back to [0, 1].
    The random corruptions draw from `generator` (torch's global RNG when None)."""
    if name not in SEVERITIES:
        raise ValueError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if severity not in range(1, 6):
        raise ValueError(f"severity must be 1, 2, 3, 4 or 5, got {severity!r}")
    return _CORRUPT[name](x, SEVERITIES[name][severity - 1], generator).clamp(0.0, 1.0)
