"""Per-step cost of every loss-level method relative to `grpo`, on the same batch, in one process.

One rollout is sampled once (smoke- or cpu-size policy, seed 0). Then, for each method, a fresh
copy of the policy runs the trainer's update on exactly that batch (the method's forward,
loss, backward and AdamW steps over `num_mini_batches` mini-batches). Methods are timed in
interleaved rounds, so that a change in machine load hits all of them alike; the figure is the
median over rounds of (method's update time / grpo's update time in the same round).

    python benchmarks/bench_method_overhead.py --profile cpu --rounds 7

The goal for loss-level methods is at most 1.10×. Methods that change what is sampled (DAPO's
dynamic sampling, AEPO's temperature samples) cost extra *rollouts*, which this update-only
figure leaves out; for them a second table times whole training steps (rollout, the method's
batch step, update) against grpo's whole step, also interleaved, every round from the same
policy and step. Not a test: it prints tables and asserts nothing.
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

from minirl.compare import BATCH_LEVEL_VARIANTS
from minirl.config import make_config
from minirl.core import group_advantages
from minirl.methods import METHODS
from minirl.step import collect
from minirl.trainer import Trainer


def time_update(trainer: Trainer, rollout, adv_tok, ref_log_prob) -> float:
    start = time.perf_counter()
    trainer._update(rollout, adv_tok, ref_log_prob)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu"])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    base = Trainer(make_config(args.profile, eval_every=10**9))
    torch.manual_seed(0)
    base.model.eval()
    batch = collect(base.sampler(), base.task, base.config, base.step)
    rollout, rewards = batch.rollout, batch.rewards
    adv, _ = group_advantages(rewards, base.config.group_size)
    adv_tok = adv[:, None] * rollout.response_mask
    trainers = {}
    for name, method in METHODS.items():
        if method.transform_batch is not None:       # batch-level methods: timed as whole steps below
            continue
        config = make_config(args.profile, method=name, eval_every=10**9, dynamic_sampling=False)
        trainers[name] = Trainer(config, model=copy.deepcopy(base.model), tokenizer=base.tokenizer)
    ref = {name: (t._ref_log_prob(rollout) if t.ref_model is not None else None) for name, t in trainers.items()}

    ratios = {name: [] for name in trainers}
    seconds = {name: [] for name in trainers}
    for _ in range(args.rounds + 1):                      # the first round warms up and is dropped
        times = {}
        for name, trainer in trainers.items():
            trainer.model.load_state_dict(base.model.state_dict())  # every method starts from the same policy
            torch.manual_seed(1)
            times[name] = time_update(trainer, rollout, adv_tok, ref[name])
        for name in trainers:
            ratios[name].append(times[name] / times["grpo"])
            seconds[name].append(times[name])
    print(f"{args.profile} profile, {len(rollout)} sequences, {int(rollout.response_mask.sum())} response tokens, "
          f"{base.config.num_mini_batches} mini-batch updates; {args.rounds} rounds; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| method | update s (median) | vs grpo (median ratio) | needs |")
    print("|---|---|---|---|")
    for name in trainers:
        r = statistics.median(ratios[name][1:])
        s = statistics.median(seconds[name][1:])
        print(f"| {name} | {s:.3f} | {r:.2f}× | {', '.join(METHODS[name].needs) or '—'} |")
    whole_steps(args)


# Methods whose cost is in sampling or in a batch step: (label, method, method settings, TrainConfig
# overrides); the batch-level ones at notebook 04's settings (compare.BATCH_LEVEL_VARIANTS).
SAMPLING_VARIANTS = [
    ("grpo", "grpo", {}, {}),
    ("dapo (dynamic sampling)", "dapo", {}, {}),
    ("aepo (official: a quarter of the prompts)", "aepo", {}, {}),
    ("aepo (notebook 03: every prompt)", "aepo", {"prompt_fraction": "1"}, {}),
] + [(label, method, settings, own[0] if own else {})
     for label, (method, settings, *own) in BATCH_LEVEL_VARIANTS.items() if label != "grpo"]


def whole_steps(args) -> None:
    """Median over rounds of (variant's whole train_step / grpo's), each round from step 0 and
    the same starting policy, so every variant sees the same prompts and random stream."""
    trainers = {label: Trainer(make_config(args.profile, method=method, eval_every=10**9,
                                           method_settings=settings, **overrides))
                for label, method, settings, overrides in SAMPLING_VARIANTS}
    start_state = copy.deepcopy(trainers["grpo"].model.state_dict())
    ratios = {label: [] for label in trainers}
    seconds = {label: [] for label in trainers}
    for _ in range(args.rounds + 1):
        times = {}
        for label, trainer in trainers.items():
            trainer.model.load_state_dict(start_state)
            trainer.step, trainer.prev_entropy = 0, None
            if trainer.method_state is not None:
                trainer.method_state = trainer.method.state_cls()
            begin = time.perf_counter()
            trainer.train_step()
            times[label] = time.perf_counter() - begin
        for label in trainers:
            ratios[label].append(times[label] / times["grpo"])
            seconds[label].append(times[label])
    print()
    print("| variant (whole step: rollout + batch step + update) | step s (median) | vs grpo (median ratio) |")
    print("|---|---|---|")
    for label in trainers:
        print(f"| {label} | {statistics.median(seconds[label][1:]):.3f} | {statistics.median(ratios[label][1:]):.2f}× |")


if __name__ == "__main__":
    main()
