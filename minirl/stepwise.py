"""A task with a reasoning phase and steps: countdown solved as a chain of equations, then the answer.

    prompt      3,5,7>22:
    completion  3*5=15;15+7=22;#22
                └─ step ─┘└─ step ─┘└answer┘

Each step combines two numbers that are still available (the given ones and the results of
earlier steps, each used once) with `+`, `-` or `*` and writes the result; after n − 1 steps one
number is left, and the answer phase (`#` and that number) must equal the target. Reward 1 for a
chain whose every step is right and whose answer hits the target, else 0. Subtraction may not go
below 0 (the countdown game's rule), so no step writes a sign.

Methods that act on steps or phases (EMPG, PEAR, agentic AEPO) read the structure from
`segment(completion)`: where each step ends and where the answer begins, in characters of the
completion. With the tiny model's character tokenizer a character is a token.

Parsing is a regular expression per step and integer arithmetic on at most 6-digit numbers:
model text is never executed.
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field

from .task_types import Example, Task

STEP = re.compile(r"(\d{1,6})([+\-*])(\d{1,6})=(\d{1,6})")
STEP_END, ANSWER = ";", "#"
MAX_CHARS = 64


@dataclass
class Segments:
    """Where the structure of a completion lies, in characters (end positions are exclusive)."""

    step_ends: list[int] = field(default_factory=list)   # one past each step's ';'
    answer_start: int | None = None                      # index of '#', None if there is none
    steps_valid: list[bool] = field(default_factory=list)
    answer: int | None = None


def apply(a: int, op: str, b: int) -> int | None:
    """a op b, or None where the countdown rules forbid it (a negative difference)."""
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return value if value >= 0 else None


def segment(completion: str, numbers: tuple[int, ...] | None = None) -> Segments:
    """Split a completion into steps and the answer, and check each step against `numbers`
    (the multiset still available; without it only the arithmetic is checked)."""
    seg = Segments()
    if not isinstance(completion, str) or len(completion) > MAX_CHARS:
        return seg
    available = list(numbers) if numbers is not None else None
    start = 0
    while start < len(completion) and completion[start] != ANSWER:
        end = completion.find(STEP_END, start)
        if end < 0:
            break
        match = STEP.fullmatch(completion[start:end])
        valid = match is not None
        if valid:
            a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
            valid = apply(a, op, b) == c
            if valid and available is not None:
                valid = _take(available, a) and _take(available, b)
                if valid:
                    available.append(c)
        seg.step_ends.append(end + 1)
        seg.steps_valid.append(valid)
        start = end + 1
    if start < len(completion) and completion[start] == ANSWER:
        seg.answer_start = start
        tail = completion[start + 1:]
        seg.answer = int(tail) if tail.isascii() and tail.isdigit() and len(tail) <= 6 else None
    return seg


def _take(pool: list[int], value: int) -> bool:
    if value in pool:
        pool.remove(value)
        return True
    return False


def steps_reward(completion: str, example: Example) -> float:
    """1 if every step is valid, all n numbers are used (n − 1 steps) and the answer is the target."""
    numbers, target = example.answer
    seg = segment(completion, numbers)
    return float(len(seg.steps_valid) == len(numbers) - 1 and all(seg.steps_valid)
                 and seg.answer == target and seg.answer_start is not None)


def steps_answer(completion: str, example: Example) -> int | None:
    """The number after '#' of a chain whose steps are all valid over the prompt's numbers."""
    seg = segment(completion, example.answer[0])
    return seg.answer if seg.steps_valid and all(seg.steps_valid) else None


def solutions(numbers: tuple[int, ...], target: int | None = None) -> list[str]:
    """Every valid chain over `numbers` (ending in its answer); those reaching `target` if given."""
    found = []

    def grow(pool: list[int], text: str):
        if len(pool) == 1:
            if target is None or pool[0] == target:
                found.append(f"{text}{ANSWER}{pool[0]}")
            return
        for i, j in itertools.permutations(range(len(pool)), 2):
            for op in "+-*":
                c = apply(pool[i], op, pool[j])
                if c is not None and c < 10**6:
                    rest = [v for k, v in enumerate(pool) if k not in (i, j)] + [c]
                    grow(rest, f"{text}{pool[i]}{op}{pool[j]}={c}{STEP_END}")
    grow(list(numbers), "")
    return sorted(set(found))


def make_countdown_steps(seed: int = 0, n_numbers: int = 3, max_number: int = 9, n_eval: int = 256,
                         max_target: int = 99) -> Task:
    """`a,b,c>t:` → a chain of n − 1 equations over a, b, c, then `#t`."""
    rng = random.Random(seed)
    targets: dict[tuple, set[int]] = {}                # reachable targets of each multiset of numbers
    for key in itertools.combinations_with_replacement(range(1, max_number + 1), n_numbers):
        targets[key] = {int(s.rsplit(ANSWER, 1)[1]) for s in solutions(key)}
    examples = [Example(",".join(map(str, numbers)) + f">{t}:", (numbers, t))
                for numbers in itertools.product(range(1, max_number + 1), repeat=n_numbers)
                for t in sorted(t for t in targets[tuple(sorted(numbers))] if 1 <= t <= max_target)]
    rng.shuffle(examples)
    longest = len(str(max_number ** n_numbers)) * 3 + 3          # one step: a*b=c;
    return Task(name="countdown_steps", train=examples[n_eval:], eval=examples[:n_eval], reward=steps_reward,
                max_new_tokens=(n_numbers - 1) * longest + len(str(max_target)) + 2,
                sft_targets=lambda ex: solutions(*ex.answer), answer_of=steps_answer,
                info={"segment": lambda text, ex: segment(text, ex.answer[0])})
