"""The trainer is reproducible, resumable, refuses to overwrite a run, and logs every metric."""
import json

import pytest

from minirl.config import make_config
from minirl.metrics import METRIC_KEYS, TIME_KEYS, read_metrics
from minirl.step import collect
from minirl.trainer import Trainer, train

STEPS = 6


def smoke(**overrides):
    settings = dict(steps=STEPS, prompts_per_step=8, eval_every=3, eval_prompts=16, checkpoint_every=3)
    return make_config("smoke", **{**settings, **overrides})


def without_time(rows):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]


def test_same_seed_twice_gives_identical_metrics(tmp_path):
    a = train(smoke(), tmp_path / "a", progress=False)
    b = train(smoke(), tmp_path / "b", progress=False)
    assert without_time(a) == without_time(b)
    c = train(smoke(seed=1), tmp_path / "c", progress=False)
    assert without_time(a) != without_time(c)


def test_resume_equals_uninterrupted(tmp_path):
    full = train(smoke(), tmp_path / "full", progress=False)
    # a run "killed" after its step-3 checkpoint: it went on to step 5, logged, then died
    trainer = Trainer(smoke(), out=tmp_path / "killed")
    real_step = trainer.train_step

    def dies_in_step_6():
        if trainer.step == 5:
            raise KeyboardInterrupt
        return real_step()
    trainer.train_step = dies_in_step_6
    with pytest.raises(KeyboardInterrupt):
        trainer.run(progress=False)
    rows = read_metrics(tmp_path / "killed")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    resumed = train(smoke(), tmp_path / "killed", resume=True, progress=False)
    assert resumed[0]["step"] == 4                      # restarted from the step-3 checkpoint
    assert without_time(read_metrics(tmp_path / "killed")) == without_time(full)


def test_a_run_folder_is_never_overwritten(tmp_path):
    train(smoke(steps=1), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(smoke(steps=1), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(smoke(steps=1), tmp_path / "empty", resume=True, progress=False)


def test_resume_refuses_changed_settings(tmp_path):
    train(smoke(steps=3), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(smoke(steps=4, lr=1e-3), tmp_path / "run", resume=True, progress=False)


def test_metrics_file_has_every_key_and_config(tmp_path):
    train(smoke(steps=3, kl_coef=0.1, track_entropy_change=True), tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run")
    assert all(set(METRIC_KEYS) <= set(r) for r in rows)
    step3 = rows[-1]
    for key in ("entropy", "reward", "accuracy", "pass_at_1", "pass_at_k", "response_len", "clip_frac",
                "ppo_kl", "kl_ref", "grad_norm", "cov_mean", "cov_top", "entropy_delta",
                "batch_entropy_change", "frac_all_equal_groups", "tokens_per_s", "wall_s"):
        assert step3[key] is not None, key
    assert 0 < step3["entropy"] < 5 and 0 <= step3["pass_at_1"] <= step3["pass_at_k"] <= 1
    assert step3["kl_ref"] >= 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["kl_coef"] == 0.1 and saved["method"] == "grpo"


def test_every_aggregation_mode_trains(tmp_path):
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        rows = train(smoke(steps=1, loss_agg_mode=mode), tmp_path / mode, progress=False)
        assert rows[-1]["grad_norm"] > 0


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="num_mini_batches=5 must divide"):
        Trainer(smoke(num_mini_batches=5))
    with pytest.raises(ValueError, match="choose one of: token-mean"):
        Trainer(smoke(loss_agg_mode="mean"))


def test_dynamic_sampling_keeps_the_batch_size_and_drops_equal_groups(tmp_path):
    rows = train(smoke(steps=2, dynamic_sampling=True, max_gen_batches=4), tmp_path / "run", progress=False)
    plain = train(smoke(steps=2), tmp_path / "plain", progress=False)
    for row, base in zip(rows[1:], plain[1:]):
        assert row["frac_all_equal_groups"] <= base["frac_all_equal_groups"]
        assert 1 <= row["gen_batches"] <= 4
    assert rows[1]["frac_all_equal_groups"] == 0.0 or rows[1]["gen_batches"] == 4


def test_method_state_is_driven_and_checkpointed(tmp_path):
    """A stateful method gets its state in every loss call, end_step once a step, and the
    state survives a resume."""
    from minirl.methods import METHODS, MethodState, register_method
    from minirl.methods.grpo import grpo_loss

    class Counter(MethodState):
        def __init__(self):
            self.calls, self.steps = 0, 0

        def end_step(self, metrics):
            self.steps += 1
            return {"calls": self.calls}

    @register_method("test_counter", state_cls=Counter, summary="test only")
    def counting_loss(logp, old_logp, adv, mask, agg_mode, config, extra):
        extra.state.calls += 1
        return grpo_loss(logp, old_logp, adv, mask, agg_mode, None, extra)

    try:
        rows = train(smoke(steps=3, method="test_counter"), tmp_path / "run", progress=False)
        assert [r["test_counter/calls"] for r in rows[1:]] == [4, 8, 12]     # 4 mini-batches a step
        resumed = train(smoke(steps=4, method="test_counter"), tmp_path / "run", resume=True, progress=False)
        assert resumed[-1]["test_counter/calls"] == 16
    finally:
        del METHODS["test_counter"]


def test_batch_step_can_continue_rows_from_prefixes_and_return_token_advantages(tmp_path):
    """The BatchContext a batch-level method gets: continuations of batch rows from given response
    prefixes (rows grouped n at a time, rewarded by the task), and token-level advantages (B, T)."""
    import torch

    from minirl.methods import METHODS, register_method
    from minirl.methods.grpo import grpo_loss
    seen = {}

    def branch(rollout, rewards, advantages, config, ctx):
        prefixes = [rollout.response_ids[i, :2].tolist() for i in (0, 9)]
        more, more_rewards = ctx.continue_rows([0, 9], prefixes, 3)
        seen.update(more=more, more_rewards=more_rewards, prefixes=prefixes, ctx=ctx)
        token_adv = torch.zeros_like(rollout.response_mask)
        token_adv[:, 0] = 1.0                                       # only first tokens carry advantage
        return rollout, token_adv, {"branched": float(len(more))}

    register_method("test_branch", transform_batch=branch, summary="test only")(grpo_loss)
    try:
        trainer = Trainer(smoke(method="test_branch"))
        metrics = trainer.train_step()
    finally:
        del METHODS["test_branch"]
    more, ctx = seen["more"], seen["ctx"]
    assert metrics["test_branch/branched"] == 6.0 and len(more) == 6
    assert more.prefix_len.tolist() == [2] * 6
    for row in range(6):
        assert more.response_ids[row, :2].tolist() == seen["prefixes"][row // 3]
    group = [0, 9]
    for row in range(6):                                              # rewarded against their own prompts
        example = ctx.examples[group[row // 3] // ctx.group_size]
        assert seen["more_rewards"][row].item() == trainer.task.reward(more.completions[row], example)
    assert len(ctx.examples) == trainer.config.prompts_per_step
    assert metrics["pg_loss"] != 0.0                                  # the (B, T) advantages reached the loss


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batches_accumulate_the_mini_batch_gradient(mode):
    """Splitting each mini-batch into micro-batches (3 rows: uneven parts) changes memory, not
    the update: each part's loss is weighted by its share of the aggregation's count, so the
    accumulated gradient equals the whole mini-batch's.

    The gradients are compared as the optimizer receives them, not the parameters after an
    AdamW step: Adam divides by sqrt(v), so a parameter whose gradient is near zero turns a
    float32 rounding difference (the two paths sum in different orders, and the order differs
    between CPU kernels: AVX2, AVX512, default) into a visible step. Float32 sums of ~10^3
    terms agree to a few 1e-7 of their scale: rtol 1e-4 and atol 1e-5 of the largest gradient
    entry leave room for that and none for a wrongly weighted part (off by 1/3 or more)."""
    import copy

    import torch

    whole = Trainer(smoke(loss_agg_mode=mode, num_mini_batches=2))
    parts = Trainer(smoke(loss_agg_mode=mode, num_mini_batches=2, micro_batch_size=3),
                    model=copy.deepcopy(whole.model), tokenizer=whole.tokenizer)
    torch.manual_seed(0)
    batch = collect(whole.sampler(), whole.task, whole.config, whole.step)
    rollout, rewards = batch.rollout, batch.rewards
    from minirl.core import group_advantages
    adv_tok = group_advantages(rewards, 8)[0][:, None] * rollout.response_mask
    results, grads = [], []
    for trainer in (whole, parts):
        seen = []                                     # the gradient of each mini-batch, after clipping
        trainer.optimizer.step = lambda seen=seen, trainer=trainer: seen.append(
            [p.grad.detach().clone() for p in trainer.model.parameters()])
        torch.manual_seed(1)
        results.append(trainer._update(rollout, adv_tok, None))
        grads.append(seen)
    assert len(grads[0]) == len(grads[1]) == 2        # two mini-batches, parameters untouched in between
    for mini_whole, mini_parts in zip(*grads):
        scale = max(g.abs().max().item() for g in mini_whole)
        assert scale > 0
        for a, b in zip(mini_whole, mini_parts):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5 * scale)
    assert results[0]["pg_loss"] == pytest.approx(results[1]["pg_loss"], abs=1e-6)
    assert results[0]["grad_norm"] == pytest.approx(results[1]["grad_norm"], rel=1e-4)


def test_tokens_sampled_counts_every_generated_token():
    """Without extra sampling it is the batch's response tokens; dynamic sampling's thrown-away
    rounds and a method's extra samples are added."""
    plain = Trainer(smoke()).train_step()
    assert plain["tokens_sampled"] == round(plain["response_len"] * 8 * 8)
    dynamic = Trainer(smoke(dynamic_sampling=True, max_gen_batches=3)).train_step()
    assert dynamic["tokens_sampled"] >= round(dynamic["response_len"] * 8 * 8)
    if dynamic["gen_batches"] > 1:
        assert dynamic["tokens_sampled"] > round(dynamic["response_len"] * 8 * 8)
    aepo = Trainer(smoke(method="aepo", method_settings={"prompt_fraction": "1"})).train_step()
    assert aepo["tokens_sampled"] > round(aepo["response_len"] * 8 * 8) * 1.5       # a second pass over all prompts


def test_continuations_stay_within_the_task_length():
    """A branch continued from a long prefix is cut at the task's max_new_tokens, prefix included."""
    trainer = Trainer(smoke())
    limit = trainer.task.max_new_tokens
    examples = trainer.task.train[:2]
    long_prefix = trainer.tokenizer("1+2+3", add_special_tokens=False)["input_ids"]
    rollout, rewards = trainer.sampler().more(examples, None, 2, [long_prefix, long_prefix, [], []])
    assert rollout.response_ids.shape[1] <= limit
    assert all(len(text) <= limit for text in rollout.completions)
    assert rollout.completions[0].startswith("1+2+3")
    assert rewards.tolist() == [trainer.task.reward(t, examples[i // 2]) for i, t in enumerate(rollout.completions)]


def test_kl_to_the_reference_is_aggregated_like_the_methods_loss():
    """With seq-mean-token-sum-norm the β·KL term is divided by the same rows · L_const as the policy
    loss (L_const: the task's max_new_tokens), not by the padded length of the mini-batch."""
    import torch

    from minirl.core import kl_penalty, masked_mean

    trainer = Trainer(smoke(method="dr_grpo", kl_coef=1.0))
    with torch.no_grad():                                  # move the policy away from its frozen reference
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.manual_seed(0)
    rollout = collect(trainer.sampler(), trainer.task, trainer.config, trainer.step).rollout
    ref = trainer._ref_log_prob(rollout)
    lengths = rollout.response_mask.sum(dim=1)
    rows = (lengths < lengths.max()).nonzero().squeeze(-1)          # shorter than the longest: T < L_const
    rollout, ref = rollout.select(rows), ref[rows]
    rows = torch.arange(len(rollout))
    zero_adv = torch.zeros_like(rollout.response_mask)    # the policy loss vanishes: only β·KL is left
    loss, metrics = trainer._loss(rollout, rows, zero_adv, ref, {})
    T = int(rollout.response_mask.nonzero()[:, 1].max()) + 1
    from minirl.rollout import gather_log_prob, policy_forward
    logits = policy_forward(trainer.model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids[:, :T], 1.0)
    kl = kl_penalty(gather_log_prob(logits, rollout.response_ids[:, :T]), ref[:, :T], trainer.config.kl_estimator)
    mask = rollout.response_mask[:, :T]
    expected = (kl * mask).sum() / trainer.task.max_new_tokens / len(rows)     # every row holds a token
    assert T < trainer.task.max_new_tokens                 # so the two divisors differ
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert metrics["kl_ref"] == pytest.approx(masked_mean(kl, mask).item(), rel=1e-4)
