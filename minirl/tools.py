"""A toy tool: the policy may call a calculator, whose answer is written in before it goes on.

    prompt      3,5,7>22:
    completion  [3*5]=15;[15+7]=22;#22
                └call┘└obs┘└call─┘└obs┘

The policy writes a call `[a op b]`; generation stops at `]`; the calculator appends its answer
`=c;` (observation tokens) and the policy continues from there, up to `max_calls` times. The
observation tokens are part of the response the policy reads, but not of what it is trained on:
their `response_mask` is 0, so they carry no loss, no entropy and no covariance, as tool outputs
in agentic RL. Rewards read the whole text. This is the structure agentic methods act on (branching
after a tool call, tool-call rewards); `countdown_tool` is `countdown_steps` with the arithmetic
done by the tool.

The calculator parses the call with a regular expression and does integer arithmetic: model
text is never executed. A call it cannot read, or a negative difference, answers `=?;`.
"""
from __future__ import annotations

import functools
import re

import torch

from .rollout import Rollout, pad_responses, sample, score
from .stepwise import ANSWER, apply, make_countdown_steps, steps_answer, steps_reward
from .task_types import Example, Task

CALL = re.compile(r"\[(\d{1,6})([+\-*])(\d{1,6})\]$")
CALLS = r"\[\d{1,6}[+\-*]\d{1,6}\]"                       # every well-formed call in a text (SPEAR counts them)
CALL_END = "]"


def calculator(text: str) -> str:
    """The observation for a response that ends in a call `[a op b]`: `=c;`, or `=?;`."""
    match = CALL.search(text[-20:]) if isinstance(text, str) else None
    value = apply(int(match[1]), match[2], int(match[3])) if match else None
    return f"={value};" if value is not None else "=?;"


def to_steps(completion: str) -> str:
    """`[3*5]=15;…` → `3*5=15;…`: the chain with the brackets of its calls removed."""
    return completion.replace("[", "").replace("]", "")


@torch.no_grad()
def tool_round(model, tokenizer, prompts: list[str], responses: list[list[int]], policy_made: list[list[float]],
               temperature: float, top_p: float, max_new_tokens: int, tool=calculator,
               chunk_rows: int | None = None) -> list[tuple[list[float], bool]]:
    """One turn of every row (its prompt, its response so far): sample up to the end of a call `]`
    or EOS; after a call, append the tool's observation (mask 0). `responses` and `policy_made`
    grow in place. Returns per row the entropies (nats, full vocabulary, at `temperature`) of the
    tokens it sampled this turn, and whether it goes on (it called the tool and has room left)."""
    end = tokenizer.convert_tokens_to_ids(CALL_END)
    room = max_new_tokens - min(len(r) for r in responses)
    part = sample(model, tokenizer, prompts, 1, temperature, top_p, max(room, 1), prefix_ids=responses,
                  chunk_rows=chunk_rows, stop_ids=[end])
    out = []
    for j, response in enumerate(responses):
        start, stop = int(part.prefix_len[j]), int(part.response_mask[j].sum())
        new = part.response_ids[j, start:stop].tolist()
        response += new
        policy_made[j] += [1.0] * len(new)
        goes_on = False
        if new and new[-1] == end:
            observation = tokenizer(tool(tokenizer.decode(response)), add_special_tokens=False)["input_ids"]
            if len(response) + len(observation) < max_new_tokens:
                response += observation
                policy_made[j] += [0.0] * len(observation)
                goes_on = True
        out.append((part.entropy[j, start:stop].tolist(), goes_on))
    return out


def tool_rollout(model, tokenizer, prompts: list[str], responses: list[list[int]], policy_made: list[list[float]],
                 temperature: float, chunk_rows: int | None = None) -> Rollout:
    """The finished rows as a Rollout: right-padded, tool tokens masked out, log-probs and entropies
    of π_old at `temperature` from one scoring pass."""
    device = model.device
    ids, mask = pad_responses(responses, tokenizer.pad_token_id, device, policy_made)
    prompt = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_ids, prompt_mask = prompt["input_ids"].to(device), prompt["attention_mask"].to(device)
    old_log_prob, entropy = score(model, prompt_ids, prompt_mask, ids, mask, max(temperature, 1e-6), chunk_rows)
    completions = tokenizer.batch_decode([[t for t in r if t != tokenizer.eos_token_id] for r in responses])
    return Rollout(prompt_ids, prompt_mask, ids, mask, old_log_prob, entropy, completions,
                   torch.zeros(len(prompts), dtype=torch.long))


@torch.no_grad()
def sample_with_tool(model, tokenizer, prompts: list[str], group_size: int, temperature: float, top_p: float,
                     max_new_tokens: int, tool=calculator, max_calls: int = 4,
                     chunk_rows: int | None = None) -> Rollout:
    """Like `rollout.sample`, but each row may call `tool`: generation stops at `]`, the tool's
    answer is appended with mask 0, and the row continues, until EOS, `max_calls` calls or
    `max_new_tokens` response tokens. Log-probs and entropies come from one scoring pass."""
    rows = [p for p in prompts for _ in range(group_size)]
    responses, policy_made = [[] for _ in rows], [[] for _ in rows]
    active = list(range(len(rows)))
    for _ in range(max_calls + 1):
        if not active:
            break
        turns = tool_round(model, tokenizer, [rows[i] for i in active], [responses[i] for i in active],
                           [policy_made[i] for i in active], temperature, top_p, max_new_tokens, tool, chunk_rows)
        active = [i for i, (_, goes_on) in zip(active, turns) if goes_on]
    responses = [r[:max_new_tokens] for r in responses]
    return tool_rollout(model, tokenizer, rows, responses, policy_made, temperature, chunk_rows)


def task_sampler(task: Task):
    """The task's sampler of fresh completions, called as `(model, tokenizer, prompts, n, temperature,
    top_p, max_new_tokens, chunk_rows=...)`: `sample_with_tool` answering the calls with the task's
    tool when it has one (`info["tool"]`), else `rollout.sample`."""
    if "tool" in task.info:
        return functools.partial(sample_with_tool, tool=task.info["tool"])
    return sample


def sample_for_task(model, tokenizer, task: Task, prompts: list[str], n: int, temperature: float, top_p: float,
                    prefix_ids: list[list[int]] | None = None, chunk_rows: int | None = None,
                    max_new_tokens: int | None = None) -> Rollout:
    """n completions of each prompt for `task`: with its sampler (`task_sampler`), except when
    continuing given prefixes, which run without a tool (`rollout.sample`)."""
    max_new_tokens = max_new_tokens or task.max_new_tokens
    if prefix_ids is None:
        return task_sampler(task)(model, tokenizer, prompts, n, temperature, top_p, max_new_tokens,
                                  chunk_rows=chunk_rows)
    return sample(model, tokenizer, prompts, n, temperature, top_p, max_new_tokens, prefix_ids=prefix_ids,
                  chunk_rows=chunk_rows)


def tool_reward(completion: str, example: Example) -> float:
    """`countdown_steps`'s reward on the chain the calls and the calculator wrote."""
    return steps_reward(to_steps(completion), example)


def make_countdown_tool(seed: int = 0, **kwargs) -> Task:
    """`a,b,c>t:` → `[a op b]=c;` calls answered by the calculator, then `#t` (see the module doc)."""
    steps = make_countdown_steps(seed=seed, **kwargs)

    def with_calls(ex):
        return [re.sub(r"(\d+[+\-*]\d+)=", r"[\1]=", chain) for chain in steps.sft_targets(ex)]
    return Task(name="countdown_tool", train=steps.train, eval=steps.eval, reward=tool_reward,
                max_new_tokens=steps.max_new_tokens + 2 * (len(steps.train[0].answer[0]) - 1),
                sft_targets=with_calls, answer_of=lambda text, ex: steps_answer(to_steps(text), ex),
                info={"tool": calculator, "tool_call_pattern": CALLS, "answer_mark": ANSWER})
