"""Process rewards that the project writes: partial credit for the steps of a partial solution.

A particle filter needs a score r ∈ [0, 1] of every partial trajectory (the ePF paper, arXiv
2510.05825, uses a 7B PRM, Qwen2.5-Math-PRM-7B; a tiny model needs a toy one). Ours are verifiers,
not models: they read the text with regular expressions and integer arithmetic
(`minirl.stepwise.segment`), never `eval`.

`countdown_steps_credit` (ours), for a chain `a op b = c;` … `#answer` over the prompt's numbers:

    v = (valid steps) / (steps written)      a step is valid when it parses, its arithmetic is right and
                                             both operands are still available; the answer step `#c` is
                                             valid when all n − 1 equations are written and valid and c is
                                             the one number left; text after the last `;` that is not a
                                             valid answer (a truncated step) counts as one invalid step
    h = max_{a ∈ pool} (1 − min(1, |a − target| / target))   closeness of the nearest available number
    r = v · (w + (1 − w)·h)                  w = 0.5; r = 1 once every step is valid and the target is reached
                                             (an empty text, a particle that stopped at once, scores 0)

h is a heuristic, not a value function: `3*7=21` leaves 21 next to a target of 22 and scores high,
even when the last number cannot close the gap. That imperfection is what a learned PRM has too.
`heuristic="reachable"` replaces it by an oracle, h = 1 if the target can still be reached from the
pool (exhaustive search, `stepwise.solutions`), else 0: a perfect value function, for contrast.

`overconfident` (ours; the ePF paper motivates its method by PRMs that are over-confident early) sharpens a
score towards 0 or 1, the more the earlier the step:

    r' = σ(κ(u) · logit(r)),   κ(u) = 1 + s·(1 − u),   u = t / T_max      (s = 0: calibrated)

`arithmetic_credit` (ours) is the fallback for tasks without a step grammar (GSM8K on the gpu
profile): the share of `x op y = z` equations in the text whose arithmetic is right, smoothed
as (1 + right) / (2 + written), so a text without equations scores 1/2.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache, partial
from typing import Callable

from ..stepwise import STEP, segment, solutions
from ..task_types import Example

MAX_CHARS = 4096
EQUATION = re.compile(r"(\d{1,9})\s*([+\-*/×x])\s*(\d{1,9})\s*=\s*(\d{1,12})(?![\d.])")


def _pool_after(completion: str, numbers: tuple[int, ...], seg) -> list[int]:
    """The numbers still available after the valid steps of `seg` (each step: take a and b, add c)."""
    pool, start = list(numbers), 0
    for end, valid in zip(seg.step_ends, seg.steps_valid):
        match = STEP.fullmatch(completion[start:end - 1])
        if valid and match:
            a, b, c = int(match[1]), int(match[3]), int(match[4])
            pool.remove(a)
            pool.remove(b)
            pool.append(c)
        start = end
    return pool


@lru_cache(maxsize=65536)
def _reachable(pool: tuple[int, ...], target: int) -> bool:
    return bool(solutions(pool, target))


def countdown_steps_credit(completion: str, example: Example, weight: float = 0.5,
                           heuristic: str = "closeness") -> float:
    """r = v·(w + (1 − w)·h) of a (partial) chain for `countdown_steps` (see the module doc)."""
    numbers, target = example.answer
    if not isinstance(completion, str):
        return 0.0
    seg = segment(completion, numbers)               # over 64 characters it reads nothing: one invalid step
    valid = list(seg.steps_valid)
    pool = _pool_after(completion, numbers, seg)
    end = seg.step_ends[-1] if seg.step_ends else 0
    if seg.answer_start is not None:                 # the answer step `#c`
        ok = (len(valid) == len(numbers) - 1 and all(valid) and seg.answer is not None and pool == [seg.answer])
        valid.append(ok)
        pool = [seg.answer] if ok else pool
    elif completion[end:]:                           # a step that never reached its ';'
        valid.append(False)
    if not valid:                                    # nothing written (a particle that stopped at once)
        return 0.0
    v = sum(valid) / len(valid)
    if heuristic == "reachable":
        h = float(bool(pool) and _reachable(tuple(sorted(pool)), target))
    elif heuristic == "closeness":
        h = max(1.0 - min(1.0, abs(a - target) / target) for a in pool) if pool else 0.0
    else:
        raise ValueError(f"unknown heuristic {heuristic!r}; choose one of: closeness, reachable")
    return v * (weight + (1 - weight) * h)


def arithmetic_credit(completion: str, example: Example | None = None) -> float:
    """(1 + right) / (2 + written) over the `x op y = z` equations of a free-form text."""
    if not isinstance(completion, str):
        return 0.0
    right = written = 0
    for a, op, b, c in EQUATION.findall(completion[-MAX_CHARS:]):
        a, b, c = int(a), int(b), int(c)
        value = {"+": a + b, "-": a - b, "/": a // b if b and a % b == 0 else None}.get(op, a * b)
        written += 1
        right += value == c
    return (1 + right) / (2 + written)


def overconfident(r: float, progress: float, strength: float) -> float:
    """σ(κ·logit r), κ = 1 + strength·(1 − progress): a score pushed towards 0 or 1 early on."""
    if strength == 0:
        return r
    r = min(max(r, 1e-7), 1 - 1e-7)
    z = (1 + strength * (1 - min(max(progress, 0.0), 1.0))) * math.log(r / (1 - r))       # κ · logit r
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


PROCESS_REWARDS: dict[str, Callable[[str, Example], float]] = {
    "countdown_steps": countdown_steps_credit,
    "countdown_steps_oracle": partial(countdown_steps_credit, heuristic="reachable"),
    "arithmetic": arithmetic_credit,
}


def process_reward_for(task_name: str) -> Callable[[str, Example], float]:
    """The task's own process reward; `arithmetic_credit` for a task without one."""
    return PROCESS_REWARDS.get(task_name, arithmetic_credit)


def step_boundary(task_name: str) -> str:
    """The text that ends a step: `;` in countdown_steps, a blank line elsewhere (its_hub's default)."""
    return ";" if task_name == "countdown_steps" else "\n\n"
