"""Checkpoints and other tensor files: written atomically, read back with `weights_only=True`
(tensors and plain Python values only, so no code in a file can run). The run folder's other
files (`minirl.run_folder`) are read without torch; these need it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .run_folder import atomic_file


def save_atomic(state: dict, path) -> Path:
    """torch.save of `state` to `path`, replacing the old file in one step."""
    with atomic_file(path) as f:
        torch.save(state, f)
    return Path(path)


def load_plain(path, map_location="cpu"):
    """What torch.save wrote to `path`, read with `weights_only=True`: tensors and plain Python
    values only, so no code in the file can run. Any failure is one ValueError line naming the file."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001  (UnpicklingError, RuntimeError, EOFError, ...: one line for all)
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"cannot read {path}: not a file that minirl wrote, or a damaged one "
                         f"({type(err).__name__}: {reason}); it was read as tensors and plain values "
                         "only, nothing in it ran") from None


def load_checkpoint_file(path, map_location="cpu") -> dict:
    """A run's checkpoint dict (`load_plain`), checked to be one."""
    state = load_plain(path, map_location)
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or not isinstance(
            state.get("config"), dict):
        raise ValueError(f"cannot read {path}: not a checkpoint that minirl wrote (no step and config in it)")
    return state
