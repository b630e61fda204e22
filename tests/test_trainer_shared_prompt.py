"""The update with shared prompts (TrainConfig.share_prompt_update, on by default;
rollout.shared_prompt_forward) packs the rows of each distinct prompt into one sequence behind a
block mask, so the prompt runs once with gradient: the loss and every gradient must equal the per-row
path's to 1e-6, for whole groups, split groups, left-padded prompts of different lengths, and methods
that read the entropy or the logits."""
import copy
import math

import pytest
import torch

from minirl.config import make_config
from minirl.core import group_advantages
from minirl.rollout import policy_forward, shared_prompt_forward
from minirl.step import collect
from minirl.trainer import Trainer


def smoke(**overrides):
    return make_config("smoke", **{**dict(steps=3, prompts_per_step=8, eval_every=10**6), **overrides})


def first_batch(trainer):
    torch.manual_seed(0)
    return collect(trainer.sampler(), trainer.task, trainer.config, 1)


def loss_and_gradients(trainer, rollout, index, adv_tok, shared):
    trainer.config.share_prompt_update = shared
    trainer.model.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    batch_means = dict(batch_mean_log_prob=-1.0, batch_mean_advantage=0.0)
    loss, _ = trainer._loss(rollout, index, adv_tok, None, batch_means)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize("method", ["grpo", "entropy_bonus", "lp_reg"])
def test_shared_prompts_give_the_same_loss_and_gradients(method):
    trainer = Trainer(smoke(method=method))
    batch = first_batch(trainer)
    rollout = batch.rollout
    adv_tok = group_advantages(batch.rewards, 8)[0][:, None] * rollout.response_mask
    G = trainer.config.group_size
    live = [g for g in range(len(rollout) // G) if adv_tok[g * G:(g + 1) * G].abs().sum() > 0]   # groups that teach
    assert len(live) >= 3
    rows = [torch.arange(g * G, (g + 1) * G) for g in live[:3]]
    torch.manual_seed(1)
    for index in (torch.cat(rows),                             # 3 whole groups
                  torch.randperm(len(rollout))[:24],           # shuffled rows: groups of 0-4 rows
                  torch.cat([rows[0][:1], rows[1][2:4], rows[2][3:7]])):   # split groups of 1, 2 and 4 rows
        per_row = loss_and_gradients(trainer, rollout, index, adv_tok, shared=False)
        shared = loss_and_gradients(trainer, rollout, index, adv_tok, shared=True)
        assert per_row[0].item() != 0.0 and math.isclose(shared[0].item(), per_row[0].item(), abs_tol=1e-6)
        assert max(g.abs().max().item() for g in per_row[1]) > 1e-3          # a gradient worth comparing
        for a, b in zip(per_row[1], shared[1]):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6)


def test_left_padded_prompts_and_rows_of_different_lengths_give_the_same_logits_and_gradients():
    trainer = Trainer(smoke())
    tokenizer, model = trainer.tokenizer, trainer.model.train()
    prompts = ["12+34=", "5*6=", "12+34=", "7-1=", "5*6=", "12+34="]          # three prompts, 3 + 2 + 1 rows
    batch = tokenizer(prompts, padding=True, return_tensors="pt")             # left-padded
    assert not bool(batch["attention_mask"].all())
    torch.manual_seed(0)
    response = torch.randint(3, len(tokenizer), (len(prompts), 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0],   # rows of 5, 2 and 1 tokens,
                         [1, 1, 1, 1, 0], [1, 0, 1, 1, 0], [1, 1, 1, 1, 1]]).float()   # and a gap (a tool's output)
    weights = torch.randn(len(prompts), 5, len(tokenizer)) * mask[:, :, None]
    results = []
    for forward in (policy_forward, lambda *a, **k: shared_prompt_forward(*a, **k, response_mask=mask)):
        model.zero_grad(set_to_none=True)
        logits = forward(model, batch["input_ids"], batch["attention_mask"], response, temperature=0.7)
        (logits * weights).sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    on = mask.bool()
    torch.testing.assert_close(results[1][0][on], results[0][0][on], rtol=0, atol=1e-5)
    assert (results[1][0][:, 4][~on[:, 4]] == 0).all()                   # after a row's last token: not run
    for a, b in zip(results[0][1], results[1][1]):            # sums of random weights: relative
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item())


@pytest.mark.parametrize("chunk", [None, 12])
def test_the_reference_and_the_updated_policy_score_each_prompt_once_with_the_same_numbers(chunk):
    trainer = Trainer(smoke(kl_coef=0.1, micro_batch_size=chunk))
    with torch.no_grad():                                  # move the policy away from its frozen reference
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    rollout = first_batch(trainer).rollout
    results = {}
    for shared in (False, True):
        trainer.config.share_prompt_update = shared
        results[shared] = trainer._ref_log_prob(rollout), trainer._score(trainer.model, rollout)[1]
    assert results[False][0].abs().sum() > 0 and not torch.equal(results[False][0], results[True][0])
    for per_row, packed in zip(results[False], results[True]):
        torch.testing.assert_close(packed, per_row, rtol=0, atol=1e-5)


def test_attention_without_a_custom_mask_and_one_token_prompts_take_the_per_row_path(monkeypatch):
    model = Trainer(smoke()).model
    called = []
    monkeypatch.setattr("minirl.rollout.policy_forward", lambda *a, **k: called.append(a[1].shape) or "per row")
    ids, mask = torch.tensor([[5, 6, 7], [5, 6, 7]]), torch.ones(2, 3, dtype=torch.long)
    model.config._attn_implementation = "eager"
    assert shared_prompt_forward(model, ids, mask, ids) == "per row"
    model.config._attn_implementation = "sdpa"
    assert shared_prompt_forward(model, ids[:, :1], mask[:, :1], ids) == "per row"
    assert called == [(2, 3), (2, 1)]


def test_mini_batches_hold_whole_groups_and_a_step_trains():
    trainer = Trainer(smoke(num_mini_batches=4))
    assert trainer.config.share_prompt_update                 # the default
    rollout = first_batch(trainer).rollout
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


def test_a_saved_run_from_before_the_setting_resumes_on_the_per_row_path(tmp_path):
    import json

    from minirl.run_folder import CONFIG
    from minirl.trainer import train

    old = dict(share_prompt_update=False, fused_adamw=False)      # what runs did before the two settings
    config = smoke(steps=1, checkpoint_every=1, **old)
    train(config, tmp_path / "run", progress=False)
    state_path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(state_path, weights_only=True)
    for key in old:                                            # as a checkpoint written before the settings
        del state["config"][key]
    torch.save(state, state_path)
    saved = json.loads((tmp_path / "run" / CONFIG).read_text())
    for key in old:
        saved.pop(key, None)
    (tmp_path / "run" / CONFIG).write_text(json.dumps(saved))
    rows = train(smoke(steps=2, checkpoint_every=1, **old), tmp_path / "run", resume=True, progress=False)
    assert [r["step"] for r in rows][-1] == 2
    with pytest.raises(ValueError, match=r"share_prompt_update \(saved False, now True\)"):
        train(smoke(steps=3, checkpoint_every=1, fused_adamw=False), tmp_path / "run", resume=True, progress=False)
