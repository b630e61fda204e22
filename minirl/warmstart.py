"""Warm start: a short supervised run that leaves the tiny policy competent but uncertain.

RL from a random policy never sees a reward on these tasks, and RL from a perfectly trained
one has nothing left to learn; the warm start sits in between (eval pass@1 roughly 20-50%,
pass@k clearly higher), which is where entropy collapse can be watched. Each step trains on
one randomly chosen correct completion per prompt, so the policy learns that several answers
are right and spreads its probability over them. Deterministic for a given seed.
"""
from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .evaluation import evaluate
from .models import build_tiny_model, build_tokenizer
from .profiles import PROFILES, policy_size
from .run_folder import write_atomic
from .tasks import BUILTIN_TASKS, Task, get_task

ASSETS = Path(__file__).parent / "assets" / "warmstart"
USER_WARMSTARTS = Path("warmstarts")
"""Where the warm start of your own task goes, under the folder you run in (see `default_path`)."""


@dataclass
class WarmStartConfig:
    steps: int = 600
    """Supervised steps; few enough that the policy stays uncertain."""
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


# Each profile's warm start is PROFILES[profile].warmstart (minirl.profiles); a task may lengthen it.
# Chains of equations are longer and harder to learn: 600 steps leave countdown_steps (smoke) at
# 8% pass@1; 1500 at 29% pass@1 and 80% pass@8 (cpu size: 40% and 89%; measured). With the
# calculator doing the arithmetic (countdown_tool), 600 steps already give 46% and 96% (smoke).
TASK_WARMSTART = {"countdown_steps": dict(steps=1500)}


def default_path(task: str, profile: str) -> Path:
    """The warm start a run of `task` starts from when it names none (`init`): the shipped one inside
    the package for minirl's own tasks; for yours (a registered name or 'mypkg.tasks:my_task'),
    warmstarts/<task>-<profile> under the current folder (':' written as '.'), where
    `python -m minirl warmstart --task ...` puts it."""
    if task in BUILTIN_TASKS:
        return ASSETS / f"{task}-{profile}"
    return (USER_WARMSTARTS / f"{task.replace(':', '.')}-{profile}").absolute()


def sft_batch(task: Task, tokenizer, rng: random.Random, batch_size: int):
    """Token ids, attention mask and labels (-100 on the prompt) for prompt + answer + EOS."""
    examples = [task.train[rng.randrange(len(task.train))] for _ in range(batch_size)]
    rows, labels = [], []
    for ex in examples:
        prompt = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        answer = tokenizer(rng.choice(task.sft_targets(ex)), add_special_tokens=False)["input_ids"]
        answer = answer + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])          # right-padded
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    lab = torch.tensor([l + [-100] * (width - len(l)) for l in labels])
    return ids, mask, lab


def warm_start(task: Task | str, profile: str, out: str | Path | None = None, config: WarmStartConfig | None = None,
               progress: bool = True) -> dict:
    """Train a fresh tiny policy on `task.sft_targets`, save it (model + tokenizer), return stats.
    `task` is a Task or a task's name ('countdown', or yours as 'mypkg.tasks:my_task'); `out`
    defaults to `default_path` of that name, where a run of the task looks when it names no `init`."""
    name = task if isinstance(task, str) else task.name
    if isinstance(task, str):
        task = get_task(task)
    if task.sft_targets is None:
        raise ValueError(f"task {task.name!r} has no sft_targets, so it cannot be warm-started")
    size = policy_size(profile)
    config = config or WarmStartConfig(**{**PROFILES[profile].warmstart, **TASK_WARMSTART.get(task.name, {})})
    out = Path(out) if out else default_path(name, profile)
    start = time.time()
    tokenizer = build_tokenizer()
    model = build_tiny_model(size, tokenizer, seed=config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    rng = random.Random(config.seed)
    model.train()
    bar = tqdm(range(config.steps), desc=f"warm start {task.name}/{profile}", disable=not progress)
    for _ in bar:
        ids, mask, labels = sft_batch(task, tokenizer, rng, config.batch_size)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_s = time.time() - start
    stats = evaluate(model, tokenizer, task, n_samples=16, k=8, seed=config.seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stats = {"task": task.name, "profile": profile, **dataclasses.asdict(config), "train_s": round(train_s, 1), **stats}
    write_atomic(out / "warmstart.json", json.dumps(stats, indent=2))
    return {"path": str(out), **stats}
