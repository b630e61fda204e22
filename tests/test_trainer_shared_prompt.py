"""The update with shared prompts (Trainer.share_prompt_update, rollout.shared_prompt_forward) runs
each distinct prompt of a mini-batch once with gradient and copies its KV cache to its rows: the
loss and every gradient must equal the per-row path's to 1e-6, for a whole-group mini-batch, a
shuffled one, and methods that read the entropy or the logits."""
import copy
import math

import pytest
import torch

from minirl.config import make_config
from minirl.core import group_advantages
from minirl.trainer import Trainer


def smoke(**overrides):
    return make_config("smoke", **{**dict(steps=3, prompts_per_step=8, eval_every=10**6), **overrides})


def loss_and_gradients(trainer, rollout, index, adv_tok, shared):
    trainer.share_prompt_update = shared
    trainer.model.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    batch_means = dict(batch_mean_log_prob=-1.0, batch_mean_advantage=0.0)
    loss, _ = trainer._loss(rollout, index, adv_tok, None, batch_means)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize("method", ["grpo", "entropy_bonus", "lp_reg"])
def test_shared_prompts_give_the_same_loss_and_gradients(method):
    trainer = Trainer(smoke(method=method))
    torch.manual_seed(0)
    rollout, rewards, *_ = trainer._collect()
    adv_tok = group_advantages(rewards, 8)[0][:, None] * rollout.response_mask
    G = trainer.config.group_size
    for index in (torch.arange(2 * G, 5 * G), torch.randperm(len(rollout))[:24]):   # 3 whole groups; shuffled
        per_row = loss_and_gradients(trainer, rollout, index, adv_tok, shared=False)
        shared = loss_and_gradients(trainer, rollout, index, adv_tok, shared=True)
        assert per_row[0].item() != 0.0 and math.isclose(shared[0].item(), per_row[0].item(), abs_tol=1e-6)
        assert max(g.abs().max().item() for g in per_row[1]) > 1e-3          # a gradient worth comparing
        for a, b in zip(per_row[1], shared[1]):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


def test_mini_batches_hold_whole_groups_and_a_step_trains():
    trainer = Trainer(smoke(num_mini_batches=4))
    trainer.share_prompt_update = True
    torch.manual_seed(0)
    rollout, *_ = trainer._collect()
    order = trainer._group_order(rollout)
    assert sorted(order.tolist()) == list(range(len(rollout)))
    G = trainer.config.group_size
    for index in order.chunk(4):                              # 64 rows: 4 mini-batches of 2 whole groups
        groups = [i // G for i in index.tolist()]
        assert len(set(groups)) == 2 and all(groups.count(g) == G for g in groups)
    before = copy.deepcopy(trainer.model.state_dict())
    metrics = trainer.train_step()
    assert all(math.isfinite(metrics[k]) for k in ("pg_loss", "grad_norm", "entropy", "reward"))
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())

