"""Arbitrary-entropy AEPO (Wang et al., arXiv 2510.08141): a bang-bang controller picks T_high or T_low from the last
entropy; kept temperature samples (group advantage > 0.05) replace the first m rows of the batch
with advantage 1."""
import pytest
import torch

from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.aepo import AEPOConfig, AEPOState, aepo_batch
from minirl.rollout import Rollout, gather_log_prob, policy_forward
from minirl.trainer import Trainer, train

G = 4


def fake_rollout(n_rows, log_prob, length=2, token=5):
    """n_rows rows of `length` response tokens, every token with log-prob `log_prob`."""
    mask = torch.ones(n_rows, length)
    return Rollout(torch.full((n_rows, 3), 7), torch.ones(n_rows, 3), torch.full((n_rows, length), token),
                   mask, torch.full((n_rows, length), log_prob), torch.full((n_rows, length), 0.3),
                   [f"r{i}" for i in range(n_rows)], torch.zeros(n_rows, dtype=torch.long))


def context(state, extra_rewards, calls):
    def sample(groups, temperature):
        calls.append((groups, temperature))
        return fake_rollout(len(groups) * G, -2.0, token=9), torch.tensor(extra_rewards)
    return BatchContext(sample, G, True, 0, step=1, state=state)


def test_heating_replaces_the_first_rows_with_kept_samples():
    # 2 groups of 4 (B = 8), log π = −1 everywhere; a quarter of 2 prompts is 0 → one prompt is resampled.
    # Its rewards (1, 0, 1, 0): mean .5, unbiased std .577 → A = ±.866; kept: rows 0 and 2.
    # H = 0 ≤ .5 → heat at T = 1.2, m = min(60, 2) = 2: rows 0, 1 of the batch become extra rows 0, 2.
    state, calls = AEPOState(), []
    batch, adv = fake_rollout(8, -1.0), torch.arange(8, dtype=torch.float32) / 10
    out, out_adv, metrics = aepo_batch(batch, torch.zeros(8), adv, AEPOConfig(), context(state, [1., 0., 1., 0.], calls))
    assert calls == [([0], 1.2)]
    assert out.completions == ["r0", "r2", "r2", "r3", "r4", "r5", "r6", "r7"]
    assert out.response_ids[:2].eq(9).all() and out.response_ids[2:].eq(5).all()
    torch.testing.assert_close(out_adv, torch.tensor([1., 1., .2, .3, .4, .5, .6, .7]))
    # the next step's H: −mean log π of the mixed batch = (2·2 + 6·1)/8 = 1.25
    assert state.entropy == pytest.approx(1.25)
    assert metrics == {"temperature": 1.2, "replaced": 2.0, "kept_frac": 0.5, "extra_accuracy": 0.5,
                       "controller_entropy": pytest.approx(1.25)}


def test_cooling_halves_m_and_full_entropy_is_an_option():
    state, calls = AEPOState(), []
    state.entropy = 0.9                                                        # above the target 0.5
    config = AEPOConfig(controller_entropy="full")
    out, out_adv, metrics = aepo_batch(fake_rollout(8, -1.0), torch.zeros(8), torch.zeros(8), config,
                                       context(state, [1., 0., 1., 0.], calls))
    assert calls == [([0], 0.8)] and metrics["replaced"] == 1.0                # 2 kept // 2
    torch.testing.assert_close(out_adv, torch.tensor([1., 0, 0, 0, 0, 0, 0, 0]))
    assert state.entropy == pytest.approx(0.3)                                 # the rows' full entropy


def test_all_equal_extra_group_keeps_the_batch_and_caps_follow_the_settings():
    state, calls = AEPOState(), []
    batch, adv = fake_rollout(8, -1.0), torch.ones(8) * 0.5
    out, out_adv, metrics = aepo_batch(batch, torch.zeros(8), adv, AEPOConfig(), context(state, [1.] * 4, calls))
    assert out is batch and out_adv is adv and metrics["replaced"] == 0.0     # all A = 0: nothing kept
    # prompt_fraction 1 resamples both prompts; reinforce_sample_num 1 caps m
    out, out_adv, metrics = aepo_batch(batch, torch.zeros(8), adv,
                                       AEPOConfig(prompt_fraction=1.0, reinforce_sample_num=1),
                                       context(AEPOState(), [1., 0, 0, 0, 0, 0, 0, 1.], calls))
    assert calls[-1] == ([0, 1], 1.2) and metrics["replaced"] == 1.0 and out_adv[0] == 1.0


def test_bad_controller_entropy_is_named():
    with pytest.raises(ValueError, match="controller_entropy 'nll'.*sampled_nll, full"):
        aepo_batch(fake_rollout(8, -1.0), torch.zeros(8), torch.zeros(8), AEPOConfig(controller_entropy="nll"),
                   context(AEPOState(), [1.] * 4, []))


def test_extra_samples_are_scored_at_the_training_temperature():
    config = make_config("smoke", method="aepo", steps=1, prompts_per_step=4, eval_prompts=8)
    trainer = Trainer(config)
    examples = trainer.task.train[:2]
    hot, rewards = trainer.sampler().more([examples[1]], 3.0)
    assert len(hot) == G * 2 and rewards.shape == (len(hot),)
    assert all(r == trainer.task.reward(t, examples[1]) for r, t in zip(rewards.tolist(), hot.completions))
    logits = policy_forward(trainer.model, hot.prompt_ids, hot.prompt_mask, hot.response_ids, 1.0)
    torch.testing.assert_close(hot.old_log_prob, gather_log_prob(logits, hot.response_ids) * hot.response_mask)


def test_runs_by_name_logs_its_metrics_and_resumes_its_controller(tmp_path):
    assert get_method("aepo").make_config({"entropy_base": "0.3"}).entropy_base == 0.3
    config = make_config("smoke", method="aepo", steps=3, prompts_per_step=8, eval_every=100, eval_prompts=8,
                         checkpoint_every=2, method_settings={"entropy_base": "0.3"})
    rows = train(config, tmp_path / "full", progress=False)
    assert rows[1]["aepo/temperature"] == 1.2                       # H starts at 0: the first step heats
    for row in rows[1:]:
        expected = 1.2 if row["step"] == 1 else (1.2 if prev <= 0.3 else 0.8)
        assert row["aepo/temperature"] == expected
        prev = row["aepo/controller_entropy"]
    # kill after the step-2 checkpoint and resume: the controller's memory comes back
    train(config.__class__(**{**config.to_dict(), "steps": 2}), tmp_path / "cut", progress=False)
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    assert resumed[-1]["aepo/temperature"] == rows[-1]["aepo/temperature"]
    assert resumed[-1]["entropy"] == pytest.approx(rows[-1]["entropy"])
