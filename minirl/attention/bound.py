"""The lower bound of attention entropy in terms of the spectral norm of the attention logits
(Zhai et al., "Stabilizing Transformer Training by Preventing Attention Entropy Collapse", ICML 2023,
Thm 3.1), in the form derived and checked here.

Step 1, softmax. If the n logits z_1..z_n of one query lie in an interval of width Δ, then
p_j ≤ e^Δ p_k for all j, k: a polytope of distributions. Entropy is concave, so its minimum over
the polytope is at a vertex, and at a vertex every p_j sits at one of two levels: k logits at the top
of the interval and n − k at the bottom. So (ours, in this form)

    Ent ≥ b(Δ, n) = min_{1≤k≤n−1} H_k,   H_k = log Z_k + Δ·(n − k)·e^{−Δ} / Z_k,   Z_k = k + (n − k)·e^{−Δ}

the entropy of the k-top vertex. b(0, n) = log n (uniform), b(Δ, 1) = 0, and b is tight: the minimising
vertex attains it. For a small spread the minimiser is k ≈ n/2 (Ent ≈ log n − Var(z)/2, and a half-half
split has the largest variance); once Δ is a few nats it is k = 1, one key on top, and then

    b = log(1 + E) + Δ·E/(1 + E),   E = (n − 1)·e^{−Δ}     ≈ (n − 1)(1 + Δ)·e^{−Δ}   for large Δ:

the entropy may fall exponentially fast in the spread, which is the paper's message. (The tests
check b against every vertex and against random logits.)

Step 2, spectral norm. With logits z_ij = x_iᵀ W_qᵀ W_k x_j · s (s = 1/√d, no rotary embedding) and
σ = ‖W_qᵀ W_k‖₂ · s, |z_ij| ≤ σ‖x_i‖‖x_j‖, so row i has Δ_i ≤ 2σ‖x_i‖ max_{j≤i}‖x_j‖ ≤ 2σ‖X‖₂².
The paper states the bound for the whole map with σ and ‖X‖₂; we use the per-row Δ_i, which is
tighter and needs no more than the same two facts. The paper's constants and the exact
statement of its Thm 3.1 were not checked against its PDF.

Step 3, Qwen2 (ours). Qwen2 rotates q and k by position (RoPE) between W_q and W_k, and q_proj and
k_proj have biases, so W_qᵀ W_k is not the logit matrix. Write q = W̃_q x̃ with W̃_q = [W_q | b_q],
x̃ = [x; 1]; rotations keep norms, so |z_ij| ≤ ‖W̃_q^h‖₂ ‖W̃_k^h‖₂ ‖x̃_i‖‖x̃_j‖ · s and the same bound
holds with σ_h = ‖W̃_q^h‖₂ ‖W̃_k^h‖₂ · s for head h. Under σReparam (without biases) σ_h = γ_q γ_k · s
for the whole layer (at most, per head): the scalars σReparam learns slowly are what bounds the entropy.
"""
from __future__ import annotations

import torch

from .entropy import eager_attention, keys_attended, row_entropy
from .sigma_reparam import SigmaReparamLinear


def min_entropy_given_spread(spread, n_keys) -> torch.Tensor:
    """b(Δ, n): the least entropy (nats) of a softmax over n keys whose logits span at most Δ
    (broadcasts over tensors of Δ and n)."""
    spread = torch.as_tensor(spread, dtype=torch.float64)
    n = torch.as_tensor(n_keys, dtype=torch.float64)
    spread, n = torch.broadcast_tensors(spread, n)
    K = max(int(n.max().item()) - 1, 1) if n.numel() else 1
    k = torch.arange(1, K + 1, dtype=torch.float64)                                  # (K,) keys on top
    d, m = spread[..., None], n[..., None]                                           # (..., 1)
    Z = k + (m - k) * torch.exp(-d)                                                  # Z_k = k + (n − k) e^{−Δ}
    H = torch.log(Z) + d * (m - k) * torch.exp(-d) / Z                               # H_k (..., K)
    H = H.masked_fill(k > m - 1, float("inf"))                                       # only 1 ≤ k ≤ n − 1
    return torch.where(n > 1, H.min(dim=-1).values, torch.zeros_like(spread))


def bilinear_logit_norm(W_q: torch.Tensor, W_k: torch.Tensor, scale: float) -> torch.Tensor:
    """σ = ‖W_qᵀ W_k‖₂ · s for logits z_ij = (W_q x_i)·(W_k x_j) · s; W_q, W_k are (d_head, d)."""
    return torch.linalg.matrix_norm(W_q.T.double() @ W_k.double(), ord=2) * scale


def row_spread_bound(x: torch.Tensor, sigma: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """Δ_i = 2σ‖x_i‖ max_{j ≤ i} ‖x_j‖ under the causal mask, for inputs x (B, T, d) → (B, T)
    (σ a number, or (H,) per head → (B, H, T)). Padding positions (mask 0) are never keys."""
    norms = x.double().norm(dim=-1)                                                  # (B, T)
    if attention_mask is not None:
        norms = norms * attention_mask.double()
    running_max = torch.cummax(norms, dim=-1).values                                 # (B, T)
    reach = 2 * norms * running_max                                                  # (B, T)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    return reach * sigma if sigma.ndim == 0 else sigma[None, :, None] * reach[:, None, :]


def _weight_and_bias(linear) -> torch.Tensor:
    """W̃ = [W | b] (out, in + 1), the weight the forward pass uses (σReparam: Ŵ, in eval mode)."""
    if isinstance(linear, SigmaReparamLinear):
        was_training = linear.training
        linear.eval()                                  # read Ŵ without a power-iteration step of its own
        W = linear.effective_weight()
        linear.train(was_training)
    else:
        W = linear.weight
    b = linear.bias if linear.bias is not None else torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
    return torch.cat([W, b[:, None]], dim=1).double()


@torch.no_grad()
def qwen2_head_logit_norms(attn) -> torch.Tensor:
    """σ_h = ‖W̃_q^h‖₂ ‖W̃_k^h‖₂ / √d_head for every query head h of a Qwen2Attention → (H,)."""
    d = attn.head_dim
    Wq = _weight_and_bias(attn.q_proj).reshape(-1, d, attn.q_proj.in_features + 1)  # (H, d, D+1)
    Wk = _weight_and_bias(attn.k_proj).reshape(-1, d, attn.k_proj.in_features + 1)  # (H_kv, d, D+1)
    Wk = Wk.repeat_interleave(attn.num_key_value_groups, dim=0)                      # (H, d, D+1)
    return torch.linalg.matrix_norm(Wq, ord=2) * torch.linalg.matrix_norm(Wk, ord=2) * attn.scaling


@torch.no_grad()
def qwen2_entropy_and_bound(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """Actual row entropies and their lower bounds for every layer of a Qwen2 model → two tensors
    (L, B, H, T) in nats, with NaN on padding queries. Runs in eval mode (σReparam then uses the
    same Ŵ in the forward pass as in the bound)."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    was_training = model.training
    model.eval()
    layers = model.model.layers
    inputs, hooks = {}, []
    for i, layer in enumerate(layers):          # x_i: the (normalised) hidden states entering q_proj
        hooks.append(layer.self_attn.q_proj.register_forward_pre_hook(
            lambda module, args, i=i: inputs.__setitem__(i, args[0].detach())))
    try:
        with eager_attention(model):
            maps = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True).attentions
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    n = keys_attended(attention_mask)                                                # (B, T)
    pad = (n == 0)[:, None, :]                                                       # (B, 1, T)
    actual, bound = [], []
    for i, layer in enumerate(layers):
        x = inputs[i]
        x_tilde = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)                # x̃ = [x; 1] (B, T, D+1)
        sigma = qwen2_head_logit_norms(layer.self_attn)                              # (H,)
        spread = row_spread_bound(x_tilde, sigma, attention_mask)                    # Δ_i (B, H, T)
        b = min_entropy_given_spread(spread, n[:, None, :])                          # (B, H, T)
        ent = row_entropy(maps[i].double())                                          # (B, H, T)
        actual.append(ent.masked_fill(pad, float("nan")))
        bound.append(b.masked_fill(pad, float("nan")))
    return torch.stack(actual), torch.stack(bound)
