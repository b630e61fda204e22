"""Seconds per GRPO step: minirl's own Trainer against TRL's GRPOTrainer, same model and batch.

One GRPO step = sample G completions for each of P prompts with the current policy, score
them with the task's reward, then make `num_mini_batches` optimizer updates on those
P*G completions. Both trainers get the same tiny Qwen2ForCausalLM (a fresh copy of the
shipped warm start for each), the same char tokenizer, the same countdown reward and the
same sizes (profile `cpu`: 32 prompts x 8 samples = 256 completions, 4 updates of 64,
8 new tokens at most, temperature 1, top-p 1, no top-k, lr 2e-4, no KL term, fp32, CPU).

How it is timed: TRL's `trainer.train()` runs, and a callback stamps time.perf_counter()
after every `steps_per_generation`-th optimizer step (TRL's global_step counts optimizer
updates, so 4 of them are one generation cycle = one minirl step). Right after each such
cycle the callback runs and times one `minirl.Trainer.train_step()` (evaluation off). So
the two alternate step by step and share whatever else the machine is doing; the medians
are the numbers to quote, and the run reports how many cores other processes kept busy
(timings are only comparable between runs on a quiet machine). The first `--warmup` steps
of each side are dropped. Rollout tokens/s = generated response tokens (EOS included) per
second of the whole step. Not a test: it asserts no timings.

Two minirl sides take turns after each TRL cycle: the default trainer (its sampler prefills each
prompt once; its update packs the rows of each prompt into one sequence so that the prompt runs once
with gradient, `share_prompt_update`; AdamW's fused kernel, `fused_adamw`) and the earlier default,
`share_prompt_update=False, fused_adamw=False` (every row runs its own copy of its prompt in the update,
and AdamW loops over the weights; same loss and gradients to ~1e-6).
`--group-sizes 4 8 16` repeats the whole
comparison for each group size G (prompts per step fixed), to show how each side's cost grows
with G. Medians with the interquartile range, and the load average (`os.getloadavg()`) before
and after each run, are printed.

    python benchmarks/bench_grpo_step.py                     # profile cpu, G = 8, 3 warm-up + 20 steps
    python benchmarks/bench_grpo_step.py --profile smoke --group-sizes 4 8 16
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
from transformers import TrainerCallback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from anywhere
from minirl.config import make_config
from minirl.models import load_policy
from minirl.tasks import get_task
from minirl.trainer import Trainer
from minirl.warmstart import default_path


def make_trl_trainer(profile: str, cycles: int, out: str, callback, group_size: int | None = None):
    """TRL's GRPOTrainer on a fresh copy of the warm start, set up like minirl's profile."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    cfg = make_config(profile, **({"group_size": group_size} if group_size else {}))
    task = get_task(cfg.task)
    model, tokenizer = load_policy(default_path(task.name, profile))
    rows, updates = cfg.prompts_per_step * cfg.group_size, cfg.num_mini_batches
    # Plain-text prompts (the char tokenizer has no chat template); `index` finds the Example.
    dataset = Dataset.from_dict({"prompt": [e.prompt for e in task.train], "index": list(range(len(task.train)))})

    def countdown_reward(prompts, completions, completion_ids, index, **_):
        callback.generated.append((len(completions), sum(len(ids) for ids in completion_ids)))  # EOS included
        return [task.reward(text, task.train[i]) for text, i in zip(completions, index)]

    args = GRPOConfig(
        output_dir=out, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
        report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=cfg.seed,
        learning_rate=cfg.lr, lr_scheduler_type="constant", weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, optim="adamw_torch_fused",    # both: AdamW's fused kernel (the defaults)
        per_device_train_batch_size=rows // updates, gradient_accumulation_steps=1,
        steps_per_generation=updates, num_generations=cfg.group_size, num_iterations=1,
        max_completion_length=task.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
        top_k=0, beta=0.0, use_vllm=False, max_steps=updates * cycles,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=countdown_reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[callback])
    a = trainer.args
    settings = (a.generation_batch_size, a.steps_per_generation, a.num_iterations, a.gradient_accumulation_steps)
    if settings != (rows, updates, 1, 1) or trainer.ref_model is not None:
        raise RuntimeError(f"TRL is not set up like minirl: (generation batch, steps/generation, "
                           f"iterations, grad accumulation) = {settings}, ref model {trainer.ref_model}")
    return trainer


class Alternate(TrainerCallback):
    """Runs inside TRL's loop: after each TRL generation cycle (`every` optimizer steps), one step
    of each minirl trainer, in turn. Each side is timed on its own, so all see the same load."""

    def __init__(self, minirl_trainers: dict[str, Trainer], every: int):
        self.minirl, self.every = minirl_trainers, every
        self.trl_s, self.generated = [], []
        self.minirl_s = {name: [] for name in minirl_trainers}
        self.minirl_tokens = {name: [] for name in minirl_trainers}

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every:
            return
        self.trl_s.append(time.perf_counter() - self.start)          # one TRL cycle = one GRPO step
        for name, trainer in self.minirl.items():
            start = time.perf_counter()
            m = trainer.train_step()
            self.minirl_s[name].append(time.perf_counter() - start)
            c = trainer.config
            self.minirl_tokens[name].append(m["response_len"] * c.prompts_per_step * c.group_size)
        self.start = time.perf_counter()


def minirl_trainers(profile: str, group_size: int) -> dict[str, Trainer]:
    """The default trainer and the earlier default (per-row update and AdamW's loop over the weights:
    `share_prompt_update=False, fused_adamw=False`), each on its own copy of the warm start."""
    def make(**settings):
        # steps and eval_every huge: train_step evaluates when step % eval_every == 0 or step == steps
        return Trainer(make_config(profile, steps=10**9, eval_every=10**9, group_size=group_size, **settings))
    return {"minirl": make(), "minirl, earlier default": make(share_prompt_update=False, fused_adamw=False)}


def run(profile: str, warmup: int, steps: int, group_size: int | None = None) -> dict[str, dict]:
    """{side: summary} for one group size (the profile's by default); TRL under "TRL GRPOTrainer"."""
    group_size = group_size or make_config(profile).group_size
    ours = minirl_trainers(profile, group_size)
    first = next(iter(ours.values())).config
    rows = first.prompts_per_step * group_size
    timer = Alternate(ours, first.num_mini_batches)
    with tempfile.TemporaryDirectory() as out:
        make_trl_trainer(profile, warmup + steps, out, timer, group_size).train()
    if len(timer.generated) != warmup + steps or any(n != rows for n, _ in timer.generated):
        raise RuntimeError(f"expected {warmup + steps} TRL generation batches of {rows} completions, "
                           f"got {[n for n, _ in timer.generated]}")
    trl_tokens = [t for _, t in timer.generated]
    sides = {name: summarize(timer.minirl_s[name][warmup:], timer.minirl_tokens[name][warmup:]) for name in ours}
    return {**sides, "TRL GRPOTrainer": summarize(timer.trl_s[warmup:], trl_tokens[warmup:])}


def summarize(times: list[float], tokens: list[float]) -> dict:
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return {"median_s": statistics.median(times), "q1_s": q1, "q3_s": q3, "mean_s": statistics.mean(times),
            "std_s": statistics.stdev(times) if len(times) > 1 else 0.0, "n": len(times),
            "tokens_per_s": sum(tokens) / sum(times), "tokens_per_step": sum(tokens) / len(tokens)}


def busy_cpu_s() -> tuple[float, float]:
    """(CPU seconds all cores have been busy since boot, CPU seconds this process has used)."""
    ticks = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")      # minus idle and iowait
    return busy, sum(os.times()[:2])


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    import trl
    return (f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}, trl {trl.__version__}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu"])
    parser.add_argument("--steps", type=int, default=20, help="measured steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps per side, run first")
    parser.add_argument("--group-sizes", type=int, nargs="+", default=None,
                        help="samples per prompt G, one comparison each (default: the profile's)")
    a = parser.parse_args()
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    cfg = make_config(a.profile)
    sizes = a.group_sizes or [cfg.group_size]
    print(f"\n- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"- machine: {machine()}")
    print(f"- command: `python benchmarks/bench_grpo_step.py --profile {a.profile} --steps {a.steps} "
          f"--warmup {a.warmup} --group-sizes {' '.join(map(str, sizes))}`")
    print(f"- config: profile {a.profile}, {cfg.prompts_per_step} prompts x G samples, {cfg.num_mini_batches} "
          f"updates per step, lr {cfg.lr}, {a.warmup} warm-up + {a.steps} measured steps per side\n")
    print("| G | trainer | s/step median [IQR] | TRL / this | rollout tokens/s | load avg 1 min (start → end) |")
    print("|---|---|---|---|---|---|")
    for G in sizes:
        load0, (busy0, own0), start = os.getloadavg()[0], busy_cpu_s(), time.perf_counter()
        sides = run(a.profile, a.warmup, a.steps, G)
        load1, (busy1, own1), wall = os.getloadavg()[0], busy_cpu_s(), time.perf_counter() - start
        trl_median = sides["TRL GRPOTrainer"]["median_s"]
        others = ((busy1 - busy0) - (own1 - own0)) / wall
        for name, r in sides.items():
            print(f"| {G} | {name} | {r['median_s']:.3f} [{r['q1_s']:.3f}–{r['q3_s']:.3f}] | "
                  f"{trl_median / r['median_s']:.2f}× | {r['tokens_per_s']:.0f} | "
                  f"{load0:.1f} → {load1:.1f} (others: {others:.2f} of {os.cpu_count()} cores) |", flush=True)
    print("\nTRL / this = TRL's median s/step over this side's, in the same run (goal: >= 2.0 at profile cpu)")


if __name__ == "__main__":
    main()
