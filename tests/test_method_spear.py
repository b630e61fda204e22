"""SPEAR (Qin et al., arXiv 2509.22601): the replay buffer (insertion, expiry, flush), the P50 advantage recalibration,
the cosine schedules, the replay weight carried by the advantages, Clip-Cov drawn separately on
the replayed rows, the inert-by-default tool-call reward, and runs through the trainer."""
import dataclasses
import math

import pytest
import torch

from minirl.config import make_config
from minirl.core import group_advantages
from minirl.methods import BatchContext, LossExtras, get_method
from minirl.methods.spear import (SPEARConfig, SPEARState, baseline, n_ready, recalibrate, replay_weight,
                                  replayed_rows, spear_batch, spear_loss, store, take_replay, toolcall_weight)
from minirl.rollout import Rollout
from minirl.trainer import train

G = 4


def rows(log_probs, names=None, length=2):
    """One row per log-prob, `length` response tokens each with that log-prob."""
    n = len(log_probs)
    old = torch.tensor(log_probs, dtype=torch.float32)[:, None].expand(n, length).clone()
    return Rollout(torch.full((n, 3), 7), torch.ones(n, 3), torch.full((n, length), 5), torch.ones(n, length),
                   old, torch.full((n, length), 0.3), list(names or [f"r{i}" for i in range(n)]),
                   torch.zeros(n, dtype=torch.long))


def context(state, step, score=None):
    return BatchContext(None, G, False, 0, step=step, state=state, score=score)


def store_step(state, step, config, rewards=(1.0, 0.0, 0.0, 0.0)):
    R = torch.tensor(rewards, dtype=torch.float32)
    A, _ = group_advantages(R, G, scale_by_std=False)
    store(state, rows([-1.0] * len(R), [f"s{step}_{i}" for i in range(len(R))]), R, A,
          torch.ones(len(R), dtype=torch.bool), config, step, G)


def hand_state():
    """History means [.25, .5, 0, 1] -> P50 .375; stds [.5, .2, .1, .4] -> P50 .3. Buffer: a step-148
    entry (R = 1, 1, .25) and a step-149 entry (R = 1, 1)."""
    state = SPEARState()
    state.mean_history = [(148, [0.25, 0.5]), (149, [0.0, 1.0])]
    state.std_history = [(148, [0.5, 0.2]), (149, [0.1, 0.4])]
    state.buffer = [
        (148, rows([-1.5] * 3, ["s0", "s1", "s2"]), torch.tensor([1.0, 1.0, 0.25]), torch.tensor([.75, .5, .5])),
        (149, rows([-2.5] * 2, ["t0", "t1"]), torch.tensor([1.0, 1.0]), torch.tensor([.5, .5]))]
    return state


def test_cosine_schedules_hand_values():
    assert replay_weight(0, 1.0, 300) == 0.0
    assert replay_weight(75, 1.0, 300) == pytest.approx((1 - math.sqrt(0.5)) / 2)      # 0.1464
    assert replay_weight(150, 1.0, 300) == pytest.approx(0.5)
    assert replay_weight(300, 1.0, 300) == pytest.approx(1.0)
    assert replay_weight(400, 2.0, 300) == 2.0                                          # coef after T_r
    assert toolcall_weight(100, "cosine", 200) == pytest.approx(0.5)
    assert toolcall_weight(200, "cosine", 200) == pytest.approx(0.0)
    assert toolcall_weight(201, "cosine", 200) == 0.0
    assert toolcall_weight(999, "constant", 200) == 1.0 and toolcall_weight(1, "none", 200) == 0.0
    with pytest.raises(ValueError, match="use_toolcall_reward 'cos'.*none, constant, cosine"):
        toolcall_weight(1, "cos", 200)


def test_store_keeps_rows_with_positive_advantage_and_the_group_statistics():
    # groups (1, 0, 0, 0) and (1, 1, 0, 0): A = R - mean = (.75, -.25, -.25, -.25), (.5, .5, -.5, -.5)
    state = SPEARState()
    store_step(state, 1, SPEARConfig(), rewards=(1, 0, 0, 0, 1, 1, 0, 0))
    (step, stored, R, A), = state.buffer
    assert step == 1 and stored.completions == ["s1_0", "s1_4", "s1_5"]
    assert R.tolist() == [1, 1, 1] and A.tolist() == [.75, .5, .5]
    assert state.mean_history == [(1, [0.25, 0.5])]
    # unbiased stds: sqrt((.75² + 3·.25²)/3) = .5 and sqrt(4·.25/3) = .5774
    assert state.std_history[0][1] == pytest.approx([0.5, math.sqrt(1 / 3)])
    store_step(state, 2, SPEARConfig(), rewards=(1, 1, 1, 1))                 # all equal: A = 0, nothing stored
    assert [e[0] for e in state.buffer] == [1] and len(state.mean_history) == 2


def test_expiry_counts_from_the_newest_entry_and_is_capped_at_ten():
    config, state = SPEARConfig(trajectory_tolerate_steps=2), SPEARState()
    for step in range(1, 6):
        store_step(state, step, config)
    # storing step 5 first dropped entries more than 2 steps older than the newest (4): step 1
    assert [e[0] for e in state.buffer] == [2, 3, 4, 5]
    store_step(state, 6, config, rewards=(0, 0, 0, 0))                       # stores nothing
    store_step(state, 7, config, rewards=(0, 0, 0, 0))
    assert [e[0] for e in state.buffer] == [3, 4, 5]                         # newest is still 5
    config, state = SPEARConfig(trajectory_tolerate_steps=50), SPEARState()
    for step in range(1, 14):
        store_step(state, step, config)
    assert [e[0] for e in state.buffer] == list(range(2, 14))                # min(50, 10) = 10


def test_baseline_history_drops_whole_steps_once_over_its_size():
    config, state = SPEARConfig(baseline_buffer_size=4), SPEARState()
    for step in range(1, 5):                                                 # two groups a step
        store_step(state, step, config, rewards=(1, 0, 0, 0, 1, 1, 0, 0))
    # step 3 appends to a full history of 4 (not more than 4); step 4 first drops step 1
    assert [s for s, _ in state.mean_history] == [2, 3, 4] == [s for s, _ in state.std_history]


def test_p50_recalibration_hand_numbers():
    state = hand_state()
    assert baseline(state) == pytest.approx((0.375, 0.3))
    R, A_old = torch.tensor([1.0, 0.5, 0.25]), torch.tensor([0.75, 0.5, 0.5])
    torch.testing.assert_close(recalibrate(R, A_old, state, SPEARConfig(), False), torch.tensor([.625, .125, -.125]))
    torch.testing.assert_close(recalibrate(R, A_old, state, SPEARConfig(), True),
                               torch.tensor([.625, .125, -.125]) / (0.3 + 1e-6))
    decay = SPEARConfig(weight_decay_trajectory_replay=0.9)
    torch.testing.assert_close(recalibrate(R, A_old, state, decay, False), torch.tensor([.675, .45, .45]))
    assert n_ready(state, SPEARConfig()) == 4 and n_ready(state, decay) == 5  # R > .375 / every row


def test_flush_needs_more_than_one_and_a_half_buffers_and_replays_a_power_of_two():
    state = hand_state()                                                     # 4 rows ready
    assert take_replay(state, SPEARConfig(trajectory_buffer_size=3), context(state, 150)) is None   # 4 ≤ 4.5
    assert len(state.buffer) == 2                                            # untouched
    torch.manual_seed(0)
    replay, A, age = take_replay(state, SPEARConfig(trajectory_buffer_size=2), context(state, 150))  # 4 > 3
    assert len(replay) == 2 and state.buffer == []                           # min(2^2, 2) rows; buffer emptied
    assert set(replay.completions) <= {"s0", "s1", "t0", "t1"}               # s2 (R = .25 < .375) never
    assert A.tolist() == [0.625, 0.625]
    assert age.tolist() == [2.0 if name[0] == "s" else 1.0 for name in replay.completions]
    # 31 rows ready, S = 20: 31 > 30 flushes 2^4 = 16 (< S) rows
    state = hand_state()
    state.buffer = [(149, rows([-1.0] * 31), torch.ones(31), torch.ones(31))]
    replay, A, _ = take_replay(state, SPEARConfig(trajectory_buffer_size=20), context(state, 150))
    assert len(replay) == 16


def test_batch_appends_replay_with_weighted_advantage_and_stores_the_step():
    # step 150 of T_r = 300: c = .5. The flush replays 2 of the 4 ready rows with A = 1 - .375.
    state, config = hand_state(), SPEARConfig(trajectory_buffer_size=2)
    batch, R = rows([-1.0] * 4), torch.tensor([1.0, 0.0, 0.0, 0.0])
    A = torch.tensor([0.75, -0.25, -0.25, -0.25])
    torch.manual_seed(0)
    out, out_adv, metrics = spear_batch(batch, R, A, config, context(state, 150))
    assert len(out) == 6 and out.completions[:4] == batch.completions
    torch.testing.assert_close(out_adv, torch.tensor([.75, -.25, -.25, -.25, .3125, .3125]))
    assert (out_adv[4:] > 0).all()                                           # only A > 0 is replayed
    # old log-probs as stored when sampled (official): -1.5 for step 148's rows, -2.5 for 149's
    expected = [-1.5 if name[0] == "s" else -2.5 for name in out.completions[4:]]
    assert out.old_log_prob[4:, 0].tolist() == expected
    torch.testing.assert_close(state.replay_keys, out.old_log_prob[4:])
    assert state.replay_weight == pytest.approx(0.5)
    # this step is stored after the flush: one row (A = .75); history P50 of [.25,.5,0,1,.25] = .25
    assert [(e[0], e[1].completions) for e in state.buffer] == [(150, ["r0"])]
    assert metrics == {"toolcall_bonus": 0.0, "replay_adv": 0.625, "replay_age": pytest.approx(sum(
        2.0 if n[0] == "s" else 1.0 for n in out.completions[4:]) / 2), "buffer_rows": 1.0, "buffer_ready": 1.0,
        "baseline": 0.25, "replay_rows": 2.0, "replay_weight": pytest.approx(0.5)}


def test_rescore_replay_takes_the_current_policys_log_probs():
    state, config = hand_state(), SPEARConfig(trajectory_buffer_size=2, rescore_replay=True)
    score = lambda ro: dataclasses.replace(ro, old_log_prob=torch.full_like(ro.old_log_prob, -9.0))  # noqa: E731
    out, _, _ = spear_batch(rows([-1.0] * 4), torch.tensor([1.0, 0, 0, 0]), torch.tensor([.75, -.25, -.25, -.25]),
                            config, context(state, 150, score))
    assert out.old_log_prob[4:].eq(-9.0).all() and out.old_log_prob[:4].eq(-1.0).all()
    assert state.replay_keys.eq(-9.0).all()


def test_weighting_through_the_advantage_equals_the_weighted_sum_of_two_losses():
    # PPO-clip is positively homogeneous in A, and Σ M ℓ / L adds over rows: one batch with c·A on
    # the replayed rows = L_on + c·L_replay, in value and gradient (Clip-Cov off to compare exactly).
    torch.manual_seed(1)
    old = -torch.rand(6, 3) * 2
    logp = (old + (torch.rand(6, 3) - 0.5)).requires_grad_(True)           # ratios across both clip edges
    mask = torch.ones(6, 3)
    mask[1, 2] = 0
    A_on, A_rep, c = torch.tensor([1.0, -0.5, 0.25, -1.0]), torch.tensor([0.6, 0.2]), 0.3
    config = SPEARConfig(clip_cov_ratio=0.0, loss_scale_factor=5.0)

    def loss(r, adv):
        return spear_loss(logp[r], old[r], adv[:, None].expand(-1, 3), mask[r], config=config)[0]
    mixed = loss(slice(0, 6), torch.cat([A_on, c * A_rep]))
    split = loss(slice(0, 4), A_on) + c * loss(slice(4, 6), A_rep)
    torch.testing.assert_close(mixed, split)
    torch.testing.assert_close(torch.autograd.grad(mixed, logp)[0], torch.autograd.grad(split, logp)[0])


def test_replayed_rows_are_found_by_their_old_log_probs_despite_trimmed_padding():
    keys = torch.tensor([[-1.0, -2.0, 0.0]])
    assert replayed_rows(torch.tensor([[-1.0, -2.0], [-1.0, -3.0]]), keys).tolist() == [True, False]
    assert replayed_rows(torch.zeros(2, 2), None).tolist() == [False, False]


def test_clip_cov_on_replayed_rows_ranks_the_unweighted_advantage_with_its_own_keys():
    # row 0 on-policy (A = 1); rows 1, 2 replayed with c = .25: A = c·(2, 1). On the unweighted A,
    # logp - mean = ±1 and A - mean = ±.5: Cov = .5 on all 4 replayed tokens, inside (.3, 1);
    # on the weighted A it would be .125, outside. Ratio 1 detaches every candidate.
    logp = torch.tensor([[-0.5, -0.5], [-1.0, -1.0], [-3.0, -3.0]])
    adv = torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]])
    state = SPEARState()
    state.replay_keys, state.replay_weight = logp[1:].clone(), 0.25
    extra = LossExtras(state=state)
    config = SPEARConfig(clip_cov_ratio=0.0, replay_clip_cov=True, clip_cov_ratio_replay=1.0,
                         clip_cov_lb_replay=0.3, clip_cov_ub_replay=1.0)
    loss, m = spear_loss(logp, logp, adv, torch.ones(3, 2), config=config, extra=extra)
    assert m["n_detached"] == 4 and m["replay_rows_mb"] == 2
    assert loss.item() == pytest.approx(-1.0)                                 # only row 0: (-1 - 1) / L = 2
    # official default: replayed rows use the on-policy keys (ratio 0 here: nothing detached)
    loss, m = spear_loss(logp, logp, adv, torch.ones(3, 2), config=dataclasses.replace(config, replay_clip_cov=False),
                         extra=extra)
    assert m["n_detached"] == 0 and loss.item() == pytest.approx((-2 - 1 - 0.5) / 2)


def test_tool_call_reward_is_inert_without_a_pattern_and_shapes_rewards_with_one():
    batch, R = rows([-1.0] * 4, ["1+2", "3", "4+5", "6"]), torch.tensor([1.0, 1.0, 0.0, 0.0])
    A, _ = group_advantages(R, G, scale_by_std=False)
    state = SPEARState()
    out, out_adv, metrics = spear_batch(batch, R, A, SPEARConfig(), context(state, 100))
    assert out_adv is A and metrics["toolcall_bonus"] == 0.0
    assert state.buffer[0][1].completions == ["1+2", "3"]                    # no tools: every A > 0 row
    # one call each in rows 0 and 2; w(100 of 200) = .5: bonus .05 -> R' = (1.05, 1, .05, 0), mean .525
    state = SPEARState()
    out, out_adv, metrics = spear_batch(batch, R, A, SPEARConfig(tool_call_pattern=r"\+"), context(state, 100))
    torch.testing.assert_close(out_adv, torch.tensor([.525, .475, -.475, -.525]))
    assert metrics["toolcall_bonus"] == pytest.approx(0.025)
    assert state.buffer[0][1].completions == ["1+2"] and state.buffer[0][2].tolist() == pytest.approx([1.05])
    state = SPEARState()
    spear_batch(batch, R, A, SPEARConfig(tool_call_pattern=r"\+", require_tool_call=False), context(state, 100))
    assert state.buffer[0][1].completions == ["1+2", "3"]


def test_trains_by_name_with_dr_bot_defaults(tmp_path):
    assert get_method("spear").make_config({"trajectory_buffer_size": "8"}).trajectory_buffer_size == 8
    config = make_config("smoke", method="spear", steps=3, prompts_per_step=8, eval_every=100, eval_prompts=8,
                         checkpoint_every=1)
    assert config.scale_adv_by_std is False and get_method("spear").default_agg_mode == "seq-sum-token-sum-norm"
    rows_ = train(config, tmp_path / "run", progress=False)
    assert [r["step"] for r in rows_] == [0, 1, 2, 3]
    for key in ("buffer_rows", "buffer_ready", "baseline", "replay_rows", "replay_weight", "replay_ppo_kl"):
        assert all(r[f"spear/{key}"] is not None for r in rows_[1:])
    assert rows_[1]["spear/replay_rows"] == 0 and rows_[1]["spear/buffer_rows"] > 0   # nothing to replay yet
    assert rows_[3]["spear/replay_weight"] == pytest.approx(replay_weight(3, 1.0, 300))


def test_resume_restores_the_buffer(tmp_path):
    # S = 4 flushes every step, so step 3 replays rows that step 2 stored
    config = make_config("smoke", method="spear", steps=3, prompts_per_step=8, eval_every=100, eval_prompts=8,
                         checkpoint_every=1, method_settings={"trajectory_buffer_size": "4",
                                                              "max_replay_loss_steps": "3"})
    full = train(config, tmp_path / "full", progress=False)
    assert full[-1]["spear/replay_rows"] == 4
    train(dataclasses.replace(config, steps=2), tmp_path / "cut", progress=False)
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    for key in ("pg_loss", "entropy", "spear/replay_adv", "spear/replay_age", "spear/buffer_rows", "spear/baseline",
                "spear/replay_ppo_kl"):
        assert resumed[-1][key] == pytest.approx(full[-1][key], rel=1e-5, abs=1e-7), key


def test_tool_call_reward_counts_the_tool_tasks_own_calls():
    from minirl.tasks import get_task

    texts = ["[3*5]=15;[15+7]=22;#22", "3*5=15;#15", "[3*5]=15;#15", "[3*x]=?;#0"]
    batch, R = rows([-1.0] * 4, texts), torch.tensor([1.0, 0.0, 0.0, 0.0])
    A, _ = group_advantages(R, G, scale_by_std=False)
    state, ctx = SPEARState(), context(SPEARState(), 0)
    ctx.state, ctx.task = state, get_task("countdown_tool")
    # calls 2, 0, 1, 0 (a malformed call is not one); w(0) = 1: bonus .2, 0, .1, 0
    _, _, metrics = spear_batch(batch, R, A, SPEARConfig(), ctx)
    assert metrics["toolcall_bonus"] == pytest.approx(0.3 / 4)
    assert state.buffer[0][1].completions == ["[3*5]=15;[15+7]=22;#22"] and state.buffer[0][2].tolist() == pytest.approx([1.2])
