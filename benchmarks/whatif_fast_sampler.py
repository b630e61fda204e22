"""What-if, for RESULTS.md: how much faster would a minirl step be with a leaner sampler?

Patches two changes in at run time (minirl/ itself is not edited) and times full
`Trainer.train_step()`s, taking turns with an unpatched Trainer:

1. `fast_sample`: tokenize and prefill each of the P prompts once, repeat its KV cache
   G times (`DynamicCache.batch_repeat_interleave`) and sample the response in a short loop
   of our own, instead of prefilling all P*G rows through `model.generate`;
2. `torch.optim.AdamW(..., fused=True)`.

Only temperature > 0, top-p = 1 and no `prefix_ids` are handled (what the cpu profile uses).
Similar mean rewards on both sides are a rough check that the sampler is right.

    python benchmarks/whatif_fast_sampler.py --steps 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch
from transformers import DynamicCache

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from anywhere
import minirl.trainer
from minirl.config import make_config
from minirl.diagnostics import token_entropy
from minirl.rollout import Rollout, gather_log_prob
from minirl.rollout import sample as hf_sample
from minirl.trainer import Trainer


@torch.no_grad()
def fast_sample(model, tokenizer, prompts, group_size=1, temperature=1.0, top_p=1.0, max_new_tokens=16,
                prefix_ids=None) -> Rollout:
    if prefix_ids is not None or top_p != 1.0 or temperature <= 0:
        raise NotImplementedError("what-if sampler: temperature > 0, top_p = 1, no prefix_ids only")
    G, eos, pad = group_size, tokenizer.eos_token_id, tokenizer.pad_token_id
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)   # P rows, left-padded
    ids, mask = enc["input_ids"], enc["attention_mask"]
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                past_key_values=DynamicCache(config=model.config))
    cache = out.past_key_values
    cache.batch_repeat_interleave(G)                                                  # P -> P*G rows
    prompt_ids, prompt_mask = ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)
    mask, pos = prompt_mask.clone(), pos[:, -1:].repeat_interleave(G, 0)
    logits = out.logits[:, -1].float().repeat_interleave(G, 0) / temperature
    tokens, step_logits = [], []
    done = torch.zeros(len(mask), dtype=torch.bool)
    for t in range(max_new_tokens):
        step_logits.append(logits)
        token = torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(1)
        token = torch.where(done, torch.full_like(token, pad), token)
        tokens.append(token)
        done |= token == eos
        if done.all() or t == max_new_tokens - 1:
            break
        mask, pos = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1), pos + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=pos, past_key_values=cache,
                       use_cache=True).logits[:, -1].float() / temperature
    response = torch.stack(tokens, dim=1)
    is_eos = (response == eos).long()
    response_mask = ((is_eos.cumsum(1) - is_eos) == 0).float()                         # up to and including EOS
    T = int(response_mask.sum(1).max())
    response, response_mask, logits = response[:, :T], response_mask[:, :T], torch.stack(step_logits, 1)[:, :T]
    response = torch.where(response_mask.bool(), response, torch.full_like(response, pad))
    completions = tokenizer.batch_decode(response.masked_fill(response == eos, pad).tolist(), skip_special_tokens=True)
    return Rollout(prompt_ids, prompt_mask, response, response_mask, gather_log_prob(logits, response) * response_mask,
                   token_entropy(logits) * response_mask, completions, torch.zeros(len(response), dtype=torch.long))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    a = parser.parse_args()
    warnings.filterwarnings("ignore")
    trainers = {name: Trainer(make_config(a.profile, steps=10**9, eval_every=10**9)) for name in ("now", "what-if")}
    t = trainers["what-if"]
    t.optimizer = torch.optim.AdamW([p for p in t.model.parameters() if p.requires_grad], lr=t.config.lr,
                                    weight_decay=t.config.weight_decay, fused=True)
    times, rewards = {n: [] for n in trainers}, {n: [] for n in trainers}
    for i in range(a.warmup + a.steps):
        for name, trainer in trainers.items():
            minirl.trainer.sample = fast_sample if name == "what-if" else hf_sample
            start = time.perf_counter()
            m = trainer.train_step()
            if i >= a.warmup:
                times[name].append(time.perf_counter() - start)
                rewards[name].append(m["reward"])
    for name in trainers:
        print(f"{name:8s} median {statistics.median(times[name]) * 1000:.0f} ms/step, "
              f"mean reward {statistics.mean(rewards[name]):.3f}")
    print(f"speed-up {statistics.median(times['now']) / statistics.median(times['what-if']):.2f}x")


if __name__ == "__main__":
    main()
