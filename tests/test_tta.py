"""Test-time adaptation (minirl.tta, notebook 06; SAR, Niu et al., ICLR 2023; DeYO, Lee et al., ICLR
2024; the open-set "wisdom of crowds" filter, Lee et al., ICCV 2023): hand-worked entropy,
gradients, masks, weights and the reset rule, the corruptions and streams, and one behaviour check
that Tent collapses at batch size 1 where SAR does not."""
import math

import pytest
import torch
from torch import nn

from minirl.tta import TTA_METHODS, get_tta_method, softmax_entropy
from minirl.tta.benchmark import format_table, mean_std
from minirl.tta.data import CORRUPTIONS, corrupt, load_digit_split
from minirl.tta.deyo import DeYO, deyo_weights, plpd, shuffle_patches
from minirl.tta.evaluate import StreamResult, evaluate, scaled_lr
from minirl.tta.models import DigitNet, norm_affine_parameters, train_source_model
from minirl.tta.ostta import OSTTA, crowd_mask
from minirl.tta.sar import SAR, recovery_check, reliable_mask, sam_perturbation
from minirl.tta.streams import make_stream
from minirl.tta.tent import Tent
from minirl.tta.verdicts import against, collapsed, describe

LN3 = math.log(3.0)


# ------------------------------------------------------------------ entropy and Tent
def test_entropy_and_its_gradient_on_a_two_class_toy():
    # logits (0, ln 3) -> p = (1/4, 3/4); H = ln 4 − (3/4) ln 3 = 0.562335
    # ∂H/∂z_c = −p_c (ln p_c + H): ∂H/∂z_0 = p_0 p_1 (ln p_1 − ln p_0) = (3/16) ln 3 = 0.205990 = −∂H/∂z_1
    z = torch.tensor([[0.0, LN3]], requires_grad=True)
    h = softmax_entropy(z)
    h.sum().backward()
    assert h.item() == pytest.approx(0.562335, abs=1e-6)
    assert z.grad[0].tolist() == pytest.approx([0.205990, -0.205990], abs=1e-6)


def _layer_norm_toy(weight, bias):
    """A 'model' that is one LayerNorm over 2 features: logits = γ ⊙ x̂ + β, x̂ = (−1, 1) for x = (0, 2)."""
    model = nn.LayerNorm(2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(weight))
        model.bias.copy_(torch.tensor(bias))
    return model


def test_tent_predicts_first_then_takes_one_entropy_step_on_gamma_and_beta():
    # γ = 0, β = (0, ln 3): logits = β, the toy above. SGD, lr 1, no momentum:
    # β' = β − ∂H/∂z = (−0.205990, ln 3 + 0.205990);  γ' = γ − ∂H/∂z ⊙ x̂ = (0.205990, 0.205990)
    tent = Tent(_layer_norm_toy([0.0, 0.0], [0.0, LN3]), lr=1.0, momentum=0.0)
    logits = tent(torch.tensor([[0.0, 2.0]]))
    assert logits[0].tolist() == pytest.approx([0.0, LN3], abs=1e-6)        # the prediction before the update
    assert tent.model.bias.tolist() == pytest.approx([-0.205990, LN3 + 0.205990], abs=1e-5)
    assert tent.model.weight.tolist() == pytest.approx([0.205990, 0.205990], abs=1e-5)


def test_only_the_norm_layers_affine_parameters_are_adapted():
    model = DigitNet("gn")
    tent = Tent(model, lr=0.5)
    tent(torch.rand(8, 1, 8, 8))
    changed = {n for (n, p), (_, q) in zip(model.named_parameters(), tent.model.named_parameters())
               if not torch.equal(p, q)}
    assert changed == {"features.1.weight", "features.1.bias", "features.4.weight", "features.4.bias",
                       "features.8.weight", "features.8.bias"}
    assert len(norm_affine_parameters(model)) == 6


# ------------------------------------------------------------------ SAR
def test_sar_reliable_mask_uses_e0_of_0_4_ln_c():
    e0 = 0.4 * math.log(10)                                                    # 0.921034
    mask = reliable_mask(torch.tensor([0.5, 0.92, 0.93, 2.0]), e0)
    assert mask.tolist() == [True, True, False, False]


def test_sar_reset_fires_on_the_eighth_batch_of_confident_losses():
    # L2 = 0.3, then 0.1 every batch: ema_k = 0.1 + 0.2 · 0.9^(k−1) < 0.2  <=>  0.9^(k−1) < 1/2  <=>  k ≥ 8
    ema, resets = None, []
    for k, loss in enumerate([0.3] + [0.1] * 9, start=1):
        ema, reset = recovery_check(ema, loss, reset_em=0.2)
        resets.append(reset)
    assert resets == [False] * 7 + [True] * 3
    ema8 = 0.1 + 0.2 * 0.9**7                                                  # 0.195663
    assert recovery_check(ema8, 0.5, 0.2) == (pytest.approx(0.9 * ema8 + 0.05), False)   # 0.226: no reset
    assert recovery_check(ema8, None, 0.2) == (ema8, True)                     # S2 empty: ema unchanged


def test_sam_perturbation_has_length_rho_along_the_gradient():
    # g = (3 | 4) over two tensors, ‖g‖ = 5, ρ = 0.05  ->  ε̂ = (0.03 | 0.04)
    eps = sam_perturbation([torch.tensor([3.0]), torch.tensor([4.0])], rho=0.05)
    assert [e.item() for e in eps] == pytest.approx([0.03, 0.04])


def test_sar_step_is_sgd_with_the_gradient_at_the_perturbed_weights():
    # Independent computation on the LayerNorm toy (2 classes, E0 = 0.4 ln 2 = 0.277): logits (0, ln 19),
    # p = (0.05, 0.95), H = 0.199 < E0, so the sample is reliable in both forward passes.
    x = torch.tensor([[0.0, 2.0]])
    sar = SAR(_layer_norm_toy([0.0, 0.0], [0.0, math.log(19)]), lr=0.1, momentum=0.0, rho=0.05, reset_em=0.0)
    theta = torch.tensor([0.0, 0.0, 0.0, math.log(19)], requires_grad=True)   # (γ, β)
    x_hat = torch.tensor([-1.0, 1.0]) / math.sqrt(1 + 1e-5)

    def loss(t):
        return softmax_entropy((t[:2] * x_hat + t[2:]).unsqueeze(0)).mean()

    (g,) = torch.autograd.grad(loss(theta), theta)
    (g2,) = torch.autograd.grad(loss(theta + 0.05 * g / g.norm()), theta)
    expected = theta.detach() - 0.1 * g2
    sar(x)
    assert torch.cat([sar.model.weight, sar.model.bias]).tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert sar.ema == pytest.approx(loss(theta + 0.05 * g / g.norm()).item(), abs=1e-6)


@pytest.mark.parametrize("keep", [True, False])
def test_sar_resets_to_the_source_and_keeps_the_ema_as_the_code_does(keep):
    # ema 0.15 before a batch whose L2 is ~0.2: 0.9·0.15 + 0.1·0.2 = 0.155 < 0.2 -> reset to the source
    source = _layer_norm_toy([0.0, 0.0], [0.0, math.log(19)])
    sar = SAR(source, lr=1.0, momentum=0.0, keep_ema_after_reset=keep)
    sar.ema = 0.15
    sar(torch.tensor([[0.0, 2.0]]))
    assert sar.resets == 1
    assert torch.equal(sar.model.bias, source.bias) and torch.equal(sar.model.weight, source.weight)
    assert (sar.ema is not None and sar.ema < 0.2) if keep else sar.ema is None


# ------------------------------------------------------------------ DeYO
def test_plpd_filter_and_weights_on_given_probabilities():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    shuffled = torch.tensor([[0.4, 0.3, 0.3], [0.2, 0.35, 0.45]])
    value = plpd(probs, shuffled)                                  # ŷ = (0, 2): 0.7 − 0.4, 0.6 − 0.45
    assert value.tolist() == pytest.approx([0.3, 0.15])
    assert (value > 0.2).tolist() == [True, False]                 # τ_PLPD = 0.2
    # H = 0.5, Ent_0 = 0.4 ln 10 = 0.921034, PLPD = 0.3: α = e^{0.421034} + e^{0.3} = 1.523536 + 1.349859
    alpha = deyo_weights(torch.tensor([0.5]), torch.tensor([0.3]), ent0=0.4 * math.log(10))
    assert alpha.item() == pytest.approx(2.873395, abs=1e-5)
    assert deyo_weights(torch.tensor([0.5]), torch.tensor([0.3]), 0.921034, reweight_ent=False).item() == \
        pytest.approx(1.349859, abs=1e-5)


def test_patch_shuffle_moves_whole_patches():
    x = torch.arange(16.0).view(1, 1, 4, 4)                        # 2×2 grid of 2×2 patches
    y = shuffle_patches(x, 2, torch.Generator().manual_seed(0))
    quadrants = lambda t: sorted(t[0, 0, r:r + 2, c:c + 2].flatten().tolist() for r in (0, 2) for c in (0, 2))
    assert quadrants(y) == quadrants(x)                            # the same four patches, intact
    with pytest.raises(ValueError, match="patches_per_side=3"):
        shuffle_patches(x, 3)


def test_deyo_makes_no_update_when_no_sample_passes_the_plpd_filter():
    model = DigitNet("gn")
    deyo = DeYO(model, lr=1.0, plpd_threshold=1.1, margin_fraction=1.0)    # PLPD ≤ 1 < 1.1 always
    deyo(torch.rand(4, 1, 8, 8))
    assert deyo.selected == 0.0
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), deyo.model.parameters()))


# ------------------------------------------------------------------ open-set filter
def test_crowd_mask_keeps_samples_whose_source_class_lost_no_confidence():
    source = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.3, 0.2]])
    adapted = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.4, 0.4], [0.5, 0.1, 0.4]])
    # c = (0, 1, 0): 0.7 ≥ 0.6 keep; 0.4 < 0.5 drop; 0.5 ≥ 0.5 keep (ties pass)
    assert crowd_mask(adapted, source).tolist() == [True, False, True]


def test_ostta_keeps_every_sample_on_the_first_batch():
    ostta = OSTTA(DigitNet("gn"), lr=0.1)
    ostta(torch.rand(16, 1, 8, 8))                                 # θ_a = θ_o: equal confidences pass
    assert ostta.selected == 1.0


# ------------------------------------------------------------------ registry, data, streams, metrics
def test_registry_names_and_its_error():
    assert list(TTA_METHODS) == ["source", "tent", "sar", "deyo", "ostta"]
    with pytest.raises(ValueError, match="unknown test-time method 'tnet'; choose one of: source, tent, sar"):
        get_tta_method("tnet")


def test_contrast_and_blur_by_hand_and_bad_arguments():
    x = torch.tensor([0.0, 1.0] * 32).view(1, 1, 8, 8)             # mean 0.5
    # severity 3: c = 0.6 -> 0.5 ± 0.6·0.5 = 0.2 / 0.8
    assert corrupt(x, "contrast", 3).unique().tolist() == pytest.approx([0.2, 0.8])
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert torch.allclose(corrupt(flat, "gaussian_blur", 5), flat)   # blurring a flat image changes nothing
    noisy = corrupt(flat, "gaussian_noise", 5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1
    with pytest.raises(ValueError, match="unknown corruption 'fog'; choose one of: gaussian_noise"):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="severity must be 1, 2, 3, 4 or 5, got 6"):
        corrupt(x, "contrast", 6)


def test_streams_order_batch_size_and_pool():
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    label_shift = make_stream(x, y, "label_shift")
    assert len(label_shift.y) == 5 * 20 and label_shift.batch_size == 64
    assert torch.equal(label_shift.y, label_shift.y.sort().values)          # ordered by label
    batch1 = make_stream(x, y, "batch1", max_samples=30)
    assert batch1.batch_size == 1 and len(batch1.y) == 30
    assert len(make_stream(x, y, "iid", corruption="contrast").y) == 20
    with pytest.raises(ValueError, match="unknown condition 'wild'"):
        make_stream(x, y, "wild")
    assert scaled_lr(0.01, 64) == 0.01 and scaled_lr(0.01, 1) == pytest.approx(0.01 / 32)


def test_stream_summary_by_hand():
    result = StreamResult(predictions=torch.tensor([1, 1, 1, 2]), labels=torch.tensor([1, 2, 1, 2]),
                          entropy=torch.tensor([1.0, 1.0, 0.5, 0.1]), selected=[1.0, 0.5])
    summary = result.summary(tail=0.5)
    assert summary["accuracy"] == 0.75 and summary["top_class_fraction"] == 0.75
    assert summary["final_entropy"] == pytest.approx(0.3) and summary["selected"] == 0.75


def test_mean_std_averages_corruptions_within_a_seed_first():
    rows = [{"method": "tent", "condition": "iid", "seed": 0, "accuracy": 0.4},
            {"method": "tent", "condition": "iid", "seed": 0, "accuracy": 0.6},
            {"method": "tent", "condition": "iid", "seed": 1, "accuracy": 0.7}]
    mean, std, n = mean_std(rows, ("method", "condition"))[("tent", "iid")]
    assert (mean, n) == (pytest.approx(0.6), 2) and std == pytest.approx(math.sqrt(0.02))   # seeds: 0.5, 0.7
    assert "| tent | 60.0 ± 14.1 | — |" in format_table(mean_std(rows, ("method", "condition")), ["tent"],
                                                          ["iid", "mixed"])


# ------------------------------------------------------------------ behaviour
def test_tent_collapses_at_batch_size_1_and_sar_does_not():
    """Seed 0, a source model trained for 10 epochs, 400 mixed-corruption images one at a time,
    lr 0.1/32: Tent sends most predictions to one class with ~0 entropy; SAR's filter and resets keep
    it spread (measured over seeds 0-4: Tent top-class share 0.83-0.95, SAR 0.27-0.45)."""
    split = load_digit_split()
    model = train_source_model(split.x_train, split.y_train, norm="gn", epochs=10, seed=0)
    run = {m: evaluate(m, "batch1", model, split.x_test, split.y_test, seed=0, max_samples=400, base_lr=0.1)
           for m in ("source", "tent", "sar")}
    assert run["tent"]["top_class_fraction"] > 0.8 and run["tent"]["final_entropy"] < 0.1
    assert run["sar"]["top_class_fraction"] < 0.5
    assert run["sar"]["accuracy"] > run["tent"]["accuracy"] + 0.15
    assert run["source"]["top_class_fraction"] < 0.5 and len(CORRUPTIONS) == 5


# --- the notebook's computed verdicts ------------------------------------------------------------

def test_collapse_needs_both_one_class_and_near_certainty():
    assert collapsed(0.9, 0.01) and collapsed(0.51, 0.19)
    assert not collapsed(0.5, 0.01)            # half in one class is not more than half
    assert not collapsed(0.9, 0.2)             # confident, but not near-certain


def test_against_counts_a_difference_only_where_its_welch_interval_excludes_zero():
    stats = {("tent", "mixed"): (0.20, 0.05, 3), ("source", "mixed"): (0.50, 0.10, 3),
             ("sar", "mixed"): (0.45, 0.02, 3), ("one", "mixed"): (0.9, 0.0, 1)}
    # tent − source: −0.30, se = √(0.05²/3 + 0.10²/3) = 0.0645, 2.94 degrees of freedom, t = 3.20: ±0.21
    assert against(stats, "tent", "source", "mixed") == ("worse", pytest.approx(-0.30))
    assert against(stats, "source", "tent", "mixed") == ("better", pytest.approx(0.30))
    # sar − source: −0.05, se = 0.0589, 2.15 degrees of freedom: ±0.24 holds 0
    assert against(stats, "sar", "source", "mixed")[0] == "≈"
    assert against(stats, "one", "source", "mixed")[0] == "undecided (1 seed)"


def test_describe_names_the_numbers_behind_the_verdict():
    tent = {"method": "tent", "accuracy": 0.167, "final_entropy": 0.053, "top_class_fraction": 0.86}
    source = {"method": "source", "accuracy": 0.481, "final_entropy": 0.904, "top_class_fraction": 0.27}
    assert describe(tent, source) == ("tent: accuracy 16.7 % (unadapted 48.1 %), final entropy 0.053 nats "
                                      "(unadapted 0.904), 86 % of predictions in one class (unadapted 27 %): collapsed")
    assert describe(source).endswith("27 % of predictions in one class: not collapsed")
