"""SIREN (Liu et al., arXiv 2509.25133): hand-worked top-p entropy and per-response peak mask, the anchor set once, the
squared pull moving Ĥ towards the anchor from either side, and two smoke steps."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods.registry import LossExtras
from minirl.methods.siren import SirenConfig, SirenState, peak_mask, siren_loss, top_p_entropy
from minirl.trainer import train


def H(p_list, p=0.8, include_crossing=False):
    logits = torch.log(torch.tensor(p_list))[None, None, :]                      # (1, 1, V)
    return top_p_entropy(logits, p, k=10000, include_crossing=include_crossing).item()


def test_top_p_entropy_hand_worked():
    # [0.5, 0.25, 0.25], p = 0.8: cumulative 0.5, 0.75, 1.0 -> nucleus {0.5, 0.25} (cum < p)
    #   renormalised [2/3, 1/3]: H = -(2/3 ln 2/3 + 1/3 ln 1/3) = 0.636514
    assert H([0.5, 0.25, 0.25]) == pytest.approx(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3), abs=1e-5)
    # with the crossing token the nucleus is all three: -(0.5 ln 0.5 + 2·0.25 ln 0.25) = 1.039721
    assert H([0.5, 0.25, 0.25], include_crossing=True) == pytest.approx(1.039721, abs=1e-5)
    # [0.7, 0.2, 0.1]: official nucleus {0.7} alone -> 0; with the crossing token {7/9, 2/9} -> 0.529706
    assert H([0.7, 0.2, 0.1]) == pytest.approx(0.0, abs=1e-6)
    assert H([0.7, 0.2, 0.1], include_crossing=True) == pytest.approx(0.529706, abs=1e-5)
    # the top token alone has p >= 0.8: empty nucleus, H = 0
    assert H([0.9, 0.05, 0.05]) == pytest.approx(0.0, abs=1e-6)


def test_top_k_caps_at_the_vocabulary_and_limits_the_nucleus():
    logits = torch.zeros(1, 1, 4)                                               # uniform over 4
    assert top_p_entropy(logits, 0.8, k=10000).item() == pytest.approx(math.log(3), abs=1e-5)  # cum .25 .5 .75 < .8
    assert top_p_entropy(logits, 0.8, k=2).item() == pytest.approx(math.log(2), abs=1e-5)


def test_peak_mask_per_response_with_padding():
    # row 0: sorted [0.1, 0.2, 0.3, 0.5, 0.9], 0.8-quantile at 3.2 -> 0.5 + 0.2·0.4 = 0.58 -> only 0.9
    # row 1: valid [0.1, 0.5, 0.3] (padding 9.9 ignored), quantile at 1.6 -> 0.3 + 0.6·0.2 = 0.42 -> only 0.5
    Hp = torch.tensor([[0.1, 0.5, 0.3, 0.9, 0.2], [0.1, 0.5, 0.3, 9.9, 9.9]])
    mask = torch.tensor([[1.0] * 5, [1.0, 1.0, 1.0, 0.0, 0.0]])
    assert peak_mask(Hp, mask, 0.8).tolist() == [[False, False, False, True, False],
                                                 [False, True, False, False, False]]


def batch(seed=0, B=4, T=10, V=6, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(B, T, V, generator=g)).requires_grad_(True)
    logp = torch.log_softmax(logits, -1)[..., 0]
    return logits, logp, torch.ones(B, T)


def test_anchor_is_set_once_then_fixed():
    state = SirenState()
    logits, logp, mask = batch()
    zero_adv = torch.zeros_like(mask)
    loss, m = siren_loss(logp, logp.detach(), zero_adv, mask, "seq-mean-token-sum-norm", SirenConfig(),
                         LossExtras(logits=logits, state=state))
    assert state.anchor == pytest.approx(m["entropy_loss"]) and m["reg"] == 0.0     # first call: Ĥ = anchor
    logits2, logp2, _ = batch(seed=1)
    _, m2 = siren_loss(logp2, logp2.detach(), zero_adv, mask, "seq-mean-token-sum-norm", SirenConfig(),
                       LossExtras(logits=logits2, state=state))
    assert m2["entropy_anchor"] == state.anchor == m["entropy_loss"]              # unchanged
    assert m2["reg"] == pytest.approx(0.005 * (m2["entropy_loss"] - state.anchor) ** 2)


@pytest.mark.parametrize("anchor", [0.0, 1.5])
def test_gradient_step_moves_h_hat_towards_the_anchor(anchor):
    logits, logp, mask = batch(seed=3, scale=1.5)
    config = SirenConfig(entropy_anchor=anchor, entropy_coeff=1.0)
    zero_adv = torch.zeros_like(mask)                                            # only the regulariser acts
    _, before = siren_loss(logp, logp.detach(), zero_adv, mask, "token-mean", config,
                           LossExtras(logits=logits, state=SirenState()))
    loss, _ = siren_loss(logp, logp.detach(), zero_adv, mask, "token-mean", config,
                         LossExtras(logits=logits, state=SirenState()))
    (grad,) = torch.autograd.grad(loss, logits)
    stepped = (logits - 0.5 * grad).detach()
    logp_s = torch.log_softmax(stepped, -1)[..., 0]
    _, after = siren_loss(logp_s, logp_s, zero_adv, mask, "token-mean", config,
                          LossExtras(logits=stepped, state=SirenState()))
    assert abs(after["entropy_loss"] - anchor) < abs(before["entropy_loss"] - anchor)


def test_policy_term_divides_the_token_sum_by_sequences_and_length():
    # on-policy, A = [[2, 2], [1, 1]]: PPO token loss -A, Σ = -6; SIREN's verl: Σ / (B·T) = -6 / 4 = -1.5
    logits, logp, mask = batch(B=2, T=2)
    adv = torch.tensor([[2.0, 2.0], [1.0, 1.0]])
    loss, m = siren_loss(logp, logp.detach(), adv, mask, "seq-mean-token-sum-norm", SirenConfig(entropy_coeff=0.0),
                         LossExtras(logits=logits, state=SirenState()))
    assert loss.item() == pytest.approx(-1.5) and m["pg_loss"] == pytest.approx(-1.5)


def test_siren_defaults_follow_the_official_script():
    config = make_config("smoke", method="siren")
    assert config.scale_adv_by_std is False                                     # norm_adv_by_std_in_grpo=False


def test_two_smoke_steps_through_the_trainer(tmp_path):
    rows = train(make_config("smoke", method="siren", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8),
                 tmp_path / "run", progress=False)
    assert rows[-1]["step"] == 2
    assert rows[1]["siren/entropy_anchor"] == rows[2]["siren/entropy_anchor"]      # set at step 1, then fixed
    assert 0.0 <= rows[-1]["siren/peak_frac"] <= 0.5
