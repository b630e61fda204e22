"""minirl: a small lab for entropy collapse in RL fine-tuning of language models.

`minirl.make_config`, `minirl.METHODS` and the other names below load their module on first use,
so that `import minirl.results` (or `shipped`, `compare`, `report`) reads results without torch.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["METHODS", "TASKS", "Example", "Task", "TrainConfig", "get_method", "get_task", "make_config"]
HOME = {"TrainConfig": "config", "make_config": "config", "METHODS": "methods", "get_method": "methods",
        "TASKS": "tasks", "Example": "tasks", "Task": "tasks", "get_task": "tasks"}
"""Where each of the package's names lives."""


def __getattr__(name: str):
    if name not in HOME:
        raise AttributeError(f"module 'minirl' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
