"""pass@1 and pass@k of a policy on a task's fixed eval split."""
from __future__ import annotations

import torch

from .diagnostics import pass_at_k
from .task_types import Task
from .tools import sample_for_task


@torch.no_grad()
def evaluate(model, tokenizer, task: Task, n_samples: int = 16, k: int = 8, temperature: float = 1.0,
             top_p: float = 1.0, seed: int = 0, max_prompts: int | None = None,
             batch_prompts: int = 64) -> dict[str, float]:
    """Sample `n_samples` completions of each eval prompt and report the unbiased pass@1 and
    pass@k, averaged over prompts, and the mean token entropy of those samples.

    Sampling runs under its own seed in a forked RNG, so evaluating never changes the
    training run's random stream.
    """
    examples = task.eval[:max_prompts]
    was_training = model.training
    model.eval()
    p1, pk, entropy_sum, tokens = 0.0, 0.0, 0.0, 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(examples), batch_prompts):
            chunk = examples[start:start + batch_prompts]
            rollout = sample_for_task(model, tokenizer, task, [e.prompt for e in chunk], n_samples,
                                      temperature, top_p)
            for j, example in enumerate(chunk):
                texts = rollout.completions[j * n_samples:(j + 1) * n_samples]
                correct = sum(task.reward(t, example) >= 1.0 for t in texts)
                p1 += pass_at_k(n_samples, correct, 1)
                pk += pass_at_k(n_samples, correct, k)
            entropy_sum += rollout.entropy.sum().item()
            tokens += rollout.response_mask.sum().item()
    model.train(was_training)
    return {"pass_at_1": p1 / len(examples), "pass_at_k": pk / len(examples),
            "eval_entropy": entropy_sum / max(tokens, 1.0)}
