"""What the notebooks' first cell asks of the machine: is there a CUDA GPU, and which profile follows.

    gpu = find_gpu()                                   # GPU(name='Tesla T4', memory_gib=14.7) or None
    if gpu is not None:
        os.environ.setdefault("MINIRL_PROFILE", "gpu")   # the parameters cell reads it
    print(describe(gpu))

On Colab the cell first installs `minirl[gpu]` from the course's GitHub repository (the `gpu`
extra: bitsandbytes, datasets, math-verify, papermill; Colab keeps its own torch); the slug is
pyproject.toml's [project.urls] Repository, which `notebooks/sync_repository.py` writes into every
notebook. A profile the user already chose, through
`MINIRL_PROFILE` or papermill's `-p profile ...`, always wins over the GPU's default.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import torch

PROFILE_VARIABLE = "MINIRL_PROFILE"
GPU_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


class GPU(NamedTuple):
    name: str
    memory_gib: float
    """Total memory of the device in GiB (2**30 bytes)."""


def find_gpu() -> GPU | None:
    """The first CUDA device's name and memory, or None where torch sees no CUDA GPU."""
    if not torch.cuda.is_available():
        return None
    properties = torch.cuda.get_device_properties(0)
    return GPU(properties.name, properties.total_memory / 2**30)


def describe(gpu: GPU | None, environ=os.environ) -> str:
    """One or two sentences for the reader: what was found, and which profile the notebook runs."""
    chosen = environ.get(PROFILE_VARIABLE)
    if gpu is None:
        default = "cpu"
        found = "No CUDA GPU found: the notebook defaults to the cpu profile, which trains the tiny policy on the CPU"
        hint = " (on Colab, Runtime → Change runtime type → T4 GPU runs the real model)."
    else:
        default = "gpu"
        found = (f"CUDA GPU: {gpu.name}, {gpu.memory_gib:.1f} GiB: the notebook defaults to the gpu profile, "
                 f"which trains {GPU_MODEL} in 4-bit LoRA on GSM8K where a notebook trains")
        hint = "."
    if chosen and chosen != default:
        return f"{found}; {PROFILE_VARIABLE}={chosen!r} chooses the profile instead."
    return found + hint
