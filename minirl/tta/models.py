"""The source model: a small conv net for 8×8 digits, with one normalisation layer after each
convolution, and its supervised training on the clean digits.

    conv3×3(1→w) → norm → ReLU → conv3×3(w→2w) → norm → ReLU → max-pool 2 → conv3×3(2w→2w) → norm → ReLU
    → mean over the 4×4 positions → linear(2w→10)

`norm` picks the normalisation, the choice that decides how test-time entropy minimisation
behaves (Niu et al. 2023, §4):

* `"gn"`: GroupNorm with 4 groups: statistics of one image, independent of the batch.
* `"ln"`: GroupNorm with 1 group, i.e. LayerNorm over (channels, height, width) of one image.
* `"bn"`: BatchNorm: statistics of the whole batch. Test-time methods normalise with the test
  batch's own statistics (as Tent does), which are poor estimates for a batch of one image, or
  for a batch that holds one class (label shift) or several shifts at once (mixed).

Test-time methods adapt only the norm layers' affine parameters γ, β (`norm_affine_parameters`).
"""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("gn", "ln", "bn")
NORM_LAYERS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "gn":
        return nn.GroupNorm(4, channels)
    if kind == "ln":
        return nn.GroupNorm(1, channels)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of: {', '.join(NORMS)}")


class DigitNet(nn.Module):
    """Three 3×3 convolutions with normalisation, global average pooling and a linear classifier."""

    def __init__(self, norm: str = "gn", width: int = 16, num_classes: int = 10):
        super().__init__()
        w = width
        self.norm_kind = norm
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), _norm(norm, w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), _norm(norm, 2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), _norm(norm, 2 * w), nn.ReLU())
        self.head = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, 1, 8, 8) -> logits (B, C)
        return self.head(self.features(x).mean(dim=(2, 3)))


def norm_affine_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The scale γ and shift β of every norm layer: the only parameters Tent, SAR, DeYO and the
    open-set filter change (SAR's code also skips the top blocks of a ResNet or ViT; this net has
    three norm layers and we adapt all of them)."""
    return [p for m in model.modules() if isinstance(m, NORM_LAYERS) for p in (m.weight, m.bias) if p is not None]


def train_source_model(x: torch.Tensor, y: torch.Tensor, norm: str = "gn", epochs: int = 30,
                       batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> DigitNet:
    """Cross-entropy training on clean digits with Adam; returns the model in eval mode.
    x (N, 1, 8, 8), y (N,). `seed` fixes the initialisation and the batch order."""
    torch.manual_seed(seed)
    model = DigitNet(norm)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(batch_size):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()
