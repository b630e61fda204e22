"""CURE (Li et al., arXiv 2508.11016): each response is cut before a high-entropy critical token, n2 continuations are
sampled from there, and originals + continuations form one group; stage 2 is DAPO."""
import pytest
import torch

from minirl.branching import prefix_into_prompt
from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.cure import CUREConfig, critical_positions, cure_batch
from minirl.rollout import Rollout, policy_forward
from minirl.trainer import Trainer, train

PAD, EOS = 0, 1
CHARS = {0: "<pad>", 1: "<eos>", 2: " ", 3: "+", **{4 + d: str(d) for d in range(10)}}


class CharTokenizer:
    """A character vocabulary like the tiny model's: pad 0, eos 1, ' ', '+', digits 4..13."""
    all_special_ids, eos_token_id, pad_token_id = [PAD, EOS], EOS, PAD

    def decode(self, ids):
        return "".join(CHARS[t] for t in ids if t not in (PAD, EOS))


def make_rollout(prompts, responses, entropy, log_prob=None, prefix_len=None, texts=None):
    """Rows from token lists: prompts left-padded, responses right-padded; entropy[i] is a list
    (one value per response token) or a number (every token)."""
    B, P, T = len(prompts), max(map(len, prompts)), max(map(len, responses))
    prompt_ids, prompt_mask = torch.full((B, P), PAD), torch.zeros(B, P)
    response_ids, mask, H, logp = torch.full((B, T), PAD), torch.zeros(B, T), torch.zeros(B, T), torch.zeros(B, T)
    entropy = entropy if isinstance(entropy, list) else [entropy] * B
    for i, (p, r) in enumerate(zip(prompts, responses)):
        prompt_ids[i, P - len(p):], prompt_mask[i, P - len(p):] = torch.tensor(p), 1
        response_ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
        H[i, :len(r)] = torch.tensor(entropy[i] if isinstance(entropy[i], list) else [entropy[i]] * len(r))
        logp[i, :len(r)] = -0.1 * torch.arange(1, len(r) + 1) - i       # distinct, to follow rows around
    tok = CharTokenizer()
    return Rollout(prompt_ids, prompt_mask, response_ids, mask, logp if log_prob is None else log_prob, H,
                   texts or [tok.decode(r) for r in responses], torch.tensor(prefix_len or [0] * B))


def fake_context(batch, prompts, new_tokens, new_rewards, step=1, group_size=2, calls=None):
    """continue_rows appends new_tokens[k] + EOS to the prefix of continuation k (k counts all
    continuations in order); its rewards are new_rewards. sample() returns fixed rows."""
    calls = [] if calls is None else calls

    def continue_rows(rows, prefix_ids, n, temperature=None):
        calls.append(("continue", list(rows), [list(p) for p in prefix_ids], n))
        responses = [list(p) + new_tokens[k] + [EOS] for k, (p) in enumerate(x for x in prefix_ids for _ in range(n))]
        out = make_rollout([prompts[r] for r in rows for _ in range(n)], responses, 0.5,
                           prefix_len=[len(p) for p in prefix_ids for _ in range(n)])
        return out, torch.tensor(new_rewards, dtype=torch.float32)

    def sample(groups, temperature):
        calls.append(("sample", list(groups), temperature))
        rows = [g * group_size for g in groups for _ in range(group_size)]
        return make_rollout([prompts[r] for r in rows], [[5, EOS]] * len(rows), 0.5), torch.tensor(new_rewards)
    return BatchContext(sample, group_size, True, PAD, step=step, continue_rows=continue_rows,
                        tokenizer=CharTokenizer())


# ------------------------------------------------------------------ critical token choice
def test_critical_token_is_drawn_among_the_top_k_valid_positions():
    # row 0 "1+2<eos>": position 0 is skipped (code), the EOS is special → candidates 1 ('+', H .8), 2 ('2', H .3)
    # row 1 " 3<eos>": the space is whitespace (0 chars) → only position 1 ('3')
    # row 2 "7<eos>": nothing left after position 0 and EOS → fallback t* = 0
    batch = make_rollout([[9]] * 3, [[5, 3, 6, EOS], [2, 7, EOS], [11, EOS]],
                         [[.9, .8, .3, .95], [.1, .2, .99], [.9, .9]])
    t_star, fallback = critical_positions(batch, CUREConfig(critical_top_k=1), CharTokenizer())
    assert t_star == [1, 1, 0] and fallback == 1
    torch.manual_seed(0)
    drawn = {critical_positions(batch, CUREConfig(critical_top_k=2), CharTokenizer())[0][0] for _ in range(50)}
    assert drawn == {1, 2}                                            # uniform among the top 2, both seen
    # the official filter (text longer than one character) leaves nothing on a character vocabulary
    t_star, fallback = critical_positions(batch, CUREConfig(critical_min_chars=2), CharTokenizer())
    assert t_star == [0, 0, 0] and fallback == 3


def test_random_critical_token_type_ignores_entropy_but_keeps_the_filter():
    batch = make_rollout([[9]], [[5, 3, 6, 7, EOS]], [[.9, .0, .0, .99, .99]])
    torch.manual_seed(1)
    drawn = {critical_positions(batch, CUREConfig(critical_top_k=1, critical_token_type="random"),
                                CharTokenizer())[0][0] for _ in range(60)}
    assert drawn == {1, 2, 3}                                         # never 0, never the EOS


# ------------------------------------------------------------------ stage 1 batch
def test_stage_one_trains_originals_and_branches_as_one_group_on_new_tokens_only():
    # 2 prompts × n1 = 2 originals, n2 = 2; critical_top_k = 1 makes t* the argmax over valid positions:
    # row 0 "1+2": t* = 1 ('+', H .8); row 1 "34": t* = 1; row 2 "5+": t* = 1; row 3 "6": none → 0
    prompts = [[9, 9], [9, 9], [8], [8]]
    batch = make_rollout(prompts, [[5, 3, 6, EOS], [7, 8, EOS], [9, 3, EOS], [10, EOS]],
                         [[.9, .8, .3, .1], [.5, .6, .1], [.4, .7, .2], [.3, .1]])
    rewards = torch.tensor([1., 0., 0., 0.])
    new = [[12], [13, 4], [12], [4], [5], [6], [7], [8]]               # new tokens of the 8 continuations
    branch_rewards = [1., 1., 0., 0., 0., 0., 0., 0.]
    calls = []
    out, adv, metrics = cure_batch(batch, rewards, torch.zeros(4), CUREConfig(n2=2, critical_top_k=1),
                                   fake_context(batch, prompts, new, branch_rewards, calls=calls))
    assert calls == [("continue", [0, 1, 2, 3], [[5], [7], [9], []], 2)]
    # one group of n1(1 + n2) = 6 per prompt: originals first, then their branches
    assert len(out) == 12
    assert out.completions[:6] == ["1+2", "34", "18", "190", "38", "30"]
    # a branch's response is only its new tokens + EOS; the prefix moved to the end of the prompt
    assert out.response_ids[2].tolist()[:2] == [12, EOS] and out.response_mask[2].sum() == 2
    assert out.prompt_ids[2, -3:].tolist() == [9, 9, 5] and out.prompt_mask[2].sum() == 3
    assert out.response_mask[3].sum() == 3 and out.prompt_ids[5, -3:].tolist() == [9, 9, 7]
    assert out.response_mask[11].sum() == 2 and out.prompt_mask[11].sum() == 1     # t* = 0: no prefix
    assert out.prefix_len.tolist() == [0] * 12
    # the originals keep their log-probs; a branch keeps those of its new tokens only
    torch.testing.assert_close(out.old_log_prob[0], batch.old_log_prob[0])
    # group 0 rewards (1, 0 | 1, 1, 0, 0): mean .5, unbiased std √(1.5/5) → A = ±.5/.5477 = ±.9129
    a = 0.5 / (1.5 / 5) ** 0.5
    torch.testing.assert_close(adv[:6], torch.tensor([a, -a, a, a, -a, -a]), atol=1e-4, rtol=0)
    assert adv[6:].eq(0).all()                                        # group 1: all 0 → no signal
    assert metrics["stage"] == 1.0 and metrics["critical_pos"] == 0.75 and metrics["fallback_frac"] == 0.25
    assert metrics["critical_entropy"] == pytest.approx((.8 + .6 + .7 + .3) / 4)
    assert metrics["group_all_equal"] == 0.5 and metrics["branch_accuracy"] == 0.25
    # sampled: 4 + 3 + 3 + 2 = 12 original tokens; branches: new tokens + EOS = 2+3+2+2+2+2+2+2 = 17
    assert metrics["extra_tokens"] == 17.0 and metrics["tokens_sampled"] == 29.0


def test_moving_the_prefix_into_the_prompt_leaves_the_policy_s_log_probs_unchanged():
    """The invariant behind "branches train only on new tokens": the moved row predicts its new
    tokens exactly as the full row did, so nothing but the loss mask changes."""
    trainer = Trainer(make_config("smoke", method="cure", prompts_per_step=2, eval_prompts=8))
    tokenize = lambda text: trainer.tokenizer(text, add_special_tokens=False)["input_ids"]   # noqa: E731
    full = make_rollout([tokenize("3,4,5>23=")], [tokenize("4*5+3") + [trainer.tokenizer.eos_token_id]], 0.0,
                        prefix_len=[2], texts=["4*5+3"])
    moved = prefix_into_prompt(full, trainer.tokenizer.pad_token_id)
    with torch.no_grad():
        a = policy_forward(trainer.model, full.prompt_ids, full.prompt_mask, full.response_ids)[:, 2:]
        b = policy_forward(trainer.model, moved.prompt_ids, moved.prompt_mask, moved.response_ids)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert moved.response_mask.sum() == 4 and moved.completions == full.completions


# ------------------------------------------------------------------ stage 2 and settings
def test_stage_two_is_dapo_topped_up_to_the_same_group_size():
    prompts = [[9], [9], [8], [8]]
    batch = make_rollout(prompts, [[5, EOS]] * 4, 0.3)
    calls = []
    ctx = fake_context(batch, prompts, [], [1., 0., 0., 0., 0., 0., 0., 0.], step=4, calls=calls)
    out, adv, metrics = cure_batch(batch, torch.tensor([1., 1., 0., 0.]), torch.zeros(4),
                                   CUREConfig(n2=2, stage1_steps=3), ctx)
    assert calls == [("sample", [0, 0, 1, 1], None)] and len(out) == 12 and metrics["stage"] == 2.0
    # group 0 (1, 1 | 1, 0, 0, 0): mean 1/2, std √(1.5/5): A = ±.9129; group 1 (0, 0 | 0 ×4): 0
    a = 0.5 / (1.5 / 5) ** 0.5
    torch.testing.assert_close(adv, torch.tensor([a, a, a, -a, -a, -a] + [0.] * 6), atol=1e-4, rtol=0)
    same, same_adv, metrics = cure_batch(batch, torch.zeros(4), torch.ones(4),
                                         CUREConfig(stage1_steps=3, stage2_match_budget=False), ctx)
    assert same is batch and same_adv.eq(1).all() and metrics["tokens_sampled"] == 8.0


@pytest.mark.parametrize("setting, message", [
    ({"critical_token_type": "max"}, "critical_token_type 'max'.*entropy, random"),
    ({"n2": 0}, "n2 must be at least 1"),
    ({"critical_top_k": 0}, "critical_top_k must be at least 1"),
    ({"stage1_steps": -1}, "stage1_steps must be >= 0")])
def test_bad_settings_are_named(setting, message):
    batch = make_rollout([[9], [9]], [[5, EOS]] * 2, 0.3)
    with pytest.raises(ValueError, match=message):
        cure_batch(batch, torch.zeros(2), torch.zeros(2), CUREConfig(**setting), fake_context(batch, [[9]] * 2, [], []))


def test_cure_defaults_map_n1_to_the_group_size_and_turn_on_dapo():
    config = make_config("smoke", method="cure")
    assert config.group_size == 4 and config.dynamic_sampling
    method_config = get_method("cure").make_config({"n2": "2", "critical_top_k": "2"})
    assert (method_config.n2, method_config.critical_top_k, method_config.clip_ratio_high) == (2, 2, 0.28)


def test_runs_by_name_switches_stage_and_resumes_across_the_switch(tmp_path):
    rows = train(make_config("smoke", method="cure", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8),
                 tmp_path / "run", progress=False)
    assert [r["cure/stage"] for r in rows[1:]] == [1.0, 1.0]
    assert rows[-1]["cure/tokens_sampled"] > rows[-1]["response_len"] * 8 * 4          # branches were sampled
    config = make_config("smoke", method="cure", steps=3, prompts_per_step=4, eval_every=100, eval_prompts=8,
                         checkpoint_every=1, method_settings={"stage1_steps": "1"})
    full = train(config, tmp_path / "full", progress=False)
    assert [r["cure/stage"] for r in full[1:]] == [1.0, 2.0, 2.0]
    train(config.__class__(**{**config.to_dict(), "steps": 1}), tmp_path / "cut", progress=False)
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    assert [r["cure/stage"] for r in resumed[-2:]] == [2.0, 2.0]
    assert resumed[-1]["entropy"] == pytest.approx(full[-1]["entropy"])
    assert resumed[-1]["cure/tokens_sampled"] == full[-1]["cure/tokens_sampled"]
