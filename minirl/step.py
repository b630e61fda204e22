"""The stages of one training step that come before the update, each one a function or a small
object: `Trainer.train_step` calls them in order.

    sample      StepSampler.groups     G completions of each of P prompts: the task's sampler
                                       (tools.task_sampler), or the method's own (`sample_groups`)
    reward      StepSampler.rewards    the task's reward of every completion
                collect                both, for the P prompts of the step (with dynamic sampling,
                                       DAPO's `informative_groups`, methods/dapo.py)
    advantage   core.group_advantages  (in the trainer)
    transform   transform              the method's `transform_batch`, if it has one: it may sample
                                       more of the step's prompts through `MoreOfTheBatch`
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import torch

from .config import TrainConfig, step_seed
from .methods import BatchContext, Method, SamplingContext
from .methods.dapo import informative_groups
from .rollout import Rollout, sample, score
from .tasks import Task
from .tools import task_sampler


@dataclass
class Batch:
    """The step's sampled groups: rows g·G … g·G+G−1 answer `examples[g]`."""

    rollout: Rollout
    rewards: torch.Tensor       # (B,) the task's reward of every row
    examples: list              # the task's example of each group
    gen_batches: int = 1        # sampling rounds used (dynamic sampling)


class StepSampler:
    """One step's sampling: fresh completions with the task's sampler (or the method's own
    `sample_groups`), continuations of given prefixes, rewards, and the count of every token
    generated this step (`tokens_sampled`), whatever became of it."""

    def __init__(self, model, tokenizer, task: Task, config: TrainConfig, method: Method, method_config,
                 method_state, step: int):
        self.model, self.tokenizer, self.task, self.config = model, tokenizer, task, config
        self.method, self.method_config, self.method_state, self.step = method, method_config, method_state, step
        self.fresh = task_sampler(task)         # the task picks how fresh completions are sampled
        self.tokens_sampled = 0
        self.metrics: dict = {}                 # a method's own sampler reports here (sample_groups)

    def groups(self, examples: list) -> Rollout:
        """G completions of each example's prompt: the task's sampler, or the method's own
        (`sample_groups`, e.g. AEPO's entropy-balanced tree), whose metrics join the step's."""
        c = self.config
        if self.method.sample_groups is None:
            rollout = self._sample([e.prompt for e in examples], c.group_size, c.temperature)
            self._count(rollout)
            return rollout
        context = SamplingContext(self.model, self.tokenizer, self.task, c.group_size, c.temperature, c.top_p,
                                  c.micro_batch_size, self.step, self.method_state)
        rollout, tokens, metrics = self.method.sample_groups(examples, self.method_config, context)
        self.tokens_sampled += tokens
        self.metrics.update(metrics)
        return self._within_task_length(rollout)

    def rewards(self, rollout: Rollout, examples: list) -> torch.Tensor:
        """Task reward of every row; row i answers the prompt of group i // G."""
        G = len(rollout) // len(examples)
        device = next(self.model.parameters()).device
        return torch.tensor([self.task.reward(text, examples[i // G]) for i, text in enumerate(rollout.completions)],
                            dtype=torch.float32, device=device)

    @torch.no_grad()
    def more(self, chosen: list, temperature: float | None = None, n: int | None = None,
             prefix_ids: list[list[int]] | None = None) -> tuple[Rollout, torch.Tensor]:
        """n (default G) completions of each chosen example's prompt at `temperature` (default: the
        training one), optionally continuing given response prefixes, with their rewards, and with
        log-probs and entropies at the training temperature."""
        c = self.config
        temperature = c.temperature if temperature is None else temperature
        rollout = self._sample([e.prompt for e in chosen], n or c.group_size, temperature, prefix_ids)
        self._count(rollout)
        if temperature != c.temperature:
            rollout = self.rescore(rollout)
        return rollout, self.rewards(rollout, chosen)

    @torch.no_grad()
    def rescore(self, rollout: Rollout) -> Rollout:
        """The rollout with `old_log_prob` and `entropy` of the current policy at the training
        temperature (for samples drawn hotter, colder or steps ago)."""
        was_training = self.model.training
        self.model.eval()
        old_log_prob, entropy = score(self.model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids,
                                      rollout.response_mask, self.config.temperature, self.config.micro_batch_size)
        self.model.train(was_training)
        return dataclasses.replace(rollout, old_log_prob=old_log_prob, entropy=entropy)

    def _sample(self, prompts: list[str], n: int, temperature: float, prefix_ids=None) -> Rollout:
        """n completions of each prompt: fresh ones with the task's sampler (a tool answers its calls);
        continuations of given prefixes with plain sampling, within the task's length."""
        c, limit = self.config, self.task.max_new_tokens
        if prefix_ids is None:
            rollout = self.fresh(self.model, self.tokenizer, prompts, n, temperature, c.top_p, max(limit, 1),
                                 chunk_rows=c.micro_batch_size)
        else:
            new = limit - min(len(p) for p in prefix_ids)                     # a branch stays within
            rollout = sample(self.model, self.tokenizer, prompts, n, temperature, c.top_p, max(new, 1),
                             prefix_ids=prefix_ids, chunk_rows=c.micro_batch_size)
        return self._within_task_length(rollout)

    def _within_task_length(self, rollout: Rollout) -> Rollout:
        """The rollout, its responses cut to the task's max_new_tokens if any is longer."""
        limit = self.task.max_new_tokens
        return truncate(rollout, limit, self.tokenizer) if rollout.response_ids.shape[1] > limit else rollout

    def _count(self, rollout: Rollout) -> None:
        """Add the rollout's generated tokens (given prefixes excluded) to the step's count."""
        self.tokens_sampled += int(rollout.response_mask.sum().item() - rollout.prefix_len.sum().item())


def collect(sampler: StepSampler, task: Task, config: TrainConfig, step: int) -> Batch:
    """Sample and reward the step's P groups, from prompts drawn by the step's seed. With
    `dynamic_sampling`, DAPO's: groups whose G rewards are all equal are set aside and more
    prompts are sampled, up to `max_gen_batches` rounds (methods/dapo.py)."""
    P = config.prompts_per_step
    rounds = config.max_gen_batches if config.dynamic_sampling else 1
    pool = random.Random(step_seed(config.seed, step)).sample(task.train, min(len(task.train), P * rounds))
    if config.dynamic_sampling:
        return Batch(*informative_groups(sampler, pool, P, config.group_size, rounds, sampler.tokenizer.pad_token_id))
    examples = pool[:P]
    rollout = sampler.groups(examples)
    return Batch(rollout, sampler.rewards(rollout, examples), examples)


class MoreOfTheBatch:
    """More completions of the step's prompts, for a method's `transform_batch`
    (`BatchContext.sample` and `BatchContext.continue_rows`)."""

    def __init__(self, sampler: StepSampler, examples: list):
        self.sampler, self.examples = sampler, examples

    def sample(self, groups: list[int], temperature: float | None) -> tuple[Rollout, torch.Tensor]:
        """G fresh completions of each listed group's prompt, with their rewards."""
        return self.sampler.more([self.examples[g] for g in groups], temperature)

    def continue_rows(self, rows: list[int], prefix_ids, n: int,
                      temperature: float | None = None) -> tuple[Rollout, torch.Tensor]:
        """n completions of each listed row's prompt that start with its given response tokens."""
        G = self.sampler.config.group_size
        return self.sampler.more([self.examples[i // G] for i in rows], temperature, n,
                                 [list(p) for p in prefix_ids for _ in range(n)])


def transform(method: Method, method_config, batch: Batch, adv: torch.Tensor,
              sampler: StepSampler) -> tuple[Rollout, torch.Tensor, dict]:
    """(rollout, advantages, metrics) to train on: the method's `transform_batch` of the batch, if it
    has one; else the batch as sampled, with the metrics of the method's own sampler, if any."""
    if method.transform_batch is None:
        return batch.rollout, adv, dict(sampler.metrics)
    c, task, more = sampler.config, sampler.task, MoreOfTheBatch(sampler, batch.examples)
    context = BatchContext(more.sample, c.group_size, c.scale_adv_by_std, sampler.tokenizer.pad_token_id,
                           sampler.step, sampler.method_state, examples=batch.examples, tokenizer=sampler.tokenizer,
                           score=sampler.rescore, task=task, answer_of=task.answer_of,
                           segment=task.info.get("segment"), model=sampler.model, continue_rows=more.continue_rows)
    return method.transform_batch(batch.rollout, batch.rewards, adv, method_config, context)


def truncate(rollout: Rollout, T: int, tokenizer) -> Rollout:
    """The rollout with every response cut to its first T tokens (a branch with a long prefix)."""
    ids = rollout.response_ids[:, :T]
    mask = rollout.response_mask[:, :T]
    texts = [[t for t, m in zip(row.tolist(), keep.tolist()) if m and t != tokenizer.eos_token_id]
             for row, keep in zip(ids, mask)]
    return dataclasses.replace(rollout, response_ids=ids, response_mask=mask, old_log_prob=rollout.old_log_prob[:, :T],
                               entropy=rollout.entropy[:, :T], completions=tokenizer.batch_decode(texts),
                               prefix_len=rollout.prefix_len.clamp(max=T))
