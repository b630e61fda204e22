"""ETTRL (Liu et al., arXiv 2508.11356): roots fork at their highest-entropy tokens into a tree, the leaves' majority
answer is the pseudo-label (label-free), and EAR rescales each leaf's advantage by its entropy."""
import pytest
import torch

from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.ettrl import ETTRLConfig, entropy_reshape, ettrl_batch, fork_points, majority_rewards
from minirl.rollout import Rollout
from minirl.trainer import train

PAD, EOS = 0, 1


class Tokenizer:
    eos_token_id, pad_token_id, all_special_ids = EOS, PAD, [PAD, EOS]


def make_rollout(prompts, responses, entropy, texts, prefix_len=None):
    """Rows from token lists (prompts left-padded, responses right-padded); entropy[i]: one value
    per response token, or one number for all of them."""
    B, P, T = len(prompts), max(map(len, prompts)), max(map(len, responses))
    prompt_ids, prompt_mask = torch.full((B, P), PAD), torch.zeros(B, P)
    response_ids, mask, H = torch.full((B, T), PAD), torch.zeros(B, T), torch.zeros(B, T)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        prompt_ids[i, P - len(p):], prompt_mask[i, P - len(p):] = torch.tensor(p), 1
        response_ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
        H[i, :len(r)] = torch.tensor(entropy[i] if isinstance(entropy[i], list) else [entropy[i]] * len(r))
    return Rollout(prompt_ids, prompt_mask, response_ids, mask, -H, H, list(texts), torch.tensor(prefix_len or [0] * B))


def fake_context(prompts, branch_texts, branch_rewards, group_size=2, branch_entropy=0.4, calls=None):
    """continue_rows gives continuation k the response prefix + [20 + k, EOS], the text
    branch_texts[k] and entropy `branch_entropy` on every token; answers are the texts."""
    calls = [] if calls is None else calls

    def continue_rows(rows, prefix_ids, n, temperature=None):
        calls.append((list(rows), [list(p) for p in prefix_ids], n))
        given = [list(p) for p in prefix_ids for _ in range(n)]
        responses = [p + [20 + k, EOS] for k, p in enumerate(given)]
        out = make_rollout([prompts[r] for r in rows for _ in range(n)], responses, [branch_entropy] * len(given),
                           branch_texts[:len(given)], prefix_len=[len(p) for p in given])
        return out, torch.tensor(branch_rewards[:len(given)], dtype=torch.float32)

    ctx = BatchContext(None, group_size, True, PAD, step=1, examples=["q0", "q1"], continue_rows=continue_rows,
                       tokenizer=Tokenizer())
    ctx.answer_of = lambda text, example: text or None                # the answer is the text itself
    return ctx


# ------------------------------------------------------------------ the pieces, by hand
def test_majority_vote_rewards_agreement_with_the_most_frequent_answer():
    rewards, labels = majority_rewards([5, 5, 3, None, 2, None, None, None, 3, 5, 5, 3, None, None, None, None], 4)
    assert labels == [5, 2, 3, None]                                  # a tie goes to the first seen (3)
    assert rewards.tolist() == [1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]


def test_entropy_reshaping_by_hand():
    adv = torch.tensor([1., 1., -1., -1.])
    # H = (.2, .4, .6, .8): H̄ = .5, Y = 1 + (.5 − H)/.5 = (1.6, 1.2, .8, .4)
    out, Y = entropy_reshape(adv, torch.tensor([.2, .4, .6, .8]), 4, ETTRLConfig())
    torch.testing.assert_close(Y, torch.tensor([1.6, 1.2, .8, .4]))
    torch.testing.assert_close(out, torch.tensor([1.6, 1.2, -.8, -.4]))
    # H = (.1, .1, .1, 1.3): H̄ = .4, the last Y = 1 − .9/.4 = −1.25 flips its advantage; ear_y_min stops it
    _, Y = entropy_reshape(adv, torch.tensor([.1, .1, .1, 1.3]), 4, ETTRLConfig())
    assert Y[-1].item() == pytest.approx(-1.25)
    out, Y = entropy_reshape(adv, torch.tensor([.1, .1, .1, 1.3]), 4, ETTRLConfig(ear_y_min=0.0))
    assert Y[-1] == 0 and out[-1] == 0
    # two groups of 2 are reshaped separately; a group of zero entropy keeps Y = 1
    _, Y = entropy_reshape(adv, torch.tensor([.1, .3, 0., 0.]), 2, ETTRLConfig())
    torch.testing.assert_close(Y, torch.tensor([1.5, .5, 1., 1.]))
    out, _ = entropy_reshape(torch.tensor([3., -3., 1.]), torch.ones(3), 3, ETTRLConfig(ear_mode="clip"))
    torch.testing.assert_close(out, torch.tensor([2., -2., 1.]))


def test_fork_points_are_the_top_n_entropy_positions():
    roots = make_rollout([[9]] * 3, [[5, 6, 7, EOS], [5, EOS], [EOS]],
                         [[.2, .9, .5, .7], [.3, .8], [.6]], ["a", "b", ""])
    assert fork_points(roots, ETTRLConfig(fork_top_n=2), EOS) == [[1, 3], [1, 0], [0, 0]]
    # keeping the fork token: the EOS cannot be a fork (nothing follows it); too few → reused in turn;
    # none at all → −1, a branch from the start (prefix o[:−1 + 1] = nothing)
    assert fork_points(roots, ETTRLConfig(fork_top_n=2, fork_resample_token=False), EOS) == [[1, 2], [0, 0], [-1, -1]]


# ------------------------------------------------------------------ the whole batch
def test_tree_vote_and_reshaped_advantages_by_hand():
    # one prompt, M = 2 roots, N = 1 fork, B = 2 branches → 2(1 + 1·2) = 6 leaves
    # root 0 "7" (H .2 on its 3 tokens, fork at its top position 1), root 1 "5" (H .6, top at 0)
    roots = make_rollout([[9], [9]], [[5, 6, EOS], [7, 8, EOS]], [[.2, .3, .1], [.7, .6, .5]], ["7", "5"])
    calls = []
    ctx = fake_context([[9], [9]], ["7", "7", "5", "9"], [1., 1., 0., 0.], calls=calls)
    out, adv, m = ettrl_batch(roots, torch.tensor([1., 0.]), torch.zeros(2),
                              ETTRLConfig(fork_top_n=1, branches_per_fork=2), ctx)
    assert calls == [([0, 1], [[5], []], 2)]                           # prefixes end before the fork token
    assert len(out) == 6 and out.completions == ["7", "5", "7", "7", "5", "9"]
    # votes 7: 3, 5: 2, 9: 1 → label 7, pseudo rewards (1, 0, 1, 1, 0, 0): A = ±.5/√(1.5/5) = ±.9129
    # H_i: .2, .6 (roots), .4 (branches, whole leaf); H̄ = 2.4/6 = .4 → Y = (1.5, .5, 1, 1, 1, 1)
    a = 0.5 / (1.5 / 5) ** 0.5
    torch.testing.assert_close(adv, torch.tensor([1.5 * a, -.5 * a, a, a, -a, -a]), atol=1e-4, rtol=0)
    # a leaf is trained as a whole response: the branch keeps its prefix in the response
    assert out.response_ids[2, :3].tolist() == [5, 20, EOS] and out.response_mask[2].sum() == 3
    assert m["majority_ratio"] == 0.5 and m["label_accuracy"] == 1.0 and m["reward_accuracy"] == 1.0
    assert m["unique_answers"] == 0.5 and m["leaf_accuracy"] == 0.5 and m["leaves"] == 6.0
    assert (m["y_min"], m["y_max"], m["y_negative_frac"]) == (pytest.approx(.5), pytest.approx(1.5), 0.0)
    # cost: roots 3 + 3 tokens; branches sampled 2 + 2 (from the fork of root 0) and 2 + 2 (from position 0)
    assert m["tokens_sampled"] == 14.0 and m["token_ratio"] == pytest.approx(14 / 18)


def test_branches_may_train_on_their_sampled_tokens_only_and_ttrl_is_no_forks():
    roots = make_rollout([[9], [9]], [[5, 6, EOS], [7, 8, EOS]], [[.2, .3, .1], [.7, .6, .5]], ["7", "5"])
    ctx = fake_context([[9], [9]], ["7", "7", "5", "9"], [1., 1., 0., 0.])
    out, _, _ = ettrl_batch(roots, torch.tensor([1., 0.]), torch.zeros(2),
                            ETTRLConfig(fork_top_n=1, branches_per_fork=2, train_branch_prefix=False), ctx)
    assert out.response_ids[2, :2].tolist() == [20, EOS] and out.response_mask[2].sum() == 2
    assert out.prompt_ids[2, -2:].tolist() == [9, 5]
    calls = []                                                        # N = 0: TTRL on the M roots
    out, adv, m = ettrl_batch(roots, torch.tensor([1., 0.]), torch.zeros(2), ETTRLConfig(fork_top_n=0, ear_mode="none"),
                              fake_context([[9], [9]], [], [], calls=calls))
    assert calls == [] and out is roots and m["token_ratio"] == 1.0
    # "7" vs "5": a tie goes to "7", seen first → rewards (1, 0), A = ±.5/√.5 = ±.7071
    torch.testing.assert_close(adv, torch.tensor([.7071, -.7071]), atol=1e-4, rtol=0)
    assert m["majority_ratio"] == 0.5 and m["label_accuracy"] == 1.0


def test_bad_settings_are_named():
    roots = make_rollout([[9], [9]], [[5, EOS]] * 2, [.3, .3], ["1", "1"])
    with pytest.raises(ValueError, match="ear_mode 'soft'.*res, clip, none"):
        ettrl_batch(roots, torch.zeros(2), torch.zeros(2), ETTRLConfig(ear_mode="soft"),
                    fake_context([[9]] * 2, [], []))
    with pytest.raises(ValueError, match="fork_top_n >= 0"):
        ettrl_batch(roots, torch.zeros(2), torch.zeros(2), ETTRLConfig(fork_top_n=-1), fake_context([[9]] * 2, [], []))


def test_without_the_task_s_answer_of_it_says_so():
    roots = make_rollout([[9], [9]], [[5, EOS]] * 2, [.3, .3], ["2+3", "2+3"])
    ctx = fake_context([[9]] * 2, [], [])
    ctx.answer_of = None
    with pytest.raises(ValueError, match="ettrl votes with the task's answer_of"):
        ettrl_batch(roots, torch.zeros(2), torch.zeros(2), ETTRLConfig(fork_top_n=0), ctx)


def test_runs_by_name_with_a_fixed_leaf_budget(tmp_path):
    assert get_method("ettrl").make_config({"ear_y_min": "0"}).ear_y_min == 0.0
    off = get_method("ettrl").make_config({"ear_mode": "none"})                 # the CLI reads "none" as None
    assert entropy_reshape(torch.ones(2), torch.tensor([.1, .3]), 2, off)[0].eq(1).all()
    rows = train(make_config("smoke", method="ettrl", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8),
                 tmp_path / "run", progress=False)
    for row in rows[1:]:
        assert row["ettrl/leaves"] == 8 * 8 * (1 + 2 * 2)              # P · M(1 + N·B)
        assert 0.5 < row["ettrl/token_ratio"] <= 1.0                    # forks share their prefixes
        assert 0.0 <= row["ettrl/label_accuracy"] <= 1.0 and row["ettrl/y_mean"] == pytest.approx(1.0, abs=1e-5)
