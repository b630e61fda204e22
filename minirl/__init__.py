"""minirl: a small lab for entropy collapse in RL fine-tuning of language models."""
from .config import TrainConfig, make_config
from .methods import METHODS, get_method
from .tasks import TASKS, Example, Task, get_task

__all__ = ["METHODS", "TASKS", "Example", "Task", "TrainConfig", "get_method", "get_task", "make_config"]
__version__ = "0.1.0"
