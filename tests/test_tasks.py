"""Verifiers: correct answers score 1, everything else (including hostile text) scores 0, fast."""
import time

import pytest

from minirl.safe_math import parse_expression, parse_integer
from minirl.tasks import Example, countdown_reward, countdown_solutions, get_task, integer_reward

EXAMPLE = Example("3,5,7>22=", ((3, 5, 7), 22))

ADVERSARIAL = ["__import__('os').system('true')", "9**9**9", "7/0", "1//0", "x" * 10_000, "3" * 10_000,
               "٣*5+7", "３*5+7", "", "   ", "(" * 500 + "1" + ")" * 500, "3*5+7\x00", "exec('1')",
               "999999*999999*999999*999999", "-" * 200 + "1", None]


def test_countdown_accepts_any_correct_expression():
    assert countdown_reward("3*5+7", EXAMPLE) == 1.0
    assert countdown_reward("7+5*3", EXAMPLE) == 1.0
    assert countdown_reward("(5*3)+7", EXAMPLE) == 1.0
    assert countdown_reward(" 3 * 5 + 7 ", EXAMPLE) == 1.0


@pytest.mark.parametrize("text", ["3*5+8", "3*5", "3*5+7+0", "15+7", "3*5+7*1", "22"])
def test_countdown_rejects_wrong_value_or_numbers(text):
    assert countdown_reward(text, EXAMPLE) == 0.0


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_completions_score_zero_quickly(text):
    start = time.perf_counter()
    assert countdown_reward(text, EXAMPLE) == 0.0
    assert integer_reward(text, Example("1+1=", 2)) == 0.0
    assert time.perf_counter() - start < 0.05


def test_parser_respects_precedence_and_parentheses():
    assert parse_expression("2+3*4").value == 14
    assert parse_expression("(2+3)*4").value == 20
    assert parse_expression("2-3-4").value == -5
    assert parse_expression("(2+3)*4").numbers == [2, 3, 4]
    assert parse_expression("2+") is None and parse_expression("2 3") is None


def test_integer_parser():
    assert parse_integer("-42") == -42 and parse_integer(" 7 ") == 7
    assert parse_integer("4 2") is None and parse_integer("٤٢") is None and parse_integer("1e3") is None


def test_countdown_solutions_are_all_correct():
    solutions = countdown_solutions((3, 5, 7), 22)
    assert "3*5+7" in solutions and "7+3*5" in solutions
    assert all(countdown_reward(s, EXAMPLE) == 1.0 for s in solutions)


def test_splits_are_fixed_and_disjoint():
    a, b = get_task("countdown", seed=0), get_task("countdown", seed=0)
    assert [e.prompt for e in a.eval] == [e.prompt for e in b.eval]
    assert not {e.prompt for e in a.eval} & {e.prompt for e in a.train}
    assert len(a.eval) == 256 and len(a.train) > 3000
    every = a.train + a.eval
    assert all(countdown_reward(a.sft_targets(e)[0], e) == 1.0 for e in every[:300])


def test_arithmetic_task():
    task = get_task("arithmetic")
    example = task.eval[0]
    assert task.reward(str(example.answer), example) == 1.0
    assert task.reward(str(example.answer + 1), example) == 0.0


def test_unknown_task_names_choices():
    with pytest.raises(ValueError, match="choose one of: countdown, arithmetic"):
        get_task("addition")


def test_answer_of_reads_the_final_answer_without_the_label():
    from minirl.stepwise import make_countdown_steps
    from minirl.tasks import Example, make_arithmetic, make_countdown

    ex = Example("3,5,7>22=", ((3, 5, 7), 22))
    answer_of = make_countdown().answer_of
    assert answer_of("3*5+7", ex) == 22 and answer_of("3+5+7", ex) == 15    # wrong answers still have one
    assert answer_of("3*5", ex) is None and answer_of("junk", ex) is None    # a number unused; no expression
    assert make_arithmetic().answer_of(" 17", Example("2*7+3=", 17)) == 17
    steps = make_countdown_steps().answer_of
    ex = Example("3,5,7>22:", ((3, 5, 7), 22))
    assert steps("3*5=15;15+5=20;#20", ex) is None and steps("3+5=8;8*7=56;#56", ex) == 56
