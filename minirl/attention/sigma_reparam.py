"""σReparam: every linear weight divided by its spectral norm and scaled by a learned scalar
(Zhai et al., "Stabilizing Transformer Training by Preventing Attention Entropy Collapse",
ICML 2023; official code github.com/apple/ml-sigma-reparam, `vision/layers.py`).

    Ŵ = (γ / σ(W)) · W                          σ(W) = ‖W‖₂, the largest singular value

so that ‖Ŵ‖₂ = γ whatever W does. An attention logit is q_i·k_j/√d with q = Ŵ_q x, k = Ŵ_k x,
so the logits are bounded by γ_q γ_k ‖x_i‖‖x_j‖/√d (see `bound.py`): Adam can no longer blow the
logits up by growing W_q and W_k along one direction, only by growing two scalars one step at a
time.

σ(W) comes from one step of power iteration per training forward pass, with persistent unit
vectors (u right, v left singular vector estimates; the first u from an SVD at wrapping time):

    v ← normalise(W u)        u ← normalise(Wᵀ v)        (no gradient through u, v)
    σ(W) = vᵀ W u                                       (gradient flows through W)

In eval mode the same step runs but u is not stored, as in the official code.

Choices (the official repository's two code bases, PyTorch vision and JAX speech, differ; defaults
follow the vision code):
    gamma_init "sigma" — γ = σ(W) at wrapping time, so Ŵ = W and the model computes exactly what it
               did before (vision code); "one" — γ = 1 (JAX speech code, with its own init std 0.1).
    reinit_std None — keep the model's own initialisation (ours: the tiny Qwen2 is built with std
               0.02, the vision code's truncated-normal std 0.02·init_multiplier); a number re-draws
               W from a truncated normal with that std first.
    stats_only False — True tracks σ(W) but leaves the forward pass untouched (official flag).
    skip ("lm_head",) — ours: the tiny Qwen2 ties lm_head to the embedding matrix, which is not a
               linear layer of the blocks. The official `convert_to_sn` converts every nn.Linear of
               its network (a timm ViT built without a classifier head, `vision/vit.py`).
q_proj, k_proj and v_proj are separate matrices in Qwen2 and each gets its own σ and γ; timm's ViT
uses one fused qkv matrix, so there q, k and v share one σ and one γ. The official ViT example also
removes every normalisation layer; here the norms stay (reduced_nonlinearity.remove_norms removes them).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

GAMMA_INITS = ("sigma", "one")


class SigmaReparamLinear(nn.Module):
    """A linear layer y = Ŵ x + b with Ŵ = (γ / σ(W)) · W (Zhai et al., 2023)."""

    def __init__(self, linear: nn.Linear, gamma_init: str = "sigma", stats_only: bool = False,
                 reinit_std: float | None = None):
        super().__init__()
        if gamma_init not in GAMMA_INITS:
            raise ValueError(f"unknown gamma_init {gamma_init!r}; choose one of: {', '.join(GAMMA_INITS)}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight                                     # W (out, in), the same Parameter
        self.bias = linear.bias
        self.stats_only = stats_only
        if reinit_std is not None:
            nn.init.trunc_normal_(self.weight, std=reinit_std, a=-2 * reinit_std, b=2 * reinit_std)
        with torch.no_grad():
            _, s, vh = torch.linalg.svd(self.weight.float(), full_matrices=False)
        self.register_buffer("u", vh[0].clone())                        # (in,) top right singular vector
        self.register_buffer("sigma", s[:1].clone())                    # (1,) latest σ(W), for logging
        gamma = s[:1].clone() if gamma_init == "sigma" else torch.ones(1)
        self.gamma = nn.Parameter(gamma.to(self.weight.dtype), requires_grad=not stats_only)  # γ (1,)

    def spectral_norm(self) -> torch.Tensor:
        """σ(W) = vᵀ W u after one power-iteration step from the stored u (stored back in training)."""
        W = self.weight.float()                                         # σ in fp32, as the official code
        with torch.no_grad():
            v = F.normalize(W @ self.u, dim=0)                          # (out,)  v ← normalise(W u)
            u = F.normalize(W.T @ v, dim=0)                             # (in,)   u ← normalise(Wᵀ v)
            if self.training:
                self.u.copy_(u)
        sigma = v @ W @ u                                               # σ(W) = vᵀ W u, with grad in W
        if self.training:
            self.sigma.copy_(sigma.detach())
        return sigma

    def effective_weight(self) -> torch.Tensor:
        """Ŵ = (γ / σ(W)) · W, or W itself when stats_only."""
        sigma = self.spectral_norm()
        if self.stats_only:
            return self.weight
        return (self.gamma / sigma).to(self.weight.dtype) * self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, gamma={self.gamma.item():.4g}, stats_only={self.stats_only}")


def apply_sigma_reparam(model: nn.Module, gamma_init: str = "sigma", stats_only: bool = False,
                        reinit_std: float | None = None, skip: tuple[str, ...] = ("lm_head",)) -> list[str]:
    """Replace every nn.Linear of `model` (in place) by a SigmaReparamLinear sharing its weight and
    bias; modules whose name ends with a name in `skip` stay as they are. Returns the replaced names.
    Build the optimiser after this call: it adds one parameter γ per layer."""
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and not any(name.split(".")[-1] == s for s in skip)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Linear to reparametrise outside skip={skip}")
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SigmaReparamLinear(linear, gamma_init, stats_only, reinit_std))
    return [name for name, _ in targets]


def effective_spectral_norms(model: nn.Module) -> dict[str, float]:
    """γ of every σReparam layer (its ‖Ŵ‖₂; the official `effective_spectral_norm`), by module name."""
    return {name: module.gamma.item() for name, module in model.named_modules()
            if isinstance(module, SigmaReparamLinear)}
