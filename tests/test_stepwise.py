"""countdown_steps: a chain of equations, then the answer; steps and phases exposed by `segment`."""
import pytest

from minirl.stepwise import make_countdown_steps, segment, solutions, steps_reward
from minirl.tasks import Example, get_task

EX = Example("3,5,7>22:", ((3, 5, 7), 22))


def test_segment_finds_steps_answer_and_checks_each_step():
    seg = segment("3*5=15;15+7=22;#22", (3, 5, 7))
    assert seg.step_ends == [7, 15] and seg.answer_start == 15 and seg.answer == 22
    assert seg.steps_valid == [True, True]
    # wrong arithmetic, a number not available, a reused number
    assert segment("3*5=16;16+7=23;#23", (3, 5, 7)).steps_valid == [False, False]   # 16 never existed
    assert segment("3*5=16;16+7=23;#23").steps_valid == [False, True]               # arithmetic only
    assert segment("3*4=12;12+7=19;#19", (3, 5, 7)).steps_valid == [False, False]   # no 4 to take
    assert segment("3*5=15;15+3=18;#18", (3, 5, 7)).steps_valid == [True, False]
    assert segment("5-7=-2;#0", (3, 5, 7)).steps_valid == [False]           # no signs: 5 − 7 < 0
    assert segment("3*5=15", (3, 5, 7)).step_ends == [] and segment("", None).answer_start is None


@pytest.mark.parametrize("completion, reward", [
    ("3*5=15;15+7=22;#22", 1.0), ("5*3=15;7+15=22;#22", 1.0),
    ("3*5=15;15+7=22;#21", 0.0),             # answer is not the target
    ("3*5=15;#15", 0.0),                     # one step: 7 unused
    ("3*5=15;15+7=22;22-0=22;#22", 0.0),     # a number that was never given
    ("__import__('os')", 0.0), ("9" * 500, 0.0), ("3*5=15;15+7=22;#٢٢", 0.0),
])
def test_reward(completion, reward):
    assert steps_reward(completion, EX) == reward


def test_solutions_are_every_valid_chain_and_all_score_1():
    chains = solutions((3, 5, 7), 22)
    assert chains == sorted(["3*5=15;15+7=22;#22", "3*5=15;7+15=22;#22", "5*3=15;15+7=22;#22",
                             "5*3=15;7+15=22;#22"])
    assert all(steps_reward(c, EX) == 1.0 for c in chains)


def test_task_split_and_registry():
    task = get_task("countdown_steps")
    assert task.name == "countdown_steps" and len(task.eval) == 256
    assert not {e.prompt for e in task.eval} & {e.prompt for e in task.train[:2000]}
    ex = task.eval[0]
    assert all(steps_reward(s, ex) == 1.0 for s in task.sft_targets(ex))
    assert max(len(s) for e in task.eval for s in task.sft_targets(e)) < task.max_new_tokens
    assert make_countdown_steps(seed=1).eval[0] != ex
