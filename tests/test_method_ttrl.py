"""TTRL (Zuo et al., arXiv 2504.16084; the base of ETTRL): reward agreement with the majority answer
of the voting samples; the label is never read, the true reward only feeds the metrics."""
import pytest
import torch

from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.ttrl import TTRLConfig, majority_vote, task_of, ttrl_batch
from minirl.rollout import Rollout
from minirl.tasks import Example, get_task
from minirl.trainer import train

G = 4
ARITH = get_task("arithmetic")
TWELVE, SEVEN = Example("3*4+0=", 12), Example("2*3+1=", 7)      # prompts of the arithmetic task


def fake_rollout(texts):
    n = len(texts)
    return Rollout(torch.full((n, 3), 7), torch.ones(n, 3), torch.full((n, 2), 5), torch.ones(n, 2),
                   torch.zeros(n, 2), torch.zeros(n, 2), list(texts), torch.zeros(n, dtype=torch.long))


def true_rewards(texts, examples):
    return torch.tensor([ARITH.reward(t, examples[i // G]) for i, t in enumerate(texts)])


def context(examples, extra_texts=None, calls=None):
    def sample(groups, temperature):
        calls.append((groups, temperature))
        rows = [examples[g] for g in groups for _ in range(G)]
        return fake_rollout(extra_texts), torch.tensor([ARITH.reward(t, e) for t, e in zip(extra_texts, rows)])
    return BatchContext(sample, G, True, 0, step=1, examples=examples, task=ARITH)


def test_majority_vote_ties_go_to_the_first_answer_and_none_abstains():
    assert majority_vote([6, 6, 7, 7]) == (6, 2)
    assert majority_vote([7, 6, 6, 7]) == (7, 2)
    assert majority_vote([None, None, 5]) == (5, 1)
    assert majority_vote([None, None, 5], abstain_none=False) == (None, 2)
    assert majority_vote([None, None]) == (None, 0)


def test_pseudo_rewards_advantages_and_metrics_by_hand():
    # group 1 (answer 12): 12, 12, 21, "x" → label 12 (2 votes) → R̂ = 1 1 0 0, which is also the truth
    # group 2 (answer 7): 6, 6, 7, 7 → a tie, 6 was met first → R̂ = 1 1 0 0, the truth is 0 0 1 1
    texts = ["12", "12", "21", "x", "6", "6", "7", "7"]
    examples = [TWELVE, SEVEN]
    rewards = true_rewards(texts, examples)
    out, A, m = ttrl_batch(fake_rollout(texts), rewards, torch.zeros(8), TTRLConfig(vote_rounds=1),
                           context(examples))
    # R̂ = (1, 1, 0, 0): mean ½, unbiased std √(4·¼/3) = 0.5774 → A = ±0.8660
    a = 0.5 / (1 / 3) ** 0.5
    torch.testing.assert_close(A, torch.tensor([a, a, -a, -a, a, a, -a, -a]), atol=1e-4, rtol=0)
    assert out.completions == texts                                 # the batch itself is unchanged
    assert m == {"label_accuracy": 0.5, "majority_ratio": 0.5, "reward_accuracy": 0.5, "pseudo_reward": 0.5,
                 "no_answer_frac": 1 / 8}


def test_extra_votes_decide_the_label_but_only_the_rollout_is_trained():
    # trained 5, 6, x, 6 alone would elect 6; the extra votes 5, 5, 5, 6 make it 5 (4 votes to 3)
    calls = []
    texts = ["5", "6", "x", "6"]
    ctx = context([Example("1*5+0=", 5)], extra_texts=["5", "5", "5", "6"], calls=calls)
    _, A, m = ttrl_batch(fake_rollout(texts), torch.tensor([1., 0, 0, 0]), torch.zeros(4), TTRLConfig(), ctx)
    assert calls == [([0], None)]                                   # one more round at the training temperature
    # R̂ = (1, 0, 0, 0): mean ¼, std √((9/16 + 3/16)/3) = ½ → A = (1.5, −.5, −.5, −.5)
    torch.testing.assert_close(A, torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-4, rtol=0)
    assert m["majority_ratio"] == 4 / 8 and m["label_accuracy"] == 1.0 and m["reward_accuracy"] == 1.0


def test_unanimous_or_answerless_groups_teach_nothing():
    texts = ["12", "12", "12", "12", "a", "b", "c", "d"]
    _, A, m = ttrl_batch(fake_rollout(texts), true_rewards(texts, [TWELVE, SEVEN]), torch.zeros(8),
                         TTRLConfig(vote_rounds=1), context([TWELVE, SEVEN]))
    assert A.eq(0).all()
    assert m["majority_ratio"] == 0.5 and m["label_accuracy"] == 0.5 and m["no_answer_frac"] == 0.5


def test_the_task_comes_from_the_context_and_bad_settings_are_named():
    ctx = context([TWELVE])
    assert task_of(ctx) is ARITH
    with pytest.raises(ValueError, match="vote_rounds must be a whole number >= 1"):
        ttrl_batch(fake_rollout(["1"] * 4), torch.zeros(4), torch.zeros(4), TTRLConfig(vote_rounds=0), ctx)
    no_answers = get_task("arithmetic")
    no_answers.answer_of = None
    ctx.task = no_answers
    with pytest.raises(ValueError, match="task 'arithmetic' has none"):
        ttrl_batch(fake_rollout(["1"] * 4), torch.zeros(4), torch.zeros(4), TTRLConfig(), ctx)


def test_runs_by_name_with_true_accuracy_kept_as_the_logged_reward(tmp_path):
    assert get_method("ttrl").make_config({"vote_rounds": "1"}).vote_rounds == 1
    config = make_config("smoke", method="ttrl", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8)
    assert config.kl_coef == 0.001                                  # the official KL loss, as a train default
    rows = train(config, tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and last["kl_ref"] is not None
    for key in ("label_accuracy", "majority_ratio", "reward_accuracy", "pseudo_reward", "no_answer_frac"):
        assert 0.0 <= last[f"ttrl/{key}"] <= 1.0
    assert last["accuracy"] == last["reward"]                       # the task's true 0/1 reward, not R̂
