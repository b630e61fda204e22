"""Search at inference over reasoning steps: best-of-N, particle filtering (PF) and entropic PF (ePF).

    particles x_1 … x_N, all empty;  for t = 1, 2, … while one is unfinished:
        each unfinished x_i samples its next step from π: text up to the step boundary, or EOS
            (the T_max-th step runs on to EOS)
        ℓ_i = logit(r_i),  r_i = PRM(x_i) of the whole partial trajectory   (finished ones keep theirs)
        resample N ancestors from softmax(ℓ/τ)     PF: τ ≡ 1, multinomial; ePF: annealed τ, systematic
    answer = the particle with the largest ℓ ("argmax", its_hub's default)

    best-of-N: N independent completions, answer = argmax_i PRM(x_i)

At the same N every method samples about N completions' worth of tokens: a particle samples each
of its steps once, and a copy made by resampling shares its ancestor's tokens. `SearchResult.tokens`
counts what each really sampled. The PRM is `process_reward.process_reward_for(task)`, sharpened
early by `overconfident` when `overconfidence` > 0. All prompts' particles sample in one batch.
Not implemented: the paper's look-ahead modulation (absent from the released its_hub code) and
that code's PRM-free self-certainty weights (`weight_source='self_certainty'`). Paper: Giannone et al.,
"Mitigating Premature Exploitation in Particle-based Monte Carlo for Inference-Time Scaling", arXiv
2510.05825; official code github.com/Red-Hat-AI-Innovation-Team/its_hub.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from ..rollout import sample
from ..task_types import Example, Task
from .process_reward import overconfident, process_reward_for, step_boundary
from .resampling import logit, resample


@dataclass
class SearchConfig:
    n_particles: int = 8
    """N: particles (PF, ePF) or independent samples (best-of-N)."""
    annealing: bool = False
    """Entropic annealing of the resampling temperature (ePF)."""
    resampling: str = "multinomial"
    temperature_method: str = "ess"
    """ePF's rule for τ: `ess` (released default), `entropy` or `base` (resampling.py)."""
    ess_threshold: float = 0.5
    early_phase: float = 0.5
    max_steps: int | None = None
    """T_max; None: the task's, n − 1 equations + the answer for countdown_steps (its_hub: a config value)."""
    overconfidence: float = 0.0
    """s of `process_reward.overconfident` (ours): 0 keeps the PRM calibrated."""
    temperature: float = 1.0
    """Sampling temperature of the policy."""
    max_step_tokens: int = 64
    chunk_rows: int | None = None


SEARCH_METHODS: dict[str, dict] = {
    "best_of_n": dict(),
    "pf": dict(annealing=False, resampling="multinomial"),
    "epf": dict(annealing=True, resampling="systematic", temperature_method="ess"),
}


def make_search_config(method: str, **overrides) -> SearchConfig:
    if method not in SEARCH_METHODS:
        raise ValueError(f"unknown search method {method!r}; choose one of: {', '.join(SEARCH_METHODS)}")
    return SearchConfig(**{**SEARCH_METHODS[method], **overrides})


@dataclass
class SearchResult:
    method: str
    completions: list[str]                 # the chosen completion of each prompt
    rewards: list[float]                   # its task reward
    tokens: list[int]                      # tokens sampled for each prompt
    covered: list[float]                   # 1 if any of the final N was right (what selection could reach)
    steps: list[list[dict]] = field(default_factory=list)
    """Per prompt, per resampling: t, ess_ratio, temperature, weight_entropy, ess_ratio_after,
    ancestors (distinct particles of step 1 that still have descendants), distinct_prefixes."""


@dataclass
class _Particle:
    ids: list[int]
    text: str = ""
    done: bool = False
    log_weight: float = 0.0
    root: int = 0           # which particle of step 1 this one descends from
    fresh: bool = False     # sampled a step in this round (so its PRM score is new)


def task_max_steps(task: Task, example: Example) -> int:
    """T_max: n − 1 equations and the answer for countdown_steps; 8 steps elsewhere (ours)."""
    return len(example.answer[0]) if task.name == "countdown_steps" else 8


@lru_cache(maxsize=8)
def _boundary_ids(tokenizer, boundary: str) -> tuple[int, ...]:
    return tuple(i for i in range(len(tokenizer)) if boundary in tokenizer.decode([i]))


def run_search(method: str, model, tokenizer, task: Task, examples: list[Example], seed: int = 0,
               prm: Callable[[str, Example], float] | None = None, **options) -> SearchResult:
    """`method` from SEARCH_METHODS on each example; options are SearchConfig fields."""
    config = make_search_config(method, **options)
    prm = prm or process_reward_for(task.name)
    model.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if method == "best_of_n":
            return _best_of_n(model, tokenizer, task, examples, prm, config)
        return _particle_filter(method, model, tokenizer, task, examples, prm, config, np.random.default_rng(seed))


def _best_of_n(model, tokenizer, task, examples, prm, config) -> SearchResult:
    N = config.n_particles
    rollout = sample(model, tokenizer, [e.prompt for e in examples], N, config.temperature,
                     max_new_tokens=task.max_new_tokens, chunk_rows=config.chunk_rows)
    lengths = rollout.response_mask.sum(dim=1).long().tolist()
    chosen, rewards, tokens, covered = [], [], [], []
    for j, example in enumerate(examples):
        texts = rollout.completions[j * N:(j + 1) * N]
        best = int(np.argmax(logit([prm(text, example) for text in texts])))
        chosen.append(texts[best])
        rewards.append(task.reward(texts[best], example))
        tokens.append(sum(lengths[j * N:(j + 1) * N]))
        covered.append(float(any(task.reward(text, example) >= 1 for text in texts)))
    return SearchResult("best_of_n", chosen, rewards, tokens, covered)


def _particle_filter(method, model, tokenizer, task, examples, prm, config, rng) -> SearchResult:
    N = config.n_particles
    stops = list(_boundary_ids(tokenizer, step_boundary(task.name)))
    groups = [[_Particle([], root=i) for i in range(N)] for _ in examples]
    T_max = [config.max_steps or task_max_steps(task, e) for e in examples]
    tokens, logs, t = [0] * len(examples), [[] for _ in examples], 0
    while any(not p.done for group in groups for p in group):
        t += 1
        live = [j for j, group in enumerate(groups) if not all(p.done for p in group)]   # a prompt stops when all do
        _extend(model, tokenizer, task, examples, groups, stops, t, T_max, config, tokens)
        for j in live:
            example, group = examples[j], groups[j]
            for p in group:
                if p.fresh:
                    p.log_weight = float(logit(overconfident(prm(p.text, example), t / T_max[j], config.overconfidence)))
            step = resample([p.log_weight for p in group], t, T_max[j], rng, config.annealing, config.resampling,
                            config.temperature_method, config.ess_threshold, config.early_phase)
            groups[j] = [dataclasses.replace(group[a], ids=list(group[a].ids)) for a in step.ancestors]
            logs[j].append(dict(t=t, ess_ratio=step.ess_ratio, temperature=step.temperature,
                                weight_entropy=step.weight_entropy, ess_ratio_after=step.ess_ratio_after,
                                ancestors=len({p.root for p in groups[j]}),
                                distinct_prefixes=len({p.text for p in groups[j]})))
    chosen = [group[int(np.argmax([p.log_weight for p in group]))].text for group in groups]
    rewards = [task.reward(text, e) for text, e in zip(chosen, examples)]
    covered = [float(any(task.reward(p.text, e) >= 1 for p in group)) for group, e in zip(groups, examples)]
    return SearchResult(method, chosen, rewards, tokens, covered, logs)


def _extend(model, tokenizer, task, examples, groups, stops, t, T_max, config, tokens) -> None:
    """Every unfinished particle samples its next step (all prompts in one batch); marks them `fresh`."""
    rows = [(j, p) for j, group in enumerate(groups) for p in group if not p.done]
    for group in groups:
        for p in group:
            p.fresh = not p.done
    last = [t >= T_max[j] for j, _ in rows]
    room = max(task.max_new_tokens - len(p.ids) for _, p in rows)
    limit = room if all(last) else min(config.max_step_tokens, room)      # the last step runs to the end
    rollout = sample(model, tokenizer, [examples[j].prompt for j, _ in rows], 1, config.temperature,
                     max_new_tokens=max(1, limit), prefix_ids=[p.ids for _, p in rows],
                     chunk_rows=config.chunk_rows, stop_ids=[] if all(last) else stops)
    eos = tokenizer.eos_token_id
    for k, (j, p) in enumerate(rows):
        n = int(rollout.response_mask[k].sum())
        ids = rollout.response_ids[k, :n].tolist()[:task.max_new_tokens]
        new = ids[len(p.ids):]
        tokens[j] += len(new)
        boundary = bool(new) and new[-1] in stops and not last[k]
        p.done = not boundary or len(ids) >= task.max_new_tokens
        p.ids = ids
        p.text = tokenizer.decode([i for i in ids if i != eos])
