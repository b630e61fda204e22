"""A run's policy read back from its folder: the one it started from, or its last checkpoint.
(`minirl.results` reads a run's metrics and settings without torch; this loads the model.)
"""
from __future__ import annotations

from pathlib import Path

from .checkpoints import load_checkpoint_file
from .config import TrainConfig
from .hf import is_lora, load_adapter_state
from .trainer import Trainer


def policy_at(folder, step: int):
    """(model, tokenizer, task, config) of a run at `step`: 0 is the policy it started from, any
    other step its checkpoint (the trainer keeps only the latest one, at the run's last step)."""
    state = load_checkpoint_file(Path(folder) / "checkpoint.pt")   # tensors and plain values: nothing in it runs
    if step not in (0, state["step"]):
        raise ValueError(f"{folder} holds the policy at steps 0 and {state['step']} only (got {step})")
    trainer = Trainer(TrainConfig(**state["config"]))       # loads the starting policy and the task
    if step:
        if is_lora(trainer.model):
            load_adapter_state(trainer.model, state["adapter"])
        else:
            trainer.model.load_state_dict(state["model"])
    return trainer.model.eval(), trainer.tokenizer, trainer.task, trainer.config
