"""Attention entropy (σReparam, Zhai et al., ICML 2023; entropy-guided attention, Jha & Reagen, 2025):
the diagnostic on hand-made maps and on a tiny Qwen2, σReparam's power iteration and reparametrised
layer, the entropy-guided regulariser on a hand-set map, the entropy lower bound, the synthetic
language and the training loop."""
import math

import pytest
import torch

from minirl.attention import ATTENTION_METHODS, get_attention_method, prepare_attention_method
from minirl.attention.bound import (bilinear_logit_norm, min_entropy_given_spread, qwen2_entropy_and_bound,
                                    row_spread_bound)
from minirl.attention.entropy import attention_entropy, head_entropy, keys_attended, row_entropy
from minirl.attention.entropy_guided import EntropyGuidedRegulariser
from minirl.attention.reduced_nonlinearity import LinearMLP, linear_mlp, remove_norms
from minirl.attention.sigma_reparam import SigmaReparamLinear, apply_sigma_reparam
from minirl.attention.synthetic_lm import loss_floor, make_token_batches, sample_text
from minirl.attention.train_lm import LMTrainConfig, train_lm
from minirl.attention.verdicts import (count_states, layer_states, mean_entropy, uniform_entropy, unigram_entropy,
                                      versus)
from minirl.models import TinySize, build_tiny_model, build_tokenizer

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)
TINY = TinySize(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=2)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def causal_uniform(T, mask=None):
    """(1, 1, T, T): query i spreads evenly over its real keys j ≤ i."""
    mask = torch.ones(T) if mask is None else mask.float()
    A = torch.tril(torch.ones(T, T)) * mask[None, :]
    return (A / A.sum(-1, keepdim=True).clamp(min=1))[None, None]


# --- the diagnostic --------------------------------------------------------------------------------

def test_row_entropy_uniform_is_log_n_and_one_hot_is_zero():
    A = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    assert row_entropy(A).tolist() == pytest.approx([LN4, 0.0, LN2])


def test_head_entropy_counts_the_causal_mask():
    # rows see 1, 2, 3, 4 keys: entropies 0, ln2, ln3, ln4 -> mean ln(24)/4; normalised: rows 2-4 are 1
    uniform, one_hot = causal_uniform(4), torch.eye(4)[None, None]
    attn = torch.cat([uniform, one_hot], dim=1)                                      # (1, 2, 4, 4)
    assert head_entropy([attn]).tolist() == [pytest.approx([math.log(24) / 4, 0.0])]
    assert head_entropy([attn], normalise=True).tolist() == [pytest.approx([1.0, 0.0])]


def test_head_entropy_with_left_padding_counts_only_real_keys():
    mask = torch.tensor([[0, 1, 1, 1]])                                              # n = 0, 1, 2, 3
    assert keys_attended(mask).tolist() == [[0, 1, 2, 3]]
    attn = causal_uniform(4, mask[0])
    assert head_entropy([attn], mask).item() == pytest.approx((0 + LN2 + LN3) / 3)   # the pad query is skipped
    assert head_entropy([attn], mask, normalise=True).item() == pytest.approx(1.0)


def _zero_query_key(model):
    """q = k = 0 in every layer: every attention logit is 0, each query spreads evenly over its keys."""
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.zero_()
                proj.bias.zero_()


def test_attention_entropy_of_a_qwen2_with_zero_query_key_weights(tokenizer):
    # q = k = 0 -> every logit 0 -> each query spreads evenly over its real keys, in every layer and head
    model = build_tiny_model(TINY, tokenizer, seed=0)
    _zero_query_key(model)
    ids = torch.tensor([[5, 6, 7, 8], [0, 0, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    before = model.config._attn_implementation
    H = attention_entropy(model, ids, mask)                                          # (L, heads)
    expected = (0 + LN2 + LN3 + LN4 + 0 + LN2) / 6                                   # 4 + 2 real queries
    assert H.shape == (2, 4) and torch.allclose(H, torch.full((2, 4), expected), atol=1e-5)
    assert torch.allclose(attention_entropy(model, ids, mask, normalise=True), torch.ones(2, 4), atol=1e-5)
    assert model.config._attn_implementation == before                              # switched back after


def test_entropy_gradient_is_finite_under_the_causal_mask():
    # masked keys have A = 0, where d(A log A)/dA = log A + 1 = −∞; the regulariser trains through this
    z = torch.randn(1, 2, 4, 4).masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf"))
    z.requires_grad_(True)
    head_entropy([torch.softmax(z, dim=-1)]).sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_head_entropy_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\); the maps need \(1, 4\)"):
        head_entropy([causal_uniform(4)], torch.ones(1, 3))


# --- σReparam --------------------------------------------------------------------------------------

def test_power_iteration_converges_to_the_spectral_norm():
    torch.manual_seed(0)
    layer = SigmaReparamLinear(torch.nn.Linear(5, 7))
    W = layer.weight.detach()
    assert layer.sigma.item() == pytest.approx(torch.linalg.matrix_norm(W, 2).item(), rel=1e-5)  # SVD at wrap
    layer.u.copy_(torch.nn.functional.normalize(torch.randn(5), dim=0))             # forget it
    first = layer.spectral_norm().item()
    for _ in range(200):                                                            # one step per forward
        layer(torch.randn(3, 5))
    assert first < 0.999 * torch.linalg.matrix_norm(W, 2).item()                   # it did start off
    assert layer.sigma.item() == pytest.approx(torch.linalg.matrix_norm(W, 2).item(), rel=1e-4)


def test_reparametrised_layer_computes_gamma_over_sigma_times_w_x():
    # W = diag(3, 1): σ = 3. γ = 6 -> Ŵ = 2W = diag(6, 2); x = (1, 1), b = (0.5, −0.5) -> (6.5, 1.5)
    linear = torch.nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.diag(torch.tensor([3.0, 1.0])))
        linear.bias.copy_(torch.tensor([0.5, -0.5]))
    layer = SigmaReparamLinear(linear)
    assert layer.gamma.item() == pytest.approx(3.0)                                # γ = σ(W_init): Ŵ = W
    assert layer(torch.ones(1, 2)).tolist() == [pytest.approx([3.5, 0.5])]
    with torch.no_grad():
        layer.gamma.fill_(6.0)
    assert layer(torch.ones(1, 2)).tolist() == [pytest.approx([6.5, 1.5])]
    with torch.no_grad():
        layer.weight.mul_(10.0)                                                      # σ follows W: no change
    assert layer(torch.ones(1, 2)).tolist() == [pytest.approx([6.5, 1.5])]
    assert SigmaReparamLinear(linear, gamma_init="one").gamma.item() == 1.0


def test_gradient_reaches_the_weight_through_sigma():
    # W = diag(3, 1), γ = σ = 3, x = e2: y2 = γ W22 / σ. σ = vᵀWu with u = v = e1, so ∂σ/∂W = e1 e1ᵀ:
    # ∂y2/∂W11 = −γ W22 / σ² = −3/9 = −1/3,  ∂y2/∂W22 = γ/σ = 1,  the others 0;  ∂y2/∂γ = W22/σ = 1/3
    linear = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.diag(torch.tensor([3.0, 1.0])))
    layer = SigmaReparamLinear(linear)
    layer(torch.tensor([[0.0, 1.0]]))[0, 1].backward()
    assert layer.weight.grad.tolist() == [pytest.approx([-1 / 3, 0.0]), pytest.approx([0.0, 1.0])]
    assert layer.gamma.grad.item() == pytest.approx(1 / 3)                         # ∂y2/∂γ = W22/σ


def test_apply_sigma_reparam_to_qwen2_keeps_its_outputs_at_init(tokenizer):
    model = build_tiny_model(TINY, tokenizer, seed=0)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    before = model(ids).logits
    names = prepare_attention_method("sigma_reparam", model)
    assert names is None                                                            # no loss term
    wrapped = [n for n, m in model.named_modules() if isinstance(m, SigmaReparamLinear)]
    assert len(wrapped) == 2 * 7 and not any(n.endswith("lm_head") for n in wrapped)
    assert torch.allclose(model(ids).logits, before, atol=1e-4)                    # γ = σ(W): Ŵ = W
    with pytest.raises(ValueError, match="unknown gamma_init 'sig'; choose one of: sigma, one"):
        apply_sigma_reparam(build_tiny_model(TINY, tokenizer), gamma_init="sig")


# --- entropy-guided attention ----------------------------------------------------------------------

# One head, T = 2 (E_max = ln 2, tol = 0.2 ln 2). Query 0 attends to key 0 (Ent 0), query 1 spreads
# evenly over 2 keys (Ent ln 2).
MAP = torch.tensor([[1.0, 0.0], [0.5, 0.5]])[None, None]                           # (1, 1, 2, 2)


@pytest.mark.parametrize("theta, expected", [
    (0.5, 0.25 + 0.25),        # dev = −0.5 ln2, +0.5 ln2: both beyond tol
    (0.9, 0.81),               # dev = −0.9 ln2 (beyond), +0.1 ln2 (inside the band: no penalty)
    (0.4, 0.16 + 0.36),        # dev = −0.4 ln2, +0.6 ln2
])
def test_regulariser_value_on_a_hand_set_map(theta, expected):
    reg = EntropyGuidedRegulariser(1, 1, loss_coeff=1.0, threshold_init=theta)
    loss, metrics = reg([MAP])
    assert loss.item() == pytest.approx(expected * LN2 ** 2)
    assert metrics["ent_reg_outside_frac"] == pytest.approx(1.0 if theta != 0.9 else 0.5)


def test_regulariser_gradient_moves_the_threshold_towards_the_entropies():
    # L = (θ ln2)² + ((1 − θ) ln2)²: dL/dθ = 2 ln²2 (2θ − 1) = −0.4 ln²2 at θ = 0.4
    reg = EntropyGuidedRegulariser(1, 1, loss_coeff=1.0, threshold_init=0.4)
    reg([MAP])[0].backward()
    assert reg.theta.grad.item() == pytest.approx(-0.4 * LN2 ** 2)


def test_regulariser_averages_layers_and_heads_and_causal_mode_spares_the_first_query():
    two = EntropyGuidedRegulariser(2, 2, loss_coeff=1.0, threshold_init=0.5, thresholds="layer_head")
    maps = [MAP.expand(1, 2, 2, 2)] * 2
    assert two(maps)[0].item() == pytest.approx(0.5 * LN2 ** 2)                     # same as one head, one layer
    causal = EntropyGuidedRegulariser(1, 1, loss_coeff=1.0, threshold_init=0.5, max_entropy="causal")
    assert causal([MAP])[0].item() == pytest.approx(0.25 * LN2 ** 2)                # E_max(q0) = ln 1 = 0
    with pytest.raises(ValueError, match="unknown max_entropy 'query'; choose one of: context, causal"):
        EntropyGuidedRegulariser(1, 1, max_entropy="query")
    with pytest.raises(ValueError, match="built for 1 layers × 1 heads"):
        causal(maps)


# --- the entropy lower bound -----------------------------------------------------------------------

def vertex_entropies(spread, n):
    """Entropy of every two-level softmax: k logits at Δ, n − k at 0, for k = 1 .. n − 1."""
    z = torch.zeros(n - 1, n, dtype=torch.float64)
    for k in range(1, n):
        z[k - 1, :k] = spread
    return row_entropy(torch.softmax(z, -1))


def test_min_entropy_given_spread_at_its_ends_and_at_the_vertices():
    assert min_entropy_given_spread(0.0, 5).item() == pytest.approx(math.log(5))   # uniform
    assert min_entropy_given_spread(3.0, 1).item() == 0.0                           # one key
    # large spread: one key on top, b = log(1 + E) + ΔE/(1 + E) with E = 7 e^{-6} = 0.017352
    E = 7 * math.exp(-6.0)
    assert min_entropy_given_spread(6.0, 8).item() == pytest.approx(math.log1p(E) + 6.0 * E / (1 + E))
    for spread, n in [(0.3, 5), (0.5, 3), (2.0, 8), (6.0, 40)]:                     # tight: the best vertex
        H = vertex_entropies(spread, n)
        assert min_entropy_given_spread(spread, n).item() == pytest.approx(H.min().item(), rel=1e-12)
    assert vertex_entropies(0.3, 5).argmin().item() + 1 == 2                        # small Δ: k ≈ n/2 on top
    assert vertex_entropies(6.0, 40).argmin().item() + 1 == 1                       # large Δ: one on top


def test_no_softmax_goes_below_the_bound():
    g = torch.Generator().manual_seed(0)
    for n in (2, 5, 17):
        for spread in (0.3, 2.0, 8.0):
            z = torch.rand(2000, n, generator=g, dtype=torch.float64) * spread      # spreads ≤ Δ
            H = row_entropy(torch.softmax(z, -1))
            assert (H >= min_entropy_given_spread(spread, n) - 1e-12).all()


def test_bilinear_attention_entropy_stays_above_the_spectral_norm_bound():
    g = torch.Generator().manual_seed(1)
    T, d, dh = 12, 8, 4
    for scale in (0.3, 1.0, 3.0):
        X = torch.randn(T, d, generator=g, dtype=torch.float64)
        Wq, Wk = (torch.randn(dh, d, generator=g, dtype=torch.float64) * scale for _ in range(2))
        z = (X @ Wq.T) @ (X @ Wk.T).T / math.sqrt(dh)                               # (T, T)
        z = z.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        actual = row_entropy(torch.softmax(z, -1))                                   # (T,)
        sigma = bilinear_logit_norm(Wq, Wk, 1 / math.sqrt(dh))
        n = torch.arange(1, T + 1)
        per_row = min_entropy_given_spread(row_spread_bound(X[None], sigma)[0], n)
        paper_form = min_entropy_given_spread(2 * sigma * torch.linalg.matrix_norm(X, 2) ** 2, n)
        assert (actual >= per_row - 1e-12).all() and (per_row >= paper_form - 1e-12).all()


def test_qwen2_entropy_is_at_least_the_bound_and_equals_it_when_q_and_k_vanish(tokenizer):
    ids = torch.tensor([[5, 9, 7, 8, 30, 12, 40], [0, 0, 7, 8, 30, 12, 41]])
    mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1]])
    for method in ("none", "sigma_reparam"):
        model = build_tiny_model(TINY, tokenizer, seed=2)
        with torch.no_grad():                                                       # sharpen the attention
            for layer in model.model.layers:
                layer.self_attn.q_proj.weight.mul_(5.0)
        prepare_attention_method(method, model)
        actual, bound = qwen2_entropy_and_bound(model, ids, mask)                   # (L, B, H, T)
        real = ~actual.isnan()
        assert (actual[real] >= bound[real] - 1e-6).all() and bound[real].max() > 1.0   # not vacuous
    model = build_tiny_model(TINY, tokenizer, seed=2)
    _zero_query_key(model)
    actual, bound = qwen2_entropy_and_bound(model, ids, mask)                       # σ_h = 0: bound = log n
    real = ~actual.isnan()
    assert torch.allclose(actual[real], bound[real], atol=1e-6)


# --- registry, language, reduced model, training loop ----------------------------------------------

def test_unknown_attention_method_names_the_choices():
    assert set(ATTENTION_METHODS) == {"none", "sigma_reparam", "entropy_guided_attention"}
    with pytest.raises(ValueError, match="unknown attention method 'sigma'; choose one of: none, sigma_reparam, "
                                         "entropy_guided_attention"):
        get_attention_method("sigma")


def test_synthetic_language_and_its_loss_floor(tokenizer):
    copy, = sample_text("copy", 1, seq_len=30, length=3, letters=4, seed=0)        # 30 // 8 = 3 examples
    rev, = sample_text("reverse", 1, seq_len=30, length=3, letters=4, seed=0)
    assert len(copy) == 24 and all(set(copy[8 * i:8 * i + 3]) <= set("abcd") for i in range(3))
    for i in range(3):
        word = copy[8 * i:8 * i + 3]
        assert copy[8 * i + 3:8 * i + 8] == f">{word}." and rev[8 * i:8 * i + 8] == f"{word}<{word[::-1]}."
    assert loss_floor(30, length=3, letters=4) == pytest.approx((9 - 1) * math.log(4) / 23)
    assert make_token_batches(tokenizer, "copy", 5, 30, length=3, letters=4).shape == (5, 24)
    with pytest.raises(ValueError, match="unknown language 'mirror'; choose one of: copy, reverse"):
        sample_text("mirror", 1, 30)


def test_reduced_nonlinearity_model_has_no_norms_and_a_linear_mlp(tokenizer):
    model = build_tiny_model(TINY, tokenizer)
    assert len(remove_norms(model)) == 2 * 2 + 1 and linear_mlp(model) == 2
    assert not any(type(m).__name__.endswith("RMSNorm") for m in model.modules())
    mlp = model.model.layers[0].mlp
    x, y = torch.randn(3, 32), torch.randn(3, 32)
    assert isinstance(mlp, LinearMLP) and torch.allclose(mlp(2 * x - y), 2 * mlp(x) - mlp(y), atol=1e-5)


def test_training_lowers_the_loss_and_stops_on_divergence(tokenizer):
    data = make_token_batches(tokenizer, "copy", 64, 28, length=3, letters=4)
    model = build_tiny_model(TINY, tokenizer, seed=0)
    rows = train_lm(model, data, LMTrainConfig(steps=25, batch_size=8, lr=3e-3))
    assert len(rows) == 25 and rows[-1]["loss"] < rows[0]["loss"] - 1.0
    assert len(rows[0]["attn_entropy"]) == 2 and len(rows[0]["attn_entropy_heads"][0]) == 4
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(float("nan"))
    rows = train_lm(model, data, LMTrainConfig(steps=5, batch_size=8))
    assert len(rows) == 1 and rows[0]["diverged"]


# --- the notebook's computed verdicts -------------------------------------------------------------

def test_uniform_entropy_is_the_mean_log_of_the_keys_each_query_sees():
    assert uniform_entropy(4) == pytest.approx(math.log(24) / 4)                    # (0 + ln2 + ln3 + ln4) / 4


def test_layer_states_name_collapse_and_overload_against_uniform_attention():
    uniform = 2.0                                                                  # collapsed < 0.2, overloaded > 1.6
    evaluation = {"attn_entropy": [0.1, 0.19, 0.21, 1.6, 1.61, 1.9]}
    assert layer_states(evaluation, uniform) == ["collapsed", "collapsed", "between", "between", "overloaded",
                                                 "overloaded"]
    assert count_states([evaluation, None, {"attn_entropy": [0.0]}], uniform, "collapsed") == [2, 1]
    assert mean_entropy({"attn_entropy": [0.5, 1.5]}) == 1.0


def test_versus_reads_the_welch_interval_of_the_difference():
    # [1, 3] against [1, 1]: difference 1, se = √(2/2) = 1 on 1 degree of freedom, t = 12.71: holds 0
    sentence, word = versus("loss", "a", [1.0, 3.0], "b", [1.0, 1.0])
    assert word == "no clear difference" and "+1.000 [-11.706, +13.706]" in sentence
    assert versus("loss", "a", [2.0, 2.2, 2.1], "b", [1.0, 1.2, 1.1])[1] == "higher"   # ±0.23 around 1
    assert versus("loss", "a", [1.0, 1.2, 1.1], "b", [2.0, 2.2, 2.1])[1] == "lower"
    assert versus("loss", "a", [1.0], "b", [2.0])[1] == "undecided (1 seed)"


def test_unigram_entropy_of_the_token_frequencies():
    data = torch.tensor([[1, 1, 2, 3], [1, 1, 2, 3]])                             # p = 1/2, 1/4, 1/4
    assert unigram_entropy(data) == pytest.approx(0.5 * LN2 + 0.5 * LN4)
