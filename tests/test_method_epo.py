"""EPO (Xu et al., arXiv 2509.22576): entropy bonus plus a penalty on entropy outside
[κ_l·H̄_hist, κ_r·H̄_hist], where H̄_hist is the mean rollout entropy of all past steps, kept in a
checkpointed MethodState."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import LossExtras, get_method
from minirl.methods.epo import EPOConfig, EPOState, band_penalty, epo_loss, phase_weight
from minirl.trainer import Trainer


def test_phase_weight_hand_worked():
    assert phase_weight(0) == 1.0
    assert phase_weight(75) == pytest.approx(1 - 0.2 * (1 - math.exp(-2)))     # 0.827067
    assert phase_weight(76) == pytest.approx(0.8 * math.exp(-3 / 75))          # 0.768631
    assert phase_weight(150) == pytest.approx(0.8 * math.exp(-3))              # 0.039830
    assert phase_weight(400) == phase_weight(150)


def test_band_penalty_hand_worked():
    # H̄ = .5, κ = (.5, 2): band (.25, 1); H = .1 is .15 below, .5 inside, 1.5 is .5 above; scale .1
    H = torch.tensor([0.1, 0.5, 1.5])
    P, inside = band_penalty(H, 0.5, 0.5, 2.0, 0.1, "hinge")
    torch.testing.assert_close(P, torch.tensor([0.015, 0.0, 0.05]))
    assert inside.tolist() == [False, True, False]
    torch.testing.assert_close(band_penalty(H, 0.5, 0.5, 2.0, 0.1, "squared_hinge")[0],
                               torch.tensor([0.00225, 0.0, 0.025]))
    torch.testing.assert_close(band_penalty(H, 0.5, 0.5, 2.0, 0.1, "released")[0], torch.tensor([0.1, 0.0, 0.1]))


def run(form, history=(0.4, 0.6), step=1):
    state = EPOState()
    state.history = list(history)
    H = torch.tensor([[0.1, 0.5, 1.5]], requires_grad=True)
    zeros = torch.zeros(1, 3)
    config = EPOConfig(entropy_coeff=0.1, entropy_smooth_min_ratio=0.5, smooth_form=form)
    loss, metrics = epo_loss(zeros.clone(), zeros, zeros, torch.ones(1, 3), "token-mean", config,
                             LossExtras(entropy=H, step=step, state=state))
    loss.backward()
    return loss.item(), metrics, H.grad


def test_hinge_loss_and_gradient_hand_worked():
    # H̄_hist = (.4 + .6)/2 = .5, step 1 → w(0) = 1, c_H = .1, c_s = 1, A = 0 so L_PG = 0
    # agg(H) = 2.1/3 = .7, agg(P) = (.015 + 0 + .05)/3 = .0216667
    # L = −.1·(.7 − .0216667) = −.0678333
    loss, metrics, grad = run("hinge")
    assert loss == pytest.approx(-0.0678333, abs=1e-6)
    assert metrics["hist_entropy"] == pytest.approx(0.5)
    assert metrics["entropy_mask_ratio"] == pytest.approx(1 / 3)
    # ∂L/∂H_t = −c_H/3 + c_H·c_s·w/3 · ∂P_t/∂H_t with ∂P/∂H = (−.1, 0, +.1)
    torch.testing.assert_close(grad, torch.tensor([[-0.11 / 3, -0.1 / 3, -0.09 / 3]]))


def test_released_penalty_has_no_gradient():
    # P = (.1, 0, .1): the loss moves to −.1·(.7 − .2/3) = −.0633333, the gradient is the bonus's alone
    loss, _, grad = run("released")
    assert loss == pytest.approx(-0.0633333, abs=1e-6)
    torch.testing.assert_close(grad, torch.full((1, 3), -0.1 / 3))


def test_no_history_means_no_smoothing_and_late_steps_weigh_less():
    loss, metrics, _ = run("hinge", history=())
    assert loss == pytest.approx(-0.07) and "hist_entropy" not in metrics
    late, metrics, _ = run("hinge", step=151)                       # w(150) = .8·e⁻³
    assert metrics["phase_weight"] == pytest.approx(0.8 * math.exp(-3))
    assert late == pytest.approx(-0.1 * (0.7 - 0.8 * math.exp(-3) * 0.065 / 3), abs=1e-6)


def test_state_round_trip():
    state = EPOState()
    assert state.mean() is None
    state.end_step({"entropy": 0.3})
    state.end_step({"entropy": 0.5})
    restored = EPOState()
    restored.load_state_dict(state.state_dict())
    assert restored.history == [0.3, 0.5] and restored.mean() == pytest.approx(0.4)


def test_history_lives_in_the_trainer_state_and_its_checkpoint(tmp_path):
    assert get_method("epo").make_config({"smooth_form": "released"}).smooth_form == "released"
    config = make_config("smoke", method="epo", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8,
                         method_settings={"entropy_coeff": "0.03"})
    trainer = Trainer(config, out=tmp_path / "run")
    first, second = trainer.train_step(), trainer.train_step()
    assert "epo/hist_entropy" not in first
    assert second["epo/hist_entropy"] == pytest.approx(first["entropy"])
    assert trainer.method_state.history == pytest.approx([first["entropy"], second["entropy"]])
    (tmp_path / "run").mkdir()                          # a resume needs the rows of steps 0..2 beside it
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(f'{{"step": {step}}}\n' for step in range(3)))
    trainer.save_checkpoint()
    resumed = Trainer(config, out=tmp_path / "run")
    resumed.load_checkpoint()
    assert resumed.method_state.history == trainer.method_state.history
