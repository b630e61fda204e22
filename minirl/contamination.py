"""Was this prompt trained on with RL? Self-Critique against a perplexity baseline, and ROC/AUC.

Tao et al., arXiv 2510.09259; official code github.com/yongding-tao/RL-Data-Contamination @8bb7a2c
(`detectors/self_critique.py`, `detectors/ppl.py`, `generate_full_data.py`; read, not copied). RL
collapses the policy on the prompts it was trained on into a few sparse modes; asked for a different
answer, it walks the same path.

    greedy pass y_1..y_L;  e_t = −Σ_{v ∈ top-K(π(·|s_t))} π(v|s_t) log π(v|s_t)    K = 50, NOT renormalised
    pass 1: e (the prompt);  pass 2: e' (a second greedy response that is asked to differ)
    S = cos(ē, ē') · min(L, L') / max(L, L')     ē, ē' zero-padded to max(L, L'); S = 0 if either is empty
    member ⇔ high S

    perplexity baseline: PPL = exp(−mean_t log π(y_t|s_t)) of pass 1; member ⇔ low PPL (score −PPL)

The second pass, `mode`:
* `instruction` (the paper's): the prompt with an appended instruction that shows pass 1's answer
  and asks for a response on a different reasoning path (`instruction_prompt`, our paraphrase).
* `diverge` (ours, for a policy that reads no instructions, e.g. the tiny character-level one): the
  same prompt, greedy, with pass 1's first token forbidden at the first position, so pass 2 must
  leave pass 1's path at once. A collapsed policy returns to its mode; an uncertain one wanders.

Entropies include the EOS position. AUC = P(S_member > S_non-member) + ½ P(=) (Mann–Whitney).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from .rollout import TokenStats

INSTRUCTION = ("\nHere is one possible answer; it may be right or wrong:\n---\n{response}\n---\n"
               "Write a new response that follows a different line of reasoning or gives another solution:")


@dataclass
class GreedyPass:
    text: str
    token_ids: list[int]      # the generated tokens, EOS included
    entropy: list[float]      # e_t, top-K truncated entropy in nats, one per generated token (EOS included)
    log_prob: list[float]     # log π(y_t | s_t) of the generated tokens


class TopKEntropy(TokenStats):
    """TokenStats (full-vocabulary H and log-probs at temperature 1) plus the top-K truncated entropy."""

    def __init__(self, top_k: int):
        super().__init__(1.0)
        self.top_k, self.truncated = top_k, []

    def __call__(self, input_ids, scores):
        scores = super().__call__(input_ids, scores)
        top = self.previous.topk(min(self.top_k, self.previous.shape[-1]), dim=-1).values       # (B, K) log π
        self.truncated.append(-(top.exp() * top).sum(dim=-1))
        return scores


class BanFirstToken(LogitsProcessor):
    """Forbid token `banned[i]` in row i at the first generated position (runs after the stats)."""

    def __init__(self, banned: torch.Tensor):
        self.banned, self.used = banned, False

    def __call__(self, input_ids, scores):
        if self.used:
            return scores
        self.used = True
        scores = scores.clone()
        scores[torch.arange(len(scores)), self.banned.to(scores.device)] = float("-inf")
        return scores


@torch.no_grad()
def greedy_pass(model, tokenizer, prompts: list[str], max_new_tokens: int, top_k: int = 50,
                ban_first: list[int] | None = None) -> list[GreedyPass]:
    """Greedy responses with their per-token top-K entropies and log-probs."""
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = {key: encoded[key].to(model.device) for key in ("input_ids", "attention_mask")}
    stats = TopKEntropy(top_k)
    processors = [stats] + ([BanFirstToken(torch.tensor(ban_first))] if ban_first is not None else [])
    out = model.generate(**batch, do_sample=False, temperature=None, top_p=None, top_k=None, repetition_penalty=1.0,
                         max_new_tokens=max_new_tokens, return_dict_in_generate=True,
                         logits_processor=LogitsProcessorList(processors),
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    new = out.sequences[:, batch["input_ids"].shape[1]:]                                      # (B, T)
    log_prob, _ = stats.finish(new[:, -1])
    truncated = torch.stack(stats.truncated, dim=1)                                            # (B, T)
    passes = []
    for i, row in enumerate(new.tolist()):
        n = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        text = tokenizer.decode([t for t in row[:n] if t != tokenizer.eos_token_id])
        passes.append(GreedyPass(text, row[:n], truncated[i, :n].tolist(), log_prob[i, :n].tolist()))
    return passes


def instruction_prompt(prompt: str, response: str, tokenizer=None) -> str:
    """The paper's second-pass prompt: inside the user turn of a chat prompt, else appended."""
    template = getattr(tokenizer, "chat_template", None)
    if template:
        marker = "\x00MARK\x00"
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": marker}], add_generation_prompt=True,
                                                 tokenize=False)
        suffix = rendered.split(marker, 1)[1]                 # end of the user turn + the assistant's header
        if suffix and prompt.endswith(suffix):
            return prompt[:-len(suffix)] + INSTRUCTION.format(response=response) + suffix
    return prompt + INSTRUCTION.format(response=response)


def self_critique_score(e1, e2) -> float:
    """S = cos(ē1, ē2) · min(L1, L2)/max(L1, L2), zero-padded; 0 for an empty or all-zero sequence."""
    if len(e1) == 0 or len(e2) == 0:
        return 0.0
    L = max(len(e1), len(e2))
    a, b = np.zeros(L), np.zeros(L)
    a[:len(e1)], b[:len(e2)] = e1, e2
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return 0.0 if norm == 0 else float(a @ b / norm * min(len(e1), len(e2)) / L)


def perplexity(log_prob) -> float:
    """PPL = exp(−mean log π(y_t)) of one response (nan if it is empty)."""
    return float(np.exp(-np.mean(log_prob))) if len(log_prob) else float("nan")


def detect(model, tokenizer, prompts: list[str], max_new_tokens: int, mode: str = "diverge", top_k: int = 50) -> dict:
    """Per prompt: Self-Critique S, perplexity and mean entropy of pass 1, both passes' texts and entropies."""
    if mode not in ("diverge", "instruction"):
        raise ValueError(f"unknown mode {mode!r}; choose one of: diverge, instruction")
    first = greedy_pass(model, tokenizer, prompts, max_new_tokens, top_k)
    if mode == "diverge":
        second = greedy_pass(model, tokenizer, prompts, max_new_tokens, top_k, ban_first=[p.token_ids[0] for p in first])
    else:
        critique = [instruction_prompt(q, p.text, tokenizer) for q, p in zip(prompts, first)]
        second = greedy_pass(model, tokenizer, critique, 2 * max_new_tokens, top_k)
    return {"self_critique": np.array([self_critique_score(a.entropy, b.entropy) for a, b in zip(first, second)]),
            "perplexity": np.array([perplexity(p.log_prob) for p in first]),
            "mean_entropy": np.array([np.mean(p.entropy) for p in first]),
            "first": [p.text for p in first], "second": [p.text for p in second],
            "first_entropy": [p.entropy for p in first], "second_entropy": [p.entropy for p in second]}


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) at every threshold, from (0, 0) to (1, 1); higher
    score = predicted member (label 1). Tied scores move both rates at once (a diagonal segment)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    tp, fp = np.cumsum(labels)[last_of_tie], np.cumsum(1 - labels)[last_of_tie]
    P, N = labels.sum(), len(labels) - labels.sum()
    if P == 0 or N == 0:
        raise ValueError(f"need members and non-members (got {P} and {N})")
    return np.r_[0.0, fp / N], np.r_[0.0, tp / P]


def auc(scores, labels) -> float:
    """Area under the ROC curve = P(score of a member > score of a non-member) + ½ P(equal)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need members and non-members (got {len(pos)} and {len(neg)})")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))
