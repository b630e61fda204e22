"""Seconds per GRPO step: minirl's own Trainer against TRL's GRPOTrainer, same model and batch.

One GRPO step = sample G completions for each of P prompts with the current policy, score
them with the task's reward, then make `num_mini_batches` optimizer updates on those
P*G completions. Both trainers get the same tiny Qwen2ForCausalLM (a fresh copy of the
shipped warm start for each), the same char tokenizer, the same countdown reward and the
same sizes (profile `cpu`: 32 prompts x 8 samples = 256 completions, 4 updates of 64,
8 new tokens at most, temperature 1, top-p 1, no top-k, lr 2e-4, no KL term, fp32, CPU).

  minirl: wall time of each `Trainer.train_step()` (evaluation switched off).
  TRL:    a callback stamps time.perf_counter() after every `steps_per_generation`-th
          optimizer step; the gap between two stamps is one generation cycle, which is
          the same work as one minirl step (TRL's global_step counts optimizer updates).

The first `--warmup` steps of each side are dropped. Rollout tokens/s = generated response
tokens (EOS included) per second of the whole step. The sides run one after the other in
this process, minirl first; the machine should otherwise be idle (load average is printed).

    python benchmarks/bench_grpo_step.py                     # profile cpu, 3 warm-up + 15 steps
    python benchmarks/bench_grpo_step.py --profile smoke --steps 5 --warmup 1
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import torch
import transformers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from anywhere
from minirl.config import make_config
from minirl.models import load_policy
from minirl.tasks import get_task
from minirl.trainer import Trainer
from minirl.warmstart import default_path


def bench_minirl(profile: str, warmup: int, steps: int) -> dict:
    # steps and eval_every huge: train_step evaluates when step % eval_every == 0 or step == steps
    cfg = make_config(profile, steps=10**9, eval_every=10**9)
    trainer = Trainer(cfg)
    rows = cfg.prompts_per_step * cfg.group_size
    times, tokens = [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        m = trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            tokens.append(m["response_len"] * rows)
    return summarize(times, tokens)


def bench_trl(profile: str, warmup: int, steps: int) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    cfg = make_config(profile)
    task = get_task(cfg.task)
    model, tokenizer = load_policy(default_path(task.name, profile))
    rows = cfg.prompts_per_step * cfg.group_size
    # Plain-text prompts (the char tokenizer has no chat template); `index` finds the Example.
    dataset = Dataset.from_dict({"prompt": [e.prompt for e in task.train], "index": list(range(len(task.train)))})

    generated = []  # (completions, response tokens) of every generation batch TRL scores

    def countdown_reward(prompts, completions, completion_ids, index, **_):
        generated.append((len(completions), sum(len(ids) for ids in completion_ids)))
        return [task.reward(text, task.train[i]) for text, i in zip(completions, index)]

    class CycleTimer(TrainerCallback):
        """Stamps the time at the start and after every `steps_per_generation` optimizer steps."""

        def __init__(self, every: int):
            self.every, self.stamps = every, []

        def on_train_begin(self, args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % self.every == 0:
                self.stamps.append(time.perf_counter())

    updates = cfg.num_mini_batches
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
            report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=cfg.seed,
            learning_rate=cfg.lr, lr_scheduler_type="constant", weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm, optim="adamw_torch",    # minirl: plain torch.optim.AdamW
            per_device_train_batch_size=rows // updates, gradient_accumulation_steps=1,
            steps_per_generation=updates, num_generations=cfg.group_size, num_iterations=1,
            max_completion_length=task.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
            top_k=0, beta=0.0, use_vllm=False, max_steps=updates * (warmup + steps),
        )
        timer = CycleTimer(updates)
        trainer = GRPOTrainer(model=model, reward_funcs=countdown_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[timer])
        a = trainer.args
        settings = (a.generation_batch_size, a.steps_per_generation, a.num_iterations, a.gradient_accumulation_steps)
        if settings != (rows, updates, 1, 1) or trainer.ref_model is not None:
            raise RuntimeError(f"TRL is not set up like minirl: (generation batch, steps/generation, "
                               f"iterations, grad accumulation) = {settings}, ref model {trainer.ref_model}")
        trainer.train()

    if len(generated) != warmup + steps or any(n != rows for n, _ in generated):
        raise RuntimeError(f"expected {warmup + steps} generation batches of {rows}, got {[n for n, _ in generated]}")
    times = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]
    return summarize(times[warmup:], [t for _, t in generated][warmup:])


def summarize(times: list[float], tokens: list[float]) -> dict:
    return {"median_s": statistics.median(times), "mean_s": statistics.mean(times),
            "std_s": statistics.stdev(times) if len(times) > 1 else 0.0, "n": len(times),
            "tokens_per_s": sum(tokens) / sum(times), "tokens_per_step": sum(tokens) / len(tokens)}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    import trl
    return (f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}, trl {trl.__version__}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu"])
    parser.add_argument("--steps", type=int, default=15, help="measured steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps per side, run first")
    a = parser.parse_args()
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()

    load_before = os.getloadavg()[0]
    ours = bench_minirl(a.profile, a.warmup, a.steps)
    trl_ = bench_trl(a.profile, a.warmup, a.steps)
    cfg = make_config(a.profile)
    print(f"\n- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"- machine: {machine()}")
    print(f"- load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"- command: `python benchmarks/bench_grpo_step.py --profile {a.profile} --steps {a.steps} --warmup {a.warmup}`")
    print(f"- config: profile {a.profile}, {cfg.prompts_per_step} prompts x {cfg.group_size} samples, "
          f"{cfg.num_mini_batches} updates per step, lr {cfg.lr}, {a.warmup} warm-up + {a.steps} measured steps\n")
    print("| trainer | s/step (median) | s/step (mean ± std) | rollout tokens/s | tokens/step |")
    print("|---|---|---|---|---|")
    for name, r in (("minirl", ours), ("TRL GRPOTrainer", trl_)):
        print(f"| {name} | {r['median_s']:.3f} | {r['mean_s']:.3f} ± {r['std_s']:.3f} | "
              f"{r['tokens_per_s']:.0f} | {r['tokens_per_step']:.0f} |")
    print(f"\nratio TRL / minirl (median s/step): {trl_['median_s'] / ours['median_s']:.2f}x "
          f"(goal: >= 1.5x)")


if __name__ == "__main__":
    main()
