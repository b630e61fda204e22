"""Take nonlinearities out of a Qwen2 model: the setting of entropy-guided attention (Jha &
Reagen, "Entropy-Guided Attention for Private LLMs", AAAI'25 PPAI workshop).

Private inference (homomorphic encryption, secure multi-party computation) pays dearly for every
nonlinear operation, so Jha & Reagen study GPT-2 models with LayerNorm removed and the FFN's GELU
removed, leaving the attention softmax as the only nonlinearity. In the tiny Qwen2 the same two
changes are:

    remove_norms:  RMSNorm(x) = g ⊙ x / rms(x)   →   x          (before attention, MLP and lm_head)
    linear_mlp:    down(act(gate(x)) ⊙ up(x))    →   down(up(x)) (gate_proj is dropped)

The second is ours in detail: Qwen2's MLP is gated, and replacing only `act` by the identity would
leave the product gate(x) ⊙ up(x), a quadratic nonlinearity. Dropping the gate makes the FFN a
linear map, like GPT-2's FFN without GELU.
"""
from __future__ import annotations

from torch import nn


class LinearMLP(nn.Module):
    """y = W_down W_up x: a Qwen2 MLP without its gate and activation."""

    def __init__(self, up_proj: nn.Module, down_proj: nn.Module):
        super().__init__()
        self.up_proj, self.down_proj = up_proj, down_proj

    def forward(self, x):
        return self.down_proj(self.up_proj(x))


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")


def remove_norms(model: nn.Module) -> list[str]:
    """Replace every LayerNorm / RMSNorm of the model by nn.Identity (in place); returns their names."""
    names = [name for name, module in model.named_modules() if _is_norm(module)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no LayerNorm or RMSNorm to remove")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
    return names


def linear_mlp(model: nn.Module) -> int:
    """Replace each decoder layer's gated MLP by LinearMLP (in place); returns how many."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(hasattr(layer.mlp, "up_proj") for layer in layers):
        raise ValueError(f"{type(model).__name__} is not a Qwen2-style model with layer.mlp.up_proj/down_proj")
    for layer in layers:
        layer.mlp = LinearMLP(layer.mlp.up_proj, layer.mlp.down_proj)
    return len(layers)
