"""GPU check of the hf backend: QLoRA GRPO steps on a model of Qwen2.5-0.5B's shape, no hub needed.

    python tests/gpu/check_qlora.py                  # on any NVIDIA GPU: prints one JSON line
    python tests/gpu/check_qlora.py --shape tiny     # the same code path in seconds on a CPU

It builds a `Qwen2ForCausalLM` from a config of the real Qwen2.5-0.5B's shape (random weights:
speed and memory are those of the real model), saves it to a local folder with minirl's
character tokenizer, reloads it through `minirl.hf.load_hf_policy` (4-bit NF4 + LoRA +
gradient checkpointing) and runs a few GRPO steps with `grpo` and `clip_cov`. Then TRL's
`GRPOTrainer` runs the same model (a fresh 4-bit LoRA load), batch, group size, mini- and
micro-batches, and the ratio of the two step times is reported (`trl_over_minirl`). The reward
is a toy (the parity of the completion's length), only there so that advantages are not all
zero. Step time is the median over the steps after the first (which warms up kernels).
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
                         micro_batch_size=min(4, args.prompts * args.group // args.mini_batches),
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


class _CycleTimer:
    """Stamps the time of every `every`-th optimizer step of TRL: one generation cycle = one GRPO step."""

    def __init__(self, every: int):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step % every == 0:
                    timer.seconds.append(time.perf_counter() - timer.start)
                    timer.start = time.perf_counter()
        self.callback, self.seconds, self.start = Callback(), [], 0.0


def run_trl(folder: str, args, out: str) -> dict:
    """TRL 1.16's GRPOTrainer on the same 4-bit LoRA model, batch and update schedule."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from minirl.hf import compute_dtype, load_hf_policy

    model, tokenizer = load_hf_policy(folder)
    task = toy_task(args.prompt_len, args.max_new_tokens)
    rows, updates = args.prompts * args.group, args.mini_batches
    micro = min(4, rows // updates)
    dataset = Dataset.from_dict({"prompt": [e.prompt for e in task.train]})
    cuda = torch.cuda.is_available()
    bf16 = cuda and compute_dtype("cuda") == torch.bfloat16      # the same choice as minirl's own path
    config = GRPOConfig(
        output_dir=out, use_cpu=not cuda, bf16=bf16, fp16=cuda and not bf16, gradient_checkpointing=True,
        report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, learning_rate=1e-5,
        per_device_train_batch_size=micro, gradient_accumulation_steps=rows // updates // micro,
        steps_per_generation=rows // micro, num_generations=args.group, max_completion_length=args.max_new_tokens,
        temperature=1.0, top_p=1.0, top_k=0, beta=0.0, use_vllm=False, max_steps=updates * args.steps)
    timer = _CycleTimer(updates)
    trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [float(len(c) % 2) for c in completions],
                          args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer.callback])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    steps = timer.seconds[1:] or timer.seconds
    return {"step_s": statistics.median(steps), "steps_timed": len(steps),
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}


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
    parser.add_argument("--no-trl", action="store_true", help="skip TRL's GRPOTrainer on the same batch")
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
        if not args.no_trl:
            with tempfile.TemporaryDirectory() as out:
                result["trl_grpo"] = run_trl(folder, args, out)
            result["trl_over_minirl"] = result["trl_grpo"]["step_s"] / result[args.methods[0]]["step_s"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
