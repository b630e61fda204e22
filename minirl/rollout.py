"""Group sampling with a KV cache: G completions per prompt, with per-token log-probs and
full-vocabulary entropies (nats) of the sampling policy.

Log-probs and entropies come from the logits that generation computes anyway, so training
needs no second "old log-prob" pass. Both are taken from temperature-scaled logits (as in
verl), before top-p truncation. They are recorded step by step during generation
(`TokenStats`), so memory holds one step's (B, V) logits, not all of them: with a real
vocabulary (Qwen: 151,936 tokens) 64 rows × 512 steps of float32 logits would be 20 GB.

Each distinct prompt is prefilled once and its KV cache is copied to the G rows of its group
(`decode`); the rest is `model.generate`'s sampling loop, so the same seed draws the same tokens
with the same log-probs, bit for bit on CPU at the course's batch shapes (tests/test_rollout_shared_prefill.py).
The prefill runs fewer rows than before, and a matrix product's last bits may depend on its row
count: on two threads a single prompt's prefill moved log-probs by ~1e-6 (measured); on a GPU
expect the same order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from .diagnostics import token_entropy


@dataclass
class Rollout:
    prompt_ids: torch.Tensor      # (B, P) left-padded
    prompt_mask: torch.Tensor     # (B, P) 1 on prompt tokens
    response_ids: torch.Tensor    # (B, T) right-padded
    response_mask: torch.Tensor   # (B, T) 1 on generated tokens up to and including EOS
    old_log_prob: torch.Tensor    # (B, T) log π_old(y_t | s_t)
    entropy: torch.Tensor         # (B, T) H(π_old(· | s_t)) in nats
    completions: list[str]        # decoded responses, without EOS
    prefix_len: torch.Tensor      # (B,) tokens of the response that were given, not sampled

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    def select(self, index: torch.Tensor) -> "Rollout":
        """The rows `index` (a mini-batch)."""
        rows = index.tolist()
        return Rollout(self.prompt_ids[index], self.prompt_mask[index], self.response_ids[index],
                       self.response_mask[index], self.old_log_prob[index], self.entropy[index],
                       [self.completions[i] for i in rows], self.prefix_len[index])


def policy_forward(model, prompt_ids, prompt_mask, response_ids, temperature: float = 1.0) -> torch.Tensor:
    """Temperature-scaled logits (B, T, V) that predict each response token."""
    T = response_ids.shape[1]
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, torch.ones_like(response_ids)], dim=1)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                logits_to_keep=T + 1, use_cache=False)
    return out.logits[:, :-1, :].float() / max(temperature, 1e-6)


def shared_prompt_forward(model, prompt_ids, prompt_mask, response_ids, temperature: float = 1.0,
                          response_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`policy_forward`'s logits (B, T, V) with each distinct prompt run once. The rows of one prompt are
    packed into one sequence, [prompt[:-1] | row a: last prompt token, response[:-1] | row b: ... ], and a
    block mask lets each row's tokens see the prompt and their own row's earlier tokens only, at the
    positions they have in their own row. A row's segment ends at its last token under `response_mask`
    (padding is not run; its logits are 0), so a mini-batch is one forward pass over its prompts once and
    its real response tokens. The gradient of a prompt's tokens adds up over its rows: loss and gradients
    equal policy_forward's up to float rounding (~1e-6; tests/test_trainer_shared_prompt.py). The mask is
    boolean, as torch's scaled_dot_product_attention takes it; another attention implementation (eager,
    flash) and one-token prompts take policy_forward."""
    (B, P), T = prompt_ids.shape, response_ids.shape[1]
    if P < 2 or getattr(model.config, "_attn_implementation", None) != "sdpa":
        return policy_forward(model, prompt_ids, prompt_mask, response_ids, temperature)
    device = prompt_ids.device
    steps = torch.arange(T, device=device)
    if response_mask is None:
        lengths = torch.full((B,), T, device=device)
    else:                                                                   # up to the row's last real token
        lengths = ((response_mask > 0) * (steps + 1)).amax(dim=1)
    first, row_of = distinct_rows(prompt_ids)                              # (U,), (B,)
    U, head = len(first), P - 1
    earlier_rows = (row_of[:, None] == row_of[None, :]).tril(diagonal=-1)   # same prompt, listed before
    start = head + (earlier_rows * lengths[None, :]).sum(dim=1)            # where each row's segment begins
    L = int((start + lengths).max())
    row, t = (steps[None, :] < lengths[:, None]).nonzero(as_tuple=True)    # every token that runs
    seq, place = row_of[row], start[row] + t
    position_ids = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)            # as policy_forward
    input_ids, positions = prompt_ids.new_zeros(U, L), position_ids.new_zeros(U, L)
    owner = torch.full((U, L), -2, device=device)                           # -1: prompt, -2: nothing, else its row
    input_ids[:, :head], positions[:, :head], owner[:, :head] = prompt_ids[first, :-1], position_ids[first, :-1], -1
    input_ids[seq, place] = torch.cat([prompt_ids[:, -1:], response_ids[:, :-1]], dim=1)[row, t]
    positions[seq, place] = position_ids[row, -1] + t
    owner[seq, place] = row
    real = owner >= 0
    real[:, :head] = prompt_mask[first, :-1].bool()                         # left padding is no key
    query, key = owner[:, :, None], owner[:, None, :]
    sees = ((query == key) & (query >= 0)) | (key == -1)                    # its own row, or the prompt
    causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    mask = (causal & sees & real[:, None, :]) | torch.eye(L, dtype=torch.bool, device=device)   # (U, L, L)
    keep = max(L - head, 1)                                                 # the segments' positions
    out = model(input_ids=input_ids, attention_mask=mask[:, None], position_ids=positions,
                logits_to_keep=keep, use_cache=False)
    logits = out.logits.new_zeros(B, T, out.logits.shape[-1])
    logits[row, t] = out.logits[seq, place - (L - keep)]
    return logits.float() / max(temperature, 1e-6)


def response_logits(model, prompt_ids, prompt_mask, response_ids, response_mask, temperature: float = 1.0,
                    shared_prompts: bool = False) -> torch.Tensor:
    """The logits (B, T, V) that predict each response token: `shared_prompt_forward`'s (each prompt run
    once) with `shared_prompts`, else `policy_forward`'s (every row with its own prompt)."""
    if shared_prompts:
        return shared_prompt_forward(model, prompt_ids, prompt_mask, response_ids, temperature, response_mask)
    return policy_forward(model, prompt_ids, prompt_mask, response_ids, temperature)


def gather_log_prob(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[ids], shape of `ids`."""
    return torch.log_softmax(logits, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def score(model, prompt_ids, prompt_mask, response_ids, response_mask, temperature: float = 1.0,
          chunk_rows: int | None = None, shared_prompts: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π(y_t), H(π(·|s_t))) of every response token under `model`, masked, (B, T) each;
    `chunk_rows` rows at a time so that only that many rows of (T, V) logits exist at once;
    `shared_prompts`: each distinct prompt of a chunk run once (`shared_prompt_forward`)."""
    n = len(response_ids)
    step = chunk_rows or max(n, 1)
    log_probs, entropies = [], []
    for i in range(0, n, step):
        rows = slice(i, i + step)
        logits = response_logits(model, prompt_ids[rows], prompt_mask[rows], response_ids[rows], response_mask[rows],
                                 temperature, shared_prompts)
        log_probs.append(gather_log_prob(logits, response_ids[rows]))
        entropies.append(token_entropy(logits))
        del logits
    return torch.cat(log_probs) * response_mask, torch.cat(entropies) * response_mask


class TokenStats(LogitsProcessor):
    """Inside `generate`: at each step, the full-vocabulary entropy of π(·|s_t) at `temperature`,
    and (one call later, once the drawn token is known) its log-prob. Custom processors run
    before generate's temperature and top-p warpers, so it sees the raw logits; it changes
    nothing. Only the previous step's (B, V) log-probabilities are kept."""

    def __init__(self, temperature: float):
        self.temperature = max(temperature, 1e-6)
        self.log_probs, self.entropies, self.previous = [], [], None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.previous is not None:                        # the token drawn at the last step
            self.log_probs.append(self.previous.gather(-1, input_ids[:, -1:]).squeeze(-1))
        logp = torch.log_softmax(scores.float() / self.temperature, dim=-1)     # (B, V)
        self.entropies.append(-(logp.exp() * logp).sum(dim=-1))
        self.previous = logp
        return scores

    def finish(self, last_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, entropies), (B, T_new), given the tokens drawn at the final step."""
        self.log_probs.append(self.previous.gather(-1, last_tokens[:, None]).squeeze(-1))
        self.previous = None
        return torch.stack(self.log_probs, dim=1), torch.stack(self.entropies, dim=1)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], group_size: int = 1, temperature: float = 1.0,
           top_p: float = 1.0, max_new_tokens: int = 16,
           prefix_ids: list[list[int]] | None = None, chunk_rows: int | None = None,
           stop_ids: list[int] | None = None) -> Rollout:
    """Sample `group_size` completions of every prompt (rows grouped: prompt 0's G first).

    `prefix_ids` (one token list per row, B = len(prompts) × group_size rows) continues each row
    from a given start of its response, as branching methods do; those tokens count as part
    of the response and their log-probs and entropies are recomputed by one forward pass
    (`chunk_rows` rows at a time). `stop_ids`: tokens that end a row besides EOS (kept in it),
    e.g. the end of a tool call. Rows that start from the same tokens (the G rows of a group)
    are prefilled once and share that KV cache (`decode`).
    """
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1 (got {temperature}, {top_p})")
    rows = [p for p in prompts for _ in range(group_size)]
    prefixes = prefix_ids or [[] for _ in rows]
    if len(prefixes) != len(rows):
        raise ValueError(f"got {len(prefixes)} prefixes for {len(rows)} rows")
    unique = list(dict.fromkeys(prompts))                        # each prompt text tokenized once
    encoded = dict(zip(unique, tokenizer(unique, add_special_tokens=False)["input_ids"]))
    device = model.device
    prompt = _left_pad(tokenizer, [encoded[r] for r in rows], device)
    inputs = prompt if prefix_ids is None else _left_pad(tokenizer, [encoded[r] + list(p)
                                                                     for r, p in zip(rows, prefixes)], device)
    stops = [tokenizer.eos_token_id, *(stop_ids or [])]
    stats = TokenStats(temperature)
    new_tokens = decode(model, inputs["input_ids"], inputs["attention_mask"], temperature, top_p, max_new_tokens,
                        stops, tokenizer.pad_token_id, stats)                     # (B, T_new)
    response_ids = [list(p) + _until_stop(t.tolist(), set(stops)) for p, t in zip(prefixes, new_tokens)]
    ids, mask = pad_responses(response_ids, tokenizer.pad_token_id, device)
    T = ids.shape[1]
    if prefix_ids is None:
        step_log_prob, step_entropy = stats.finish(new_tokens[:, -1])                # (B, T_new)
        old_log_prob, entropy = step_log_prob[:, :T] * mask, step_entropy[:, :T] * mask
    else:
        old_log_prob, entropy = score(model, prompt["input_ids"], prompt["attention_mask"], ids, mask,
                                      max(temperature, 1e-6), chunk_rows)
    completions = tokenizer.batch_decode([[t for t in r if t != tokenizer.eos_token_id] for r in response_ids])
    return Rollout(prompt["input_ids"], prompt["attention_mask"], ids, mask, old_log_prob, entropy,
                   completions, torch.tensor([len(p) for p in prefixes]))


def _left_pad(tokenizer, ids: list[list[int]], device) -> dict:
    """{"input_ids", "attention_mask"}: (B, P) each, padded as the tokenizer pads (left, for generation)."""
    batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}


@torch.no_grad()
def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float, top_p: float,
           max_new_tokens: int, stop_ids: list[int], pad_id: int, stats: LogitsProcessor) -> torch.Tensor:
    """The new tokens (B, T_new) that `model.generate(do_sample=temperature > 0, temperature, top_p,
    top_k=None)` draws from the same random state, token for token, but with each distinct row of
    `input_ids` prefilled once: its KV cache is then copied to the rows that repeat it (the G rows
    of a group), so a prompt costs one row of prefill instead of G. Every row's logits are those
    of its own prefill (checked bitwise in tests/test_rollout_shared_prefill.py). A finished row
    (it drew a stop token) is filled with `pad_id`; `stats` sees every step's raw logits."""
    first, row_of = distinct_rows(input_ids)                                             # (U,), (B,)
    padded = not bool(attention_mask.all())            # generate drops an all-ones mask; so do we
    position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)   # as generate
    out = model.get_decoder()(input_ids=input_ids[first], attention_mask=attention_mask[first] if padded else None,
                              position_ids=position_ids[first], use_cache=True)
    cache = out.past_key_values
    cache.batch_select_indices(row_of)                 # (U, ...) -> (B, ...): each row gets its input's cache
    # the LM head on all B rows, and on the same strided view generate takes: the bits of a matrix
    # product may depend on its row count and on its input's memory layout
    last = out.last_hidden_state[row_of][:, -1:]                                         # (B, 1, d)
    logits = model.get_output_embeddings()(last)[:, -1].to(dtype=torch.float32)        # (B, V)
    warpers = LogitsProcessorList([stats])             # in generate's order: custom, temperature, top-p
    if temperature > 0 and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if temperature > 0 and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    stop = torch.tensor(stop_ids, device=input_ids.device)
    unfinished = torch.ones(len(input_ids), dtype=torch.long, device=input_ids.device)
    tokens, seen, position = [], input_ids, position_ids[:, -1:]
    for t in range(max_new_tokens):
        scores = warpers(seen, logits)
        if temperature > 0:
            token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            token = torch.argmax(scores, dim=-1)
        token = token * unfinished + pad_id * (1 - unfinished)
        tokens.append(token)
        seen = torch.cat([seen, token[:, None]], dim=-1)
        unfinished = unfinished & ~torch.isin(token, stop)
        if t == max_new_tokens - 1 or not unfinished.any():
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(token), 1))], dim=-1)
        position = position + 1
        out = model(input_ids=token[:, None], attention_mask=attention_mask if padded else None,
                    position_ids=position, past_key_values=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1].to(dtype=torch.float32)
    return torch.stack(tokens, dim=1)


def distinct_rows(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, row_of): the first row of each distinct row of `ids` (U,), in order, and for every
    row the index of its distinct row (B,), so that ids[first][row_of] == ids."""
    first_row: dict[tuple, int] = {}
    keys = [tuple(row) for row in ids.tolist()]
    for i, key in enumerate(keys):
        first_row.setdefault(key, i)
    rank = {key: j for j, key in enumerate(first_row)}
    return (torch.tensor(list(first_row.values()), device=ids.device),
            torch.tensor([rank[key] for key in keys], device=ids.device))


def pad_responses(responses: list[list[int]], pad_id: int, device, masks: list[list[float]] | None = None):
    """Right-padded (B, T) token ids and response mask (1 on every token, or the given `masks`)."""
    T = max(len(r) for r in responses)
    ids = torch.full((len(responses), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(responses), T)
    for i, r in enumerate(responses):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1.0 if masks is None else torch.tensor(masks[i][:len(r)])
    return ids.to(device), mask.to(device)


def _until_stop(tokens: list[int], stops: set[int]) -> list[int]:
    """Tokens up to and including the first stop token (EOS, ...); all of them if there is none."""
    for k, token in enumerate(tokens):
        if token in stops:
            return tokens[:k + 1]
    return tokens


def concat_rollouts(rollouts: list[Rollout], pad_id: int) -> Rollout:
    """Stack rollouts row-wise, re-padding prompts on the left and responses on the right."""
    P = max(r.prompt_ids.shape[1] for r in rollouts)
    T = max(r.response_ids.shape[1] for r in rollouts)

    def pad(x, width, value, left):
        extra = width - x.shape[1]
        if extra == 0:
            return x
        block = torch.full((x.shape[0], extra), value, dtype=x.dtype, device=x.device)
        return torch.cat([block, x] if left else [x, block], dim=1)

    return Rollout(
        torch.cat([pad(r.prompt_ids, P, pad_id, True) for r in rollouts]),
        torch.cat([pad(r.prompt_mask, P, 0, True) for r in rollouts]),
        torch.cat([pad(r.response_ids, T, pad_id, False) for r in rollouts]),
        torch.cat([pad(r.response_mask, T, 0, False) for r in rollouts]),
        torch.cat([pad(r.old_log_prob, T, 0, False) for r in rollouts]),
        torch.cat([pad(r.entropy, T, 0, False) for r in rollouts]),
        [text for r in rollouts for text in r.completions],
        torch.cat([r.prefix_len for r in rollouts]))
