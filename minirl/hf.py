"""The `hf` backend: a real Qwen checkpoint in 4-bit NF4 with a LoRA adapter (QLoRA).

    model, tokenizer = load_hf_policy("Qwen/Qwen2.5-0.5B-Instruct")     # or a local folder

* `from_pretrained` of the checkpoint (`trust_remote_code` stays off), quantised on load by
  bitsandbytes to 4-bit NF4 with double quantisation; matmuls run in bf16 where the GPU has it
  (Ampere and later), fp16 on a T4, fp32 on a CPU.
* `prepare_model_for_kbit_training` (norms in fp32, input gradients on for checkpointing),
  gradient checkpointing, and a peft LoRA adapter on every attention and MLP projection
  (`models.LORA_TARGETS`): only the adapter trains.
* The reference policy of KL-to-reference methods is the same model with the adapter switched
  off (`reference_policy`): no second copy in memory.

bitsandbytes 0.50 also runs NF4 on a CPU, so the tests take this exact path with the tiny Qwen2
saved to a folder; a GPU only changes the speed. Checkpoints of a LoRA run hold the adapter and
its optimizer only (`adapter_state` / `load_adapter_state`), megabytes instead of the base model.

Models documented for the `gpu` profile: Qwen/Qwen2.5-0.5B-Instruct (default; a free T4's 15 GB
is plenty), Qwen/Qwen2.5-1.5B-Instruct, Qwen/Qwen2.5-Math-1.5B, Qwen/Qwen3-0.6B.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from .models import LORA_TARGETS

HF_MODELS = ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-Math-1.5B",
             "Qwen/Qwen3-0.6B")


def compute_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on GPUs with native bf16 (compute capability 8.0 and up: A100, L4, H100), fp16 on older
    ones (a T4 is 7.5), fp32 on a CPU. `torch.cuda.is_bf16_supported()` is not asked: it counts
    emulation and says True on a T4, where bf16 matmuls run several times slower than fp16."""
    device = torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return torch.float32


def load_hf_policy(name_or_path: str | Path, load_in_4bit: bool = True, lora_r: int = 16, lora_alpha: int = 32,
                   lora_dropout: float = 0.0, gradient_checkpointing: bool = True, device: str | None = None,
                   seed: int = 0):
    """(peft model, tokenizer) for `name_or_path`, a hub name or a local `save_pretrained` folder.
    `seed` draws the adapter's initial A matrices (B starts at 0, so the policy starts as the base)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training  # optional: peft, for LoRA only (see is_lora)

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = compute_dtype(device)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype) if load_in_4bit else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, quantization_config=quantization, dtype=dtype,
                                                     device_map={"": str(device)}, trust_remote_code=False)
    except OSError as err:
        raise FileNotFoundError(f"cannot load {str(name_or_path)!r}: not a local model folder, and the Hugging Face hub "
                      f"did not provide it ({type(err).__name__}). Pass a local folder written by save_pretrained, "
                      f"or a hub name such as {HF_MODELS[0]!r} on a machine that can reach the hub") from err
    tokenizer.padding_side = "left"                  # generation appends on the right
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if load_in_4bit:
        _keep_cpu_weights_trainable(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=LORA_TARGETS,
                      task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, lora), tokenizer


def _keep_cpu_weights_trainable(model) -> None:
    """On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight into an inference-only
    layout at the first no-grad forward (here: the first generate), and a training forward through
    that layout then fails in autograd. Turning the repacking off keeps one layout for both."""
    import bitsandbytes as bnb  # optional: bitsandbytes, for 4-bit models (pip install "minirl[quant]")

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def is_lora(model) -> bool:
    """Whether `model` carries a peft adapter. A model can only be a PeftModel once peft has been
    imported, so the tiny backend never imports peft (and, through it, bitsandbytes, whose CPU
    kernels print a warning on import) just to ask."""
    if "peft" not in sys.modules:
        return False
    from peft import PeftModel  # optional: peft, for LoRA only (see is_lora)

    return isinstance(model, PeftModel)


def reference_policy(model):
    """Context in which `model` computes the reference policy: the adapter switched off."""
    return model.disable_adapter() if is_lora(model) else contextlib.nullcontext()


def adapter_state(model) -> dict:
    """The trainable adapter weights only (what a LoRA checkpoint needs)."""
    from peft import get_peft_model_state_dict  # optional: peft, for LoRA only (see is_lora)

    return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(model).items()}


def load_adapter_state(model, state: dict) -> None:
    from peft import set_peft_model_state_dict  # optional: peft, for LoRA only (see is_lora)

    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"checkpoint holds adapter weights this model does not have: {unexpected[:3]} ...")
