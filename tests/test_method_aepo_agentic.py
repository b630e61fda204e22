"""AEPO (agentic)'s rollout: the budget split, the branch probability with its consecutive-branch
penalty, the turn entropy, how the tree grows, and a whole tree on the tool task."""
import math

import pytest
import torch

from minirl.methods import SamplingContext, get_method
from minirl.methods.aepo_agentic import (AEPOAgenticConfig, Trajectory, branch_probability,
                                         entropy_balanced_groups, global_sample_count, grow, turn_entropy)
from minirl.models import load_policy
from minirl.tasks import get_task
from minirl.warmstart import default_path


def test_global_sample_count_by_hand():
    assert global_sample_count(12, 0.3, 0.3) == 7                  # σ(0) = 0.5: ⌊6⌋ + 1
    assert global_sample_count(8, 2.5, 0.5) == 6                   # σ(1) = 0.731: ⌊5.85⌋ + 1
    assert global_sample_count(8, 0.5, 2.5) == 3                   # σ(−1) = 0.269: ⌊2.15⌋ + 1
    assert global_sample_count(8, 0.0, 100.0) == 1                 # at least one global sample
    assert global_sample_count(8, 100.0, 0.0) == 8                 # ⌊8·(1 − ε)⌋ + 1 = 8, never above k
    assert global_sample_count(8, 2.5, 0.5, beta=0.0) == 5         # β = 0: always ⌊k/2⌋ + 1


def test_branch_probability_with_the_consecutive_penalty_by_hand():
    config = AEPOAgenticConfig()                                   # w = 0.2, penalty 0.05
    assert branch_probability(0.45, 0.9, 0.4, 0, config) == pytest.approx(0.55)      # 0.45 + 0.2·0.5
    assert branch_probability(0.45, 0.9, 0.4, 4, config) == pytest.approx(0.44)      # × (1 − 0.2)
    assert branch_probability(0.45, 0.9, 0.4, 25, config) == 0.0                     # max(0, 1 − 1.25) = 0
    assert branch_probability(0.99, 1.4, 0.4, 0, config) == 1.0                      # clipped at 1
    assert branch_probability(0.05, 0.0, 1.0, 0, config) == 0.0                      # clipped at 0
    off = AEPOAgenticConfig(branch_penalty=0.0)
    assert branch_probability(0.45, 0.9, 0.4, 25, off) == pytest.approx(0.55)


def test_turn_entropy_sums_the_first_tokens_over_log_vocab():
    entropies = [0.5] * 25
    assert turn_entropy(entropies, AEPOAgenticConfig(), 100) == pytest.approx(10.0 / math.log(100))
    assert turn_entropy(entropies, AEPOAgenticConfig(turn_entropy="mean"), 100) == pytest.approx(0.5 / math.log(100))
    assert turn_entropy([], AEPOAgenticConfig(), 100) == 0.0


def _running(question, root, H_now, H_init):
    return Trajectory(question, root, [1, 2], [1.0, 1.0], 1, H_init, H_now)


def test_tree_grows_within_the_budget_and_counts_consecutive_turns():
    config = AEPOAgenticConfig(beam_size=3)
    sure = dict(H_now=10.0, H_init=0.0)                            # p = u + 2 ≥ 1: branch unless penalised
    trees = [[_running(0, 0, **sure), _running(0, 1, **sure), Trajectory(0, 2, running=False)],
             [Trajectory(1, 0, running=False)],
             [_running(2, 0, **sure)]]
    consecutive = [0, 3, 20]
    branches = grow(trees, consecutive, config, k=4)
    assert branches == [1, 0, 0]              # q0: one slot left; q2: penalty max(0, 1 − 0.05·20) = 0
    assert len(trees[0]) == 4 and trees[0][-1].root == 0 and trees[0][-1].response == [1, 2]
    assert trees[0][-1].H_init is None and trees[0][-1].running          # a branch measures its own H_init
    assert len(trees[1]) == 2 and trees[1][-1].root == 1 and trees[1][-1].response == []   # a fresh sample
    assert len(trees[2]) == 1
    assert consecutive == [1, 4, 0]           # q0, q1 got new trajectories; q2 did not: reset


@pytest.fixture(scope="module")
def tool_setup():
    model, tok = load_policy(default_path("countdown_tool", "smoke"))
    return model, tok, get_task("countdown_tool", tokenizer=tok)


def test_tree_on_the_tool_task_gives_k_rows_per_question(tool_setup):
    model, tok, task = tool_setup
    ctx = SamplingContext(model, tok, task, group_size=6, temperature=1.0, top_p=1.0)
    examples = task.train[:4]
    torch.manual_seed(0)
    rollout, tokens, metrics = entropy_balanced_groups(examples, AEPOAgenticConfig(), ctx)
    assert len(rollout) == 24 and rollout.response_ids.shape[1] <= task.max_new_tokens
    assert 1 <= metrics["global_samples"] <= 6 and metrics["branches"] + metrics["fresh_roots"] > 0
    assert metrics["global_samples"] + metrics["branches"] + metrics["fresh_roots"] >= 6 - 1e-9
    policy_tokens = int(rollout.response_mask.sum())
    assert tokens > metrics["probe_tokens"] > 0
    assert tokens - metrics["probe_tokens"] <= policy_tokens      # shared prefixes are sampled once
    observation_tokens = (rollout.response_mask == 0) & (rollout.response_ids != tok.pad_token_id)
    assert observation_tokens.any() and (rollout.entropy[observation_tokens] == 0).all()
    torch.manual_seed(0)
    again, tokens_again, _ = entropy_balanced_groups(examples, AEPOAgenticConfig(), ctx)
    assert again.completions == rollout.completions and tokens_again == tokens


def test_needs_a_task_with_a_tool_and_valid_settings(tool_setup):
    model, tok, _ = tool_setup
    ctx = SamplingContext(model, tok, get_task("countdown", tokenizer=tok), 4, 1.0, 1.0)
    with pytest.raises(ValueError, match="countdown_tool"):
        entropy_balanced_groups(get_task("countdown").train[:1], AEPOAgenticConfig(), ctx)
    ctx.task = get_task("countdown_tool", tokenizer=tok)
    with pytest.raises(ValueError, match="sum, mean"):
        entropy_balanced_groups(ctx.task.train[:1], AEPOAgenticConfig(turn_entropy="max"), ctx)
    assert get_method("aepo_agentic").sample_groups is entropy_balanced_groups


def test_trains_by_name_and_logs_its_rollout(tmp_path):
    from minirl.config import make_config
    from minirl.trainer import train

    config = make_config("smoke", method="aepo_agentic", task="countdown_tool", steps=2, prompts_per_step=4,
                         group_size=4, eval_every=100, eval_prompts=4, eval_samples=4, eval_k=2,
                         init=str(default_path("countdown_tool", "smoke")))
    rows = train(config, tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and last["tokens_sampled"] > last["aepo_agentic/probe_tokens"] > 0
    assert 1 <= last["aepo_agentic/global_samples"] <= 4 and "aepo_agentic/high_clip_grad_frac" in last
