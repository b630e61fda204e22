"""Where does a minirl GRPO step spend its time? (companion to bench_grpo_step.py)

Three views of `Trainer.train_step()` on the tiny policy, evaluation off:

1. phases: wall time of the step's parts, by wrapping the functions train_step calls
   (the wrappers cost microseconds; minirl itself is not changed);
2. cProfile: the Python functions with the largest cumulative time;
3. torch.profiler: the torch ops with the largest self CPU time.

    python benchmarks/profile_minirl_step.py                  # profile cpu, 3 warm-up + 10 steps
    python benchmarks/profile_minirl_step.py --profile smoke --steps 5
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
import warnings
from collections import defaultdict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from anywhere
import minirl.rollout
import minirl.step
import minirl.trainer
from minirl.config import make_config
from minirl.trainer import Trainer

spent: dict[str, float] = defaultdict(float)


def timed(name: str, fn):
    """`fn`, adding its wall time to spent[name]."""
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
    return wrapper


def instrument(trainer: Trainer) -> None:
    """Wrap the parts of train_step (module globals and instance attributes; minirl is not edited)."""
    model, task, opt = trainer.model, trainer.task, trainer.optimizer
    minirl.step.StepSampler._sample = timed("rollout: sample() total", minirl.step.StepSampler._sample)
    minirl.rollout.decode = timed("rollout:   decode (shared prefill + sampling loop)", minirl.rollout.decode)
    task.reward = timed("reward (256 calls)", task.reward)
    trainer._update = timed("update: _update() total", trainer._update)
    minirl.trainer.response_logits = timed("update:   response_logits (fwd)", minirl.trainer.response_logits)
    minirl.trainer.gather_log_prob = timed("update:   gather_log_prob", minirl.trainer.gather_log_prob)
    trainer.method.policy_loss = timed("update:   policy_loss (+ .item())", trainer.method.policy_loss)
    torch.Tensor.backward = timed("update:   loss.backward", torch.Tensor.backward)
    torch.nn.utils.clip_grad_norm_ = timed("update:   clip_grad_norm_", torch.nn.utils.clip_grad_norm_)
    opt.step = timed("update:   optimizer.step", opt.step)
    minirl.trainer.covariance_summary = timed("diagnostics: covariance_summary",
                                              minirl.trainer.covariance_summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    a = parser.parse_args()
    warnings.filterwarnings("ignore")
    trainer = Trainer(make_config(a.profile, steps=10**9, eval_every=10**9))
    for _ in range(a.warmup):
        trainer.train_step()

    instrument(trainer)
    spent.clear()
    start = time.perf_counter()
    for _ in range(a.steps):
        trainer.train_step()
    total = (time.perf_counter() - start) / a.steps
    print(f"\n== phases, mean over {a.steps} steps ({a.profile}): {total * 1000:.0f} ms/step")
    for name, s in spent.items():
        print(f"  {name:40s} {s / a.steps * 1000:7.1f} ms  {s / a.steps / total:6.1%}")
    accounted = sum(s for n, s in spent.items() if n.endswith("total") or n.startswith(("reward", "diag")))
    print(f"  {'rest of train_step':40s} {(total - accounted / a.steps) * 1000:7.1f} ms  "
          f"{1 - accounted / a.steps / total:6.1%}")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(a.steps):
        trainer.train_step()
    profiler.disable()
    print(f"\n== cProfile, {a.steps} steps, by cumulative time")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(a.top)

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            trainer.train_step()
    print(f"== torch.profiler, {a.steps} steps, by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top))


if __name__ == "__main__":
    main()
