"""What a task is: its examples and the Task that holds them with their reward.

The task types (`minirl.tasks`' countdown and arithmetic, `stepwise`, `tools`, `math_data`) build
these; the registry in `minirl.tasks`, above them all, names them. Nothing here imports minirl.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: Any  # whatever the task's reward function needs (a target, numbers, ...)


@dataclass
class Task:
    name: str
    train: list[Example]
    eval: list[Example]
    reward: Callable[[str, Example], float]
    max_new_tokens: int
    sft_targets: Callable[[Example], list[str]] | None = None
    """All correct completions of an example; the warm start trains on one of them."""
    answer_of: Callable[[str, Example], Any] | None = None
    """The final answer a completion gives (hashable; None if it gives none), read without the
    label: what label-free methods (TTRL's majority vote) compare across samples."""
    info: dict = field(default_factory=dict)
