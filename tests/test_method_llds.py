"""LLDS (Deng et al., arXiv 2512.04220): a hinge on likelihood decreases of A ≥ 0 tokens, gated per
action (A-gate) or per response (R-gate), averaged over all response tokens and added to the GRPO loss."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import LossExtras, get_method
from minirl.methods.llds import LLDSConfig, action_ids, llds_loss
from minirl.trainer import train

# d = old_logp − logp. Token 2 of response 0 is a masked tool observation, splitting it in two actions.
#   response 0: A = +1, M = 1 1 0 1, d = .2 −.1 (9) −.5 → actions {0,1}: Σd = .1 > 0 fires; {3}: −.5 does not
#                                                         whole response: Σd = −.4 → R-gate does not fire
#   response 1: A =  0, M = 1 1 1 0, d = .1 .1 −.05      → in P (A ≥ 0); Σd = .15 > 0 fires in both gates
#   response 2: A = −1, M = 1 1 0 0, d = .4 .4           → not in P, never penalised
# Σ M = 8 response tokens.
D = torch.tensor([[0.2, -0.1, 9.0, -0.5], [0.1, 0.1, -0.05, 0.0], [0.4, 0.4, 0.0, 0.0]])
ADV = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])


def run(config, d=D, mask=MASK, adv=ADV):
    old = torch.full_like(d, -1.0)
    log_prob = (old - d).requires_grad_(True)
    loss, metrics = llds_loss(log_prob, old, adv, mask, "token-mean", config, LossExtras())
    loss.backward()
    return loss.item(), metrics, log_prob.grad


def test_action_ids_number_the_runs_of_each_row():
    P = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 0]]).bool()
    assert action_ids(P).tolist() == [[1, 1, 0, 2], [0, 1, 1, 0]]


def test_a_gate_hand_worked():
    loss, metrics, grad = run(LLDSConfig(chunk_noreduce=True))
    # penalised: response 0 tokens 0, 1 (max(0, d) = .2, 0) and response 1 tokens 0, 1, 2 (.1, .1, 0)
    # L_LLDS = λ (.2 + .1 + .1) / 8 = 0.2 · 0.05 = 0.01
    assert metrics["loss_noreduce"] == pytest.approx(0.01)
    assert loss - metrics["pg_loss"] == pytest.approx(0.01)
    assert metrics["active_frac"] == pytest.approx(3 / 8)           # gated and d > 0
    assert metrics["mean_reduce_chunk"] == pytest.approx(1.0)      # one gated action in responses 0 and 1
    # the hinge's gradient is −λ/8 = −0.025 on each penalised token with d > 0
    _, _, grad_pg = run(LLDSConfig(no_reduce_lambda=0.0))
    expected = torch.zeros(3, 4)
    expected[0, 0] = expected[1, 0] = expected[1, 1] = -0.025
    torch.testing.assert_close(grad - grad_pg, expected)


def test_r_gate_hand_worked():
    _, metrics, _ = run(LLDSConfig(chunk_noreduce=False))
    # response 0 is off as a whole (Σd = −.4); only response 1 remains: λ (.1 + .1) / 8 = 0.005
    assert metrics["loss_noreduce"] == pytest.approx(0.005)
    assert metrics["active_frac"] == pytest.approx(2 / 8)
    assert metrics["mean_reduce_chunk"] == pytest.approx(0.5)


def test_threshold_option():
    # with threshold .2 neither Σd = .1 (action of response 0) nor Σd = .15 (response 1) exceeds it
    _, metrics, _ = run(LLDSConfig(reduce_threshold=0.2))
    assert metrics["loss_noreduce"] == 0.0


def test_a_gate_equals_r_gate_on_single_turn_masks():
    # a contiguous mask per response (no tool observations) makes each response a single action
    torch.manual_seed(0)
    d = 0.3 * torch.randn(6, 5)
    lengths = torch.tensor([5, 3, 1, 4, 2, 5])
    mask = (torch.arange(5)[None, :] < lengths[:, None]).float()
    adv = torch.tensor([1.0, -1.0, 0.0, 0.5, 1.0, -0.5])[:, None] * mask
    a = run(LLDSConfig(chunk_noreduce=True), d, mask, adv)
    r = run(LLDSConfig(chunk_noreduce=False), d, mask, adv)
    assert a[1]["loss_noreduce"] == pytest.approx(r[1]["loss_noreduce"]) and a[1]["loss_noreduce"] > 0
    torch.testing.assert_close(a[2], r[2])


def test_nothing_to_preserve_before_the_policy_moves():
    loss, metrics, _ = run(LLDSConfig(), d=torch.zeros(3, 4))
    assert metrics["loss_noreduce"] == 0.0 and loss == pytest.approx(metrics["pg_loss"])


def test_two_smoke_steps_through_the_trainer(tmp_path):
    assert get_method("llds").make_config({"chunk_noreduce": "false"}).chunk_noreduce is False
    rows = train(make_config("smoke", method="llds", steps=2, prompts_per_step=8, eval_every=100,
                             eval_prompts=8), tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and math.isfinite(last["pg_loss"]) and last["llds/loss_noreduce"] >= 0.0
