"""PEAR (Huang et al., arXiv 2510.08026): a correct response earns s − max(0, H̄_think − α·H̄_answer),
a wrong one r_fmt; the phases split at the separator token, which belongs to neither."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.pear import PEARConfig, pear_batch, token_at_char
from minirl.models import build_tiny_model, build_tokenizer
from minirl.profiles import policy_size
from minirl.rollout import Rollout
from minirl.tasks import Example, get_task
from minirl.trainer import Trainer, train

TOK = build_tokenizer()
STEPS = get_task("countdown_steps")
SIX = Example("1,2,3>6:", ((1, 2, 3), 6))


def rollout_of(texts, entropies):
    """Rows of the tiny tokenizer's tokens (one per character) + EOS, with the given entropies."""
    ids = [TOK(t, add_special_tokens=False)["input_ids"] + [TOK.eos_token_id] for t in texts]
    n, T = len(ids), max(map(len, ids))
    response, mask, H = torch.zeros(n, T, dtype=torch.long), torch.zeros(n, T), torch.zeros(n, T)
    for i, (row, h) in enumerate(zip(ids, entropies)):
        assert len(h) == len(row)
        response[i, :len(row)], mask[i, :len(row)], H[i, :len(row)] = torch.tensor(row), 1.0, torch.tensor(h)
    return Rollout(torch.full((n, 3), 7), torch.ones(n, 3), response, mask, torch.zeros(n, T), H, list(texts),
                   torch.zeros(n, dtype=torch.long))


def context(examples, group_size, task=None):
    ctx = BatchContext(None, group_size, True, TOK.pad_token_id, step=1, examples=examples, tokenizer=TOK)
    if task is not None:
        ctx.task = task
    return ctx


# one group of four answers to 1,2,3>6: the 12 reasoning tokens, '#' (entropy 9, in neither phase), answer + EOS
TEXTS = ["1+2=3;3+3=6;#6",        # correct: H̄_think .5, H̄_answer (.2 + 0)/2 = .1 → P = .4 → r = .6
         "1*2=2;2+3=5;#5",        # wrong → r_fmt = 0
         "2*3=6;6*1=6;#6",        # correct but unsure: H̄_think 1.5, H̄_answer .1 → P = 1.4 → r = −.4
         "1+2=3;3+3=6;"]          # no answer phase (wrong): H̄_think = (12·.7 + 0)/13
ENTROPIES = [[0.5] * 12 + [9.0, 0.2, 0.0], [0.5] * 12 + [9.0, 0.3, 0.1], [1.5] * 12 + [9.0, 0.1, 0.1],
             [0.7] * 12 + [0.0]]


def shaped(config=PEARConfig(), task=STEPS):
    rewards = torch.tensor([STEPS.reward(t, SIX) for t in TEXTS])
    assert rewards.tolist() == [1.0, 0.0, 1.0, 0.0]
    return pear_batch(rollout_of(TEXTS, ENTROPIES), rewards, torch.zeros(4), config, context([SIX], 4, task))


def test_phase_rewards_and_advantages_by_hand():
    _, A, m = shaped()
    # r = (.6, 0, −.4, 0): mean .05, unbiased std √(.51/3)
    torch.testing.assert_close(A, torch.tensor([0.55, -0.05, -0.45, -0.05]) / math.sqrt(0.51 / 3), atol=1e-4, rtol=0)
    assert m["think_entropy"] == pytest.approx((0.5 + 0.5 + 1.5 + 8.4 / 13) / 4)
    assert m["answer_entropy"] == pytest.approx((0.1 + 0.2 + 0.1) / 3)
    assert m["penalty_correct"] == pytest.approx((0.4 + 1.4) / 2)
    assert m["no_answer_frac"] == 0.25 and m["below_format_frac"] == 0.25 and m["reward_mean"] == pytest.approx(0.05)


def test_floor_and_alpha_change_only_what_they_should():
    _, A, m = shaped(PEARConfig(pear_floor=0.0))        # r = (.6, 0, 0, 0) → mean .15, std .3
    torch.testing.assert_close(A, torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-4, rtol=0)
    assert m["below_format_frac"] == 0.25                # counted before the floor
    _, _, m = shaped(PEARConfig(alpha=0.0))              # P = H̄_think: .5 and 1.5 → r = (.5, 0, −.5, 0)
    assert m["penalty_correct"] == pytest.approx(1.0) and m["reward_mean"] == pytest.approx(0.0)
    _, _, m = shaped(PEARConfig(alpha=20.0))             # α·H̄_answer ≥ H̄_think → P = 0 → r = (1, 0, 1, 0)
    assert m["penalty_correct"] == 0.0 and m["reward_mean"] == pytest.approx(0.5)


def test_without_a_segmenter_the_whole_response_is_thinking():
    arith = get_task("arithmetic")
    assert "segment" not in arith.info
    twelve = Example("3*4+0=", 12)
    rollout = rollout_of(["12", "13"], [[0.3, 0.3, 0.3], [0.9, 0.9, 0.9]])
    _, A, m = pear_batch(rollout, torch.tensor([1.0, 0.0]), torch.zeros(2), PEARConfig(), context([twelve], 2, arith))
    # r = (1 − .3, 0) → A = ±.7071 ; every response lacks an answer phase
    torch.testing.assert_close(A, torch.tensor([1.0, -1.0]) / math.sqrt(2), atol=1e-4, rtol=0)
    assert m["no_answer_frac"] == 1.0 and m["answer_entropy"] is None and m["penalty_correct"] == pytest.approx(0.3)


class Pieces:
    """A tokenizer whose tokens are several characters long, as a real one's are."""

    pieces = {1: "1+2", 2: "=3;", 3: "#", 4: "6", 5: ";#6"}

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_separator_token_is_found_through_multi_character_tokens():
    assert token_at_char(Pieces(), [1, 2, 3, 4], "1+2=3;#6".index("#")) == 2
    assert token_at_char(Pieces(), [1, 5], "1+2;#6".index("#")) == 1     # '#' inside a token of three
    assert token_at_char(Pieces(), [1, 2], 10) == 2                        # past the end: not found
    ids = TOK("1+2=3;3+3=6;#6", add_special_tokens=False)["input_ids"]
    assert token_at_char(TOK, ids, 12) == 12                               # one character, one token


def test_runs_by_name_and_on_the_stepwise_task(tmp_path):
    assert get_method("pear").make_config({"pear_floor": "0"}).pear_floor == 0.0
    config = make_config("smoke", method="pear", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8)
    rows = train(config, tmp_path / "run", progress=False)
    assert rows[-1]["step"] == 2 and rows[-1]["pear/no_answer_frac"] == 1.0   # countdown has no segmenter
    # countdown_steps has one; no warm start of it is shipped, so a fresh tiny policy takes a step
    config = make_config("smoke", method="pear", task="countdown_steps", steps=1, prompts_per_step=4,
                         eval_prompts=4)
    model = build_tiny_model(policy_size("smoke"), TOK)
    metrics = Trainer(config, model=model, tokenizer=TOK).train_step()
    assert 0.0 <= metrics["pear/no_answer_frac"] <= 1.0 and metrics["pear/think_entropy"] > 0
