"""Tasks with verifiable rewards.

A task is a small object: its prompts (with whatever ground truth the reward needs), a
fixed train/eval split, and a reward function `reward(completion, example) -> float`.
Write your own in a notebook:

    from minirl.tasks import Example, Task

    def exact(completion, example):
        return float(completion.strip() == example.answer)

    my_task = Task(name="echo", train=[Example("ab>", "ab")], eval=[Example("cd>", "cd")],
                   reward=exact, max_new_tokens=4,
                   sft_targets=lambda ex: [ex.answer])   # only needed for `warmstart`

Rewards must never execute model text; use `minirl.safe_math` to read numbers and
expressions. To train on it, `register_task("echo", my_task)` and `make_config(task="echo")` in
the notebook, or, from a module, name it by its path everywhere a task name goes:
`python -m minirl train --task mypkg.tasks:my_task`, a grid's `task: mypkg.tasks:my_task`
(a Task or a function of no arguments returning one). Its warm start: `python -m minirl
warmstart --task mypkg.tasks:my_task` (docs/your_own_task.md).
"""
from __future__ import annotations

import inspect
import itertools
import random
from typing import Callable

from .safe_math import parse_expression, parse_integer
from .stepwise import make_countdown_steps
from .task_types import Example, Task
from .tools import make_countdown_tool
from .user_code import form, is_address, load_object

OPS = "+-*"


# ---------------------------------------------------------------- countdown
def countdown_reward(completion: str, example: Example) -> float:
    """1 if the completion is an expression that uses each given number once and hits the target."""
    numbers, target = example.answer
    parsed = parse_expression(completion)
    if parsed is None:
        return 0.0
    return float(sorted(parsed.numbers) == sorted(numbers) and parsed.value == target)


def countdown_solutions(numbers: tuple[int, ...], target: int) -> list[str]:
    """Every parenthesis-free expression over a permutation of `numbers` equal to `target`."""
    found = set()
    for perm in itertools.permutations(numbers):
        for ops in itertools.product(OPS, repeat=len(numbers) - 1):
            text = "".join(f"{n}{o}" for n, o in zip(perm, ops)) + str(perm[-1])
            if parse_expression(text).value == target:
                found.add(text)
    return sorted(found)


def make_countdown(seed: int = 0, n_numbers: int = 3, max_number: int = 9,
                   n_eval: int = 256, max_target: int = 99) -> Task:
    """`a,b,c>t=` → any `+ − ×` expression that uses each of a, b, c once and equals t."""
    rng = random.Random(seed)
    prompts = {}
    for numbers in itertools.product(range(1, max_number + 1), repeat=n_numbers):
        for ops in itertools.product(OPS, repeat=n_numbers - 1):
            text = "".join(f"{n}{o}" for n, o in zip(numbers, ops)) + str(numbers[-1])
            target = parse_expression(text).value
            if 1 <= target <= max_target:
                prompt = ",".join(map(str, numbers)) + f">{target}="
                prompts[prompt] = Example(prompt, (numbers, target))
    examples = sorted(prompts.values(), key=lambda e: e.prompt)
    rng.shuffle(examples)
    return Task(
        name="countdown", train=examples[n_eval:], eval=examples[:n_eval], reward=countdown_reward,
        max_new_tokens=2 * n_numbers + 2,
        sft_targets=lambda ex: countdown_solutions(*ex.answer), answer_of=countdown_answer,
    )


def countdown_answer(completion: str, example: Example):
    """The value of an expression that uses the prompt's numbers once each (no target needed)."""
    parsed = parse_expression(completion)
    if parsed is None or sorted(parsed.numbers) != sorted(example.answer[0]):
        return None
    return parsed.value


# ---------------------------------------------------------------- arithmetic
def integer_reward(completion: str, example: Example) -> float:
    """1 if the completion is exactly the integer answer."""
    return float(parse_integer(completion) == example.answer)


def make_arithmetic(seed: int = 0, n_eval: int = 128) -> Task:
    """`a*b+c=` with one-digit a, b, c → the integer value (one right answer per prompt)."""
    rng = random.Random(seed)
    examples = [Example(f"{a}*{b}+{c}=", a * b + c)
                for a in range(1, 10) for b in range(1, 10) for c in range(10)]
    rng.shuffle(examples)
    return Task(name="arithmetic", train=examples[n_eval:], eval=examples[:n_eval], reward=integer_reward,
                max_new_tokens=4, sft_targets=lambda ex: [str(ex.answer)],
                answer_of=lambda completion, example: parse_integer(completion))


TASKS: dict[str, Callable[..., Task]] = {"countdown": make_countdown, "arithmetic": make_arithmetic}


def make_gsm8k(seed: int = 0, tokenizer=None) -> Task:
    """GSM8K (minirl.math_data), loaded when asked for."""
    from .math_data import make_gsm8k    # optional: datasets and math-verify (pip install "minirl[math]")
    return make_gsm8k(seed=seed, tokenizer=tokenizer)


def make_math500(seed: int = 0, tokenizer=None) -> Task:
    """MATH-500 (minirl.math_data), loaded when asked for."""
    from .math_data import make_math500  # optional: datasets and math-verify (pip install "minirl[math]")
    return make_math500(seed=seed, tokenizer=tokenizer)


TASKS.update({"countdown_steps": make_countdown_steps,             # steps, then the answer: stepwise.py
              "countdown_tool": make_countdown_tool,               # a calculator tool: tools.py
              "gsm8k": make_gsm8k, "math500": make_math500})      # real data: minirl/math_data.py
CHAT_TASKS = ("gsm8k", "math500")
"""Tasks whose prompts are written with the policy's chat template (they need its tokenizer)."""
BUILTIN_TASKS = tuple(TASKS)
"""The tasks minirl ships (the only ones with shipped warm starts); `register_task` adds yours."""


def register_task(name: str, task: "Task | Callable[[], Task]") -> None:
    """Make your Task (or a zero-argument function that builds one) known as `name`, so that
    `make_config(task=name)` and everything that takes a task name reach it in this process.
    A grid's cells and the command line run in other processes: give them the task's module
    path instead ('mypkg.tasks:my_task', see docs/your_own_task.md). Registering a name again
    replaces it (a notebook cell run twice); a built-in name is refused."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"task name {name!r}: give a non-empty name without ':' (':' marks a module path)")
    if name in BUILTIN_TASKS:
        raise ValueError(f"task {name!r} is built in; register yours under another name")
    TASKS[name] = _factory_of(task, name)


def task_factory(name: str) -> Callable[..., Task]:
    """The function that builds task `name` (a registered name or 'module:attribute'), not yet
    called: how a config's task is checked without building it. ValueError when unknown."""
    if is_address(name):
        return _factory_of(load_object(name, "task"), name)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}, or give your own as {form('task')}")
    return TASKS[name]


def get_task(name: str, seed: int = 0, tokenizer=None) -> Task:
    """The task `name` (registered, or your own as 'module:attribute': a Task or a zero-argument
    function returning one); chat tasks format their prompts with `tokenizer`'s chat template."""
    factory = task_factory(name)
    if name in CHAT_TASKS:
        return factory(seed=seed, tokenizer=tokenizer)
    return factory(seed=seed)


def _factory_of(task, where: str) -> Callable[..., Task]:
    """A `factory(seed=0)` for a user's Task or zero-argument function (the seed is the task's own
    business: a user's task has one fixed split)."""
    if isinstance(task, Task):
        return lambda seed=0: task
    needed = _required_arguments(task)
    if needed is None or needed:
        what = f"a function of ({', '.join(needed)})" if needed else f"of type {type(task).__name__}"
        raise ValueError(f"task {where!r} is {what}; give a Task or a function of no arguments that returns one")

    def build(seed=0):
        made = task()
        if not isinstance(made, Task):
            raise ValueError(f"task {where!r}: calling it returned a {type(made).__name__}, not a minirl.tasks.Task")
        return made
    return build


def _required_arguments(fn) -> list[str] | None:
    """The arguments a call of `fn` must be given (None: `fn` is not callable)."""
    if not callable(fn):
        return None
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):                       # a builtin without a signature: let the call tell
        return []
    return [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
