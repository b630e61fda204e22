"""Lp-Reg (Huang et al., arXiv 2510.03222): hand-worked min-p proxy, lowest-logp negative selection, the k3 pull on the
selected tokens, the invariants (noise never protected, positives never selected, n must exceed 1),
and two smoke steps."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.core import ppo_clip_token_loss
from minirl.methods.lp_reg import LpRegConfig, lowest_logp_negatives, lp_reg_loss, min_p_proxy_log_prob
from minirl.methods.registry import LossExtras
from minirl.trainer import train

# Four positions with the same next-token distribution; token t is sampled at position t.
PROBS = torch.tensor([0.6, 0.3, 0.09, 0.01])
LOGITS = torch.log(PROBS).expand(1, 4, 4).clone()                          # (B=1, T=4, V=4)
LOGP = torch.log(PROBS)[None, :]                                            # (1, 4): log π(y_t)


def test_min_p_proxy_hand_worked():
    # minp κ = 0.02: floor 0.02·0.6 = 0.012 drops 0.01; Z_keep = 0.99, log π_proxy(y) = log(π(y)/0.99)
    proxy = min_p_proxy_log_prob(LOGITS, LOGP, 0.02, "minp")[0]
    assert proxy[:3].tolist() == pytest.approx([math.log(p / 0.99) for p in (0.6, 0.3, 0.09)], abs=1e-6)
    assert proxy[3].item() == -1e4                                           # the filtered-out token
    # fixed κ = 0.1 keeps {0.6, 0.3}: Z = 0.9, proxy(0.3) = log(1/3); 0.09 and 0.01 are noise
    fixed = min_p_proxy_log_prob(LOGITS, LOGP, 0.1, "fixed")[0]
    assert fixed[1].item() == pytest.approx(math.log(1 / 3), abs=1e-6) and fixed[2:].tolist() == [-1e4, -1e4]


def test_lowest_logp_negatives_hand_worked():
    logp = torch.tensor([[-0.5, -4.0, -2.0], [-3.0, -1.0, -5.0]])
    adv = torch.tensor([[-1.0] * 3, [1.0] * 3])                              # only row 0 is negative
    mask = torch.ones(2, 3)
    # |Neg| = 3, ρ = 0.7: n = max(1, floor(2.1)) = 2 -> the two lowest of row 0: -4 and -2 (row 1's -5 is positive)
    assert lowest_logp_negatives(logp, adv, mask, 0.7).tolist() == [[False, True, True], [False] * 3]
    # ρ = 0.5: n = max(1, floor(1.5)) = 1, and a single token is never regularised (official: only if n > 1)
    assert lowest_logp_negatives(logp, adv, mask, 0.5).sum() == 0


def run(config, adv=-torch.ones(1, 4), old=LOGP):
    logp = LOGP.clone().requires_grad_(True)
    loss, m = lp_reg_loss(logp, old, adv, torch.ones(1, 4), "token-mean", config, LossExtras(logits=LOGITS))
    return loss.item(), torch.autograd.grad(loss, logp)[0], m


def test_loss_hand_worked():
    # all four tokens negative (A = -1), on-policy (r = 1). ρ = 0.5: n = 2 -> S = {pos 3 (0.01), pos 2 (0.09)}.
    # pos 3 was filtered out (proxy -1e4): not in S*. pos 2: log 0.09 < log(0.09/0.99): S* = {pos 2}.
    # k3 with b - a = -ln 0.99 = 0.0100503: e^0.0100503 - 0.0100503 - 1 = 5.0673e-5
    # losses: PPO -A·r = 1 on 0, 1, 3; pos 2: 1 + 5.0673e-5 -> token-mean 1 + 1.2668e-5
    loss, grad, m = run(LpRegConfig(logp_neg_k_percent=0.5))
    d = -math.log(0.99)
    k3 = math.exp(d) - d - 1
    assert loss == pytest.approx(1 + k3 / 4, abs=1e-7)
    # d ℓ / d logp: -A·r = 1 everywhere, plus dk3/da = 1 - e^{b - a} = 1 - 1/0.99 on pos 2 (pushes log p up)
    assert grad[0].tolist() == pytest.approx([0.25, 0.25, (1 + 1 - 1 / 0.99) / 4, 0.25], abs=1e-6)
    assert (m["n_selected"], m["n_regularised"]) == (2, 1)
    assert m["kl_proxy"] == pytest.approx(k3, abs=1e-7) and m["filtered_frac"] == pytest.approx(0.25)


def test_a_single_selected_token_leaves_plain_ppo_clip():
    # official defaults: ρ = 0.01 of 4 negatives -> n = 1 -> nothing is regularised, the loss is PPO-clip
    old = LOGP - torch.tensor([[0.5, -0.5, 0.2, 0.0]])
    loss, _, m = run(LpRegConfig(), old=old)
    ref, _, _ = ppo_clip_token_loss(LOGP, old, -torch.ones(1, 4), 1.0, 9.0, None)
    assert m["n_regularised"] == 0 and loss == pytest.approx(ref.mean().item())


def test_positive_samples_are_never_regularised():
    _, _, m = run(LpRegConfig(logp_neg_k_percent=1.0), adv=torch.ones(1, 4))
    assert m["n_selected"] == 0 and m["n_regularised"] == 0


def test_logits_are_required():
    with pytest.raises(ValueError, match="lp_reg needs the logits"):
        lp_reg_loss(LOGP, LOGP, -torch.ones(1, 4), torch.ones(1, 4), "token-mean", LpRegConfig(), LossExtras())


def test_two_smoke_steps_through_the_trainer(tmp_path):
    rows = train(make_config("smoke", method="lp_reg", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8,
                             method_settings={"logp_neg_k_percent": "0.2"}), tmp_path / "run", progress=False)
    assert rows[-1]["step"] == 2
    assert rows[-1]["lp_reg/n_selected"] >= rows[-1]["lp_reg/n_regularised"] >= 0
