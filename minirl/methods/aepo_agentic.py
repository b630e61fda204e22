"""AEPO (agentic), the whole method: the entropy-balanced tool rollout and the loss of
`aepo_agentic_loss` (Dong et al., 2025, "Agentic Entropy-Balanced Policy Optimization", arXiv
2510.14545; official code github.com/RUC-NLPIR/ARPO, folder `AEPO/`,
`.../vllm_rollout_with_tools.py` (`_calculate_initial_rollouts_dynamical`, `generate_sequences`),
read through the fork github.com/wangevan6/ARPO).

ARPO branches a trajectory after a tool call when the policy's entropy rose; AEPO's paper found
that this piles the budget onto a few chains of consecutive high-entropy calls. Its rollout (a)
measures entropy once before sampling to split the budget k between global samples from the
question and branches, and (b) makes branching less likely the longer a question keeps
branching. Runs on a task with a tool (`countdown_tool`: a turn ends at a calculator call).

Pre-monitoring, per question q (one probe trajectory through the tool loop, then discarded):
    h(turn) = Σ_{first 20 sampled tokens} H_t / ln|V|     a turn's entropy (`turn_entropy="sum"`)
    H_root  = h(the probe's first turn)
    H̄_tool  = mean over the probe's turns of h(turn)       (the official mean includes the first turn)
    m       = min(k, max(1, ⌊k·σ(β·(H_root − H̄_tool))⌋ + 1))          global samples; β = 0.5, k = G
Tree rollout: m trajectories start from q. After each turn that ended in a call (observation
appended, room left), each running trajectory i of q may spawn up to beam_size − 1 branches,
copies of i so far that go on independently, while q has fewer than k trajectories:
    p = u + w·(H_now,i − H_init,i),  u ∼ U(0, 1)      H_now: this turn's h; H_init: h of i's first turn
    p ← clip(max(0, 1 − 0.05·c_q)·p, 0, 1)            c_q: consecutive turns in which q got new trajectories
    branch if p ≥ branch_probability
A question with no trajectory running and fewer than k gets one fresh sample from q per turn;
c_q += 1 after a turn in which q got new trajectories (branches or a fresh sample), else c_q = 0.
The first k trajectories of each question are its group; each is a whole response, so a shared
prefix is trained in every row that holds it, with that row's advantage (as in the official code).
The update is `aepo_agentic_loss`'s (gradient-keeping high clip, entropy-scaled advantages).

Settings (official keys, `AEPO_Qwen3_14B_DeepResearch.sh`): k = the trainer's `group_size`
(`rollout.n` 12; 8 here as in every comparison of the lab), `initial_rollouts` 6 (used when the
dynamic split is off; None: k/2), `beam_size` 2, `branch_probability` 0.5, `entropy_weight` 0.2;
hard-coded there, settings here: β 0.5 (`budget_beta`), 0.05 (`branch_penalty`), 20 tokens.
`enable_dynamic_rollouts`: the released scripts turn it off (`ENABLE_DYNAMIC_ROLLOUTS=False`); it is
the paper's method, so it is on here.

Our choices: the turn entropy is the exact full-vocabulary entropy at the sampling temperature
(the official code sums vLLM's top-10 truncated entropy, `_calc_entropy`); one probe gives H_root and
H̄_tool (the official code runs a separate 50-token probe for H_root); H_init is reset every step
(the official dictionary is keyed by trajectory index and never cleared, so later batches reuse
earlier batches' values); the probe's tokens count in `tokens_sampled`; the calculator allows
`max_calls` calls (the task's 4; the official tool limit is 6).

Metrics (`aepo_agentic/…`): `global_samples` (mean m), `h_root`, `h_tool`, `branches` and
`fresh_roots` (per question), `consecutive_max` (largest c_q reached), `top_root_share` (share of a
question's branches that descend from its most-branched global sample — the concentration that
the penalty fights), `probe_tokens`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..tools import tool_round, tool_rollout
from .aepo_agentic_loss import AEPOAgenticLossConfig, aepo_agentic_loss
from .registry import SamplingContext, register_method

TURN_ENTROPIES = ("sum", "mean")


@dataclass
class AEPOAgenticConfig(AEPOAgenticLossConfig):
    enable_dynamic_rollouts: bool = True
    """Split the budget by pre-monitoring (the paper's method; the released scripts set False)."""
    initial_rollouts: int | None = None
    """Global samples per question when the dynamic split is off (official 6 of 12; None: k/2)."""
    beam_size: int = 2
    """A running trajectory spawns at most beam_size − 1 branches per turn (official 2)."""
    branch_probability: float = 0.5
    """Branch when the (penalised) probability p reaches this threshold (official 0.5)."""
    entropy_weight: float = 0.2
    """w: weight of the entropy rise H_now − H_init in p (official 0.2)."""
    branch_penalty: float = 0.05
    """p is scaled by max(0, 1 − branch_penalty·c_q) (hard-coded 0.05 officially; 0 turns it off)."""
    budget_beta: float = 0.5
    """β of the global-sample split m = ⌊k·σ(β(H_root − H̄_tool))⌋ + 1 (hard-coded 0.5 officially)."""
    entropy_tokens: int = 20
    """A turn's entropy reads its first this many sampled tokens (official 20)."""
    turn_entropy: str = "sum"
    """"sum" over those tokens (official) or "mean"; either is divided by ln|V|."""
    max_calls: int = 4
    """Calculator calls allowed per trajectory (the task's limit)."""


def turn_entropy(entropies: list[float], config: AEPOAgenticConfig, vocab_size: int) -> float:
    """h(turn): the first `entropy_tokens` token entropies, summed (or averaged), over ln|V|."""
    head = entropies[:config.entropy_tokens]
    if not head:
        return 0.0
    total = sum(head) if config.turn_entropy == "sum" else sum(head) / len(head)
    return total / math.log(vocab_size)


def global_sample_count(k: int, H_root: float, H_tool: float, beta: float = 0.5) -> int:
    """m = min(k, max(1, ⌊k·σ(β(H_root − H̄_tool))⌋ + 1)): a calm question start against uncertain
    tool turns (H_root < H̄_tool) leaves more of the budget to branching."""
    sigma = 1.0 / (1.0 + math.exp(-beta * (H_root - H_tool)))
    return min(k, max(1, int(k * sigma) + 1))


def branch_probability(u: float, H_now: float, H_init: float, consecutive: int,
                       config: AEPOAgenticConfig) -> float:
    """p = clip(max(0, 1 − penalty·c)·(u + w·(H_now − H_init)), 0, 1)."""
    p = u + config.entropy_weight * (H_now - H_init)
    p *= max(0.0, 1.0 - config.branch_penalty * consecutive)
    return min(1.0, max(0.0, p))


@dataclass
class Trajectory:
    question: int
    root: int                                       # the global sample of its question it descends from
    response: list = field(default_factory=list)    # token ids, tool observations included
    made: list = field(default_factory=list)        # 1 where the policy sampled the token, 0 for the tool's
    turns: int = 0
    H_init: float | None = None
    H_now: float = 0.0
    running: bool = True

    def branch(self) -> "Trajectory":
        return Trajectory(self.question, self.root, list(self.response), list(self.made), self.turns)


def run_turn(trajectories: list[Trajectory], prompts: list[str], config: AEPOAgenticConfig,
             ctx: SamplingContext) -> int:
    """One turn of every running trajectory; sets H_now (and H_init on its first turn). Returns the
    number of tokens sampled."""
    running = [t for t in trajectories if t.running]
    if not running:
        return 0
    turns = tool_round(ctx.model, ctx.tokenizer, [prompts[t.question] for t in running],
                       [t.response for t in running], [t.made for t in running], ctx.temperature, ctx.top_p,
                       ctx.task.max_new_tokens, ctx.task.info["tool"], ctx.chunk_rows)
    for t, (entropies, goes_on) in zip(running, turns):
        t.H_now = turn_entropy(entropies, config, len(ctx.tokenizer))
        t.H_init = t.H_now if t.H_init is None else t.H_init
        t.turns += 1
        t.running = goes_on and t.turns <= config.max_calls
    return sum(len(e) for e, _ in turns)


def _check(config: AEPOAgenticConfig, ctx: SamplingContext) -> None:
    if "tool" not in ctx.task.info:
        raise ValueError(f"aepo_agentic branches after tool calls; task {ctx.task.name!r} has no tool "
                         "(use --task countdown_tool)")
    if config.turn_entropy not in TURN_ENTROPIES:
        raise ValueError(f"unknown turn_entropy {config.turn_entropy!r}; choose one of: {', '.join(TURN_ENTROPIES)}")
    if config.beam_size < 1 or config.entropy_tokens < 1:
        raise ValueError(f"aepo_agentic needs beam_size >= 1 and entropy_tokens >= 1 "
                         f"(got {config.beam_size}, {config.entropy_tokens})")


def probe(prompts: list[str], config: AEPOAgenticConfig, ctx: SamplingContext):
    """Pre-monitoring: one trajectory per question through the tool loop. Returns the global sample
    counts m, H_root and H̄_tool per question, and the tokens the probe sampled."""
    trajectories = [Trajectory(q, 0) for q in range(len(prompts))]
    history, tokens = [[] for _ in prompts], 0
    while any(t.running for t in trajectories):
        tokens += run_turn(trajectories, prompts, config, ctx)
        for t in trajectories:
            if len(history[t.question]) < t.turns:
                history[t.question].append(t.H_now)
    H_root = [h[0] for h in history]
    H_tool = [sum(h) / len(h) for h in history]
    m = [global_sample_count(ctx.group_size, r, h, config.budget_beta) for r, h in zip(H_root, H_tool)]
    return m, H_root, H_tool, tokens


def grow(trees: list[list[Trajectory]], consecutive: list[int], config: AEPOAgenticConfig, k: int) -> list[int]:
    """After a turn: branches of running trajectories, or a fresh sample for a question with none
    running, while a question has fewer than k. Updates `consecutive`; returns branches per question."""
    branches = [0] * len(trees)
    for q, tree in enumerate(trees):
        running, new = [t for t in tree if t.running], []
        for source in running:
            for _ in range(config.beam_size - 1):
                if len(tree) + len(new) >= k:
                    break
                u = float(torch.rand(()))
                if branch_probability(u, source.H_now, source.H_init, consecutive[q], config) >= \
                        config.branch_probability:
                    new.append(source.branch())
        branches[q] = len(new)
        if not running and len(tree) < k:
            new.append(Trajectory(q, len({t.root for t in tree})))
        tree.extend(new)
        consecutive[q] = consecutive[q] + 1 if new else 0
    return branches


def _top_root_share(tree: list[Trajectory], m: int) -> float | None:
    """Share of the question's branches that descend from its most-branched global sample."""
    counts = torch.bincount(torch.tensor([t.root for t in tree]))[:m] - 1      # branches of each global sample
    return None if counts.sum() <= 0 else (counts.max() / counts.sum()).item()


def entropy_balanced_groups(examples: list, config: AEPOAgenticConfig, ctx: SamplingContext):
    """k = G trajectories per question from the entropy-balanced tree (module docstring)."""
    _check(config, ctx)
    prompts, k = [e.prompt for e in examples], ctx.group_size
    if config.enable_dynamic_rollouts:
        m, H_root, H_tool, probe_tokens = probe(prompts, config, ctx)
    else:
        initial = config.initial_rollouts or max(1, k // 2)
        m, H_root, H_tool, probe_tokens = [min(k, initial)] * len(prompts), [], [], 0
    trees = [[Trajectory(q, r) for r in range(m[q])] for q in range(len(prompts))]
    consecutive, branches, fresh, tokens, most = [0] * len(prompts), [0] * len(prompts), 0, 0, 0
    while any(t.running for tree in trees for t in tree):
        tokens += run_turn([t for tree in trees for t in tree], prompts, config, ctx)
        sizes = [len(tree) for tree in trees]
        grown = grow(trees, consecutive, config, k)
        fresh += sum(len(tree) - s - b for tree, s, b in zip(trees, sizes, grown))
        branches = [a + b for a, b in zip(branches, grown)]
        most = max(most, *consecutive)
    rows = [t for tree in trees for t in tree[:k]]
    responses = [t.response[:ctx.task.max_new_tokens] for t in rows]
    rollout = tool_rollout(ctx.model, ctx.tokenizer, [prompts[t.question] for t in rows], responses,
                           [t.made for t in rows], ctx.temperature, ctx.chunk_rows)
    shares = [s for tree, mq in zip(trees, m) if (s := _top_root_share(tree[:k], mq)) is not None]
    metrics = {"global_samples": sum(m) / len(m), "branches": sum(branches) / len(m), "fresh_roots": fresh / len(m),
               "consecutive_max": float(most), "probe_tokens": float(probe_tokens),
               **({"top_root_share": sum(shares) / len(shares)} if shares else {}),
               **({"h_root": sum(H_root) / len(m), "h_tool": sum(H_tool) / len(m)} if H_root else {})}
    return rollout, tokens + probe_tokens, metrics


@register_method("aepo_agentic", config_cls=AEPOAgenticConfig, default_agg_mode="token-mean", needs=("entropy",),
                 sample_groups=entropy_balanced_groups,
                 summary="AEPO (agentic): entropy-balanced tool rollout (budget split, branch penalty) + its loss")
def aepo_agentic(logp, old_logp, adv, mask, agg_mode="token-mean",
                 config: AEPOAgenticConfig | None = None, extra=None):
    """The update of `aepo_agentic_loss` on the batch the entropy-balanced rollout sampled."""
    return aepo_agentic_loss(logp, old_logp, adv, mask, agg_mode,
                             config or AEPOAgenticConfig(), extra)
