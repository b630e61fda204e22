"""GPU check of the hf backend: QLoRA GRPO steps on a model of Qwen2.5-0.5B's shape, no hub needed.

    python tests/gpu/check_qlora.py                  # on any NVIDIA GPU: prints one JSON line
    python tests/gpu/check_qlora.py --shape tiny     # the same code path in seconds on a CPU

It builds a `Qwen2ForCausalLM` from a config of the real Qwen2.5-0.5B's shape (random weights:
speed and memory are those of the real model), saves it to a local folder with minirl's
character tokenizer, reloads it through `minirl.hf.load_hf_policy` (4-bit NF4 + LoRA +
gradient checkpointing) and runs a few GRPO steps with `grpo` and `clip_cov`. The reward is a
toy (the parity of the completion's length), only there so that advantages are not all zero.
Step time is the median over the steps after the first (which warms up kernels).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from minirl.config import make_config
from minirl.models import build_tokenizer
from minirl.tasks import Example, Task
from minirl.trainer import Trainer

# Qwen2.5-0.5B-Instruct's config.json (vocab, width, depth, heads, MLP, tied embeddings)
SHAPES = {
    "qwen2.5-0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
}


def save_model(shape: str, folder: str) -> None:
    tokenizer = build_tokenizer()
    config = Qwen2Config(**SHAPES[shape], max_position_embeddings=4096, rope_theta=1e6,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def toy_task(prompt_len: int, max_new_tokens: int) -> Task:
    prompts = [Example(f"{i:03d}" + "x" * (prompt_len - 3), None) for i in range(64)]
    return Task("toy", train=prompts, eval=prompts[:4], reward=lambda text, ex: float(len(text) % 2),
                max_new_tokens=max_new_tokens)


def run_method(folder: str, method: str, args) -> dict:
    config = make_config("smoke", backend="hf", init=folder, method=method, steps=args.steps,
                         prompts_per_step=args.prompts, group_size=args.group, num_mini_batches=args.mini_batches,
                         eval_every=10**9, lr=1e-5)
    trainer = Trainer(config, task=toy_task(args.prompt_len, args.max_new_tokens))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rows = [trainer.train_step() for _ in range(args.steps)]
    steps = [r["step_s"] for r in rows[1:]] or [rows[0]["step_s"]]
    return {
        "step_s": statistics.median(steps),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows[1:] or rows),
        "response_len": rows[-1]["response_len"],
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "loss_finite": all(math.isfinite(r["pg_loss"]) for r in rows),
        "entropy_logged": all(r.get("entropy") is not None and math.isfinite(r["entropy"]) for r in rows),
        "entropy": rows[-1]["entropy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--mini-batches", type=int, default=4)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--methods", nargs="+", default=["grpo", "clip_cov"])
    args = parser.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    result = {"device": device, "shape": args.shape, "rows_per_step": args.prompts * args.group,
              "prompt_len": args.prompt_len, "max_new_tokens": args.max_new_tokens, "torch": torch.__version__}
    if torch.cuda.is_available():
        result["gpu_mem_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    with tempfile.TemporaryDirectory() as folder:
        start = time.time()
        save_model(args.shape, folder)
        result["save_s"] = time.time() - start
        for method in args.methods:
            result[method] = run_method(folder, method, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
