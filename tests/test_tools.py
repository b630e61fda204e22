"""The calculator tool: calls stop generation, the tool's answer is written in with mask 0 (no loss,
no entropy), and the policy continues; rewards read the whole text; nothing is executed."""
import pytest
import torch

from minirl.models import load_policy
from minirl.rollout import gather_log_prob, policy_forward
from minirl.tasks import Example, get_task
from minirl.tools import calculator, sample_with_tool, to_steps, tool_reward
from minirl.warmstart import default_path

EX = Example("3,5,7>22:", ((3, 5, 7), 22))


def test_calculator_answers_well_formed_calls_only():
    assert calculator("[3*5]") == "=15;" and calculator("[15+7]=22;[9-4]") == "=5;"
    assert calculator("[3-5]") == "=?;"                       # no negative differences
    assert calculator("15+7]") == "=?;" and calculator("[__import__('os')]") == "=?;" and calculator(None) == "=?;"


def test_reward_reads_the_chain_the_calls_and_the_tool_wrote():
    assert to_steps("[3*5]=15;[15+7]=22;#22") == "3*5=15;15+7=22;#22"
    assert tool_reward("[3*5]=15;[15+7]=22;#22", EX) == 1.0
    assert tool_reward("[3*5]=15;[15+7]=22;#21", EX) == 0.0
    task = get_task("countdown_tool")
    ex = task.eval[0]
    assert all(task.reward(s, ex) == 1.0 and s.startswith("[") for s in task.sft_targets(ex))
    assert task.answer_of("[3*5]=15;[15+7]=22;#22", EX) == 22


class ScriptedTool:
    """Answers every call with a fixed observation and records what it was asked."""

    def __init__(self):
        self.asked = []

    def __call__(self, text):
        self.asked.append(text)
        return "=1;"


def test_observations_are_in_the_response_but_masked_and_scored_as_context():
    model, tok = load_policy(default_path("countdown", "smoke"))       # any policy: calls arise by chance
    torch.manual_seed(0)
    tool = ScriptedTool()
    # the char vocabulary has ']'; make calls likely by sampling hot for many rows
    rollout = sample_with_tool(model, tok, ["3,5,7>22:"] * 8, 8, 3.0, 1.0, 12, tool=tool, max_calls=2)
    end = tok.convert_tokens_to_ids("]")
    observation = tok("=1;", add_special_tokens=False)["input_ids"]
    calls = 0
    for i in range(len(rollout)):
        ids = rollout.response_ids[i].tolist()
        mask = rollout.response_mask[i].tolist()
        for k, token in enumerate(ids[:-len(observation)]):
            if token == end and mask[k] == 1.0 and ids[k + 1:k + 1 + len(observation)] == observation:
                calls += 1
                assert mask[k + 1:k + 1 + len(observation)] == [0.0] * len(observation)   # the tool's tokens
        assert rollout.response_mask[i].sum() > 0
    assert calls > 0 and len(tool.asked) >= calls
    assert all(text.endswith("]") for text in tool.asked)
    # log-probs of the policy's own tokens are those of a forward over the whole text (observations as context)
    logits = policy_forward(model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, 3.0)
    expected = gather_log_prob(logits, rollout.response_ids) * rollout.response_mask
    torch.testing.assert_close(rollout.old_log_prob, expected)
    assert (rollout.entropy[rollout.response_mask == 0] == 0).all()
    assert rollout.response_ids.shape[1] <= 12


def test_trains_by_name_with_the_tool(tmp_path):
    from minirl.config import make_config
    from minirl.trainer import train

    config = make_config("smoke", task="countdown_tool", steps=2, prompts_per_step=4, eval_every=100,
                         eval_prompts=4, eval_samples=4, eval_k=2, init=str(default_path("countdown", "smoke")))
    rows = train(config, tmp_path / "run", progress=False)
    assert rows[-1]["step"] == 2 and rows[-1]["tokens_sampled"] > 0
    with pytest.raises(ValueError):
        get_task("countdown_tools")
