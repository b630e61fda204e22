"""The tiny policy: a real `Qwen2ForCausalLM` and a character-level tokenizer.

The model is the same class that `from_pretrained("Qwen/Qwen2.5-0.5B-Instruct")` returns,
only much smaller, so every code path (generation with a KV cache, LoRA on
`q_proj ... down_proj`, 4-bit loading) is the one a real Qwen model takes.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

from .profiles import TinySize

hf_logging.disable_progress_bar()  # a progress bar per 3 MB load/save of the tiny model is noise

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
# Every printable ASCII character is one token, so a task written in a notebook can use
# any text it likes; characters outside this set become <unk>.
CHARACTERS = sorted(set(string.printable) - set("\t\n\r\x0b\x0c"))
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]



def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level `PreTrainedTokenizerFast`: one token per printable character."""
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK] + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left"
    )


def build_tiny_model(size: TinySize, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Qwen2ForCausalLM:
    """A freshly initialised tiny `Qwen2ForCausalLM` (seeded)."""
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def load_policy(path: str | Path) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    """Load a saved policy and its tokenizer (a warm start, or any `save_pretrained` folder)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"no model at {path}; make one with: python -m minirl warmstart --task <task> --profile <profile>"
        )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tokenizer


def add_lora(model: Qwen2ForCausalLM, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """Wrap the policy in a peft LoRA adapter on every attention and MLP projection."""
    from peft import LoraConfig, get_peft_model  # optional: peft, for LoRA only (see hf.is_lora)

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
