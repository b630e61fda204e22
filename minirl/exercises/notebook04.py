"""Checks for notebook 04's exercises, over its three parts: where branches fork and what a forest
of branches costs (04_branching_rollouts), TTRL's majority-vote reward and RiskPO's mixed
value-at-risk advantage (04_rewards_and_advantages), EMPG's step advantages and PEAR's phase-entropy
reward (04_steps_and_tools)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from ..branching import fork_candidates, top_entropy_positions
from ..methods.empg import EMPGConfig, empg_batch
from ..methods.pear import phase_entropies
from ..methods.riskpo import RiskPOConfig, mvar_advantage
from ..methods.ttrl import majority_vote
from ..rollout import Rollout
from . import answered, passed


def check_fork_positions(fn) -> bool:
    """Exercise 4.1: fn(H, mask, n) = per row, the n valid positions of highest entropy, highest first."""
    rng = np.random.default_rng(4)
    H = rng.exponential(0.5, size=(5, 9))                     # (B, T) token entropies in nats
    lengths = [9, 6, 3, 1, 7]
    mask = (np.arange(9)[None, :] < np.array(lengths)[:, None]).astype(float)
    H[mask == 0] = 5.0                                        # padding: high "entropy" that must never be chosen
    for n in (1, 2, 4):
        got = fn(H, mask, n)
        if not answered(got, "Exercise 4.1"):
            return False
        expected = top_entropy_positions(torch.tensor(H), fork_candidates(torch.zeros(H.shape, dtype=torch.long),
                                                                          torch.tensor(mask)), n)
        got = [[int(t) for t in row] for row in got]
        assert len(got) == len(expected), f"not yet: one list per row ({len(expected)} rows), got {len(got)}"
        for i, (row, want) in enumerate(zip(got, expected)):
            assert all(mask[i, t] for t in row), (
                f"not yet: row {i} forks at padding ({row}); only positions with mask 1 are tokens")
            assert row == want, (f"not yet: row {i}, n = {n}: expected {want}, got {row} (highest entropy first; "
                                 "a row with fewer than n tokens gives all of them)")
    return passed("Exercise 4.1", "your forks match minirl.branching.top_entropy_positions")


def check_forest_tokens(fn) -> bool:
    """Exercise 4.2: fn(root_lengths, forks, leaf_lengths) = the tokens a forest of branches samples."""
    rng = np.random.default_rng(5)
    for M, N, B in ((1, 1, 1), (3, 2, 2), (4, 1, 3)):
        roots = rng.integers(4, 12, size=M).tolist()
        forks = [sorted(rng.choice(length, size=N, replace=False).tolist()) for length in roots]
        leaves = [[[int(t + rng.integers(1, 10)) for _ in range(B)] for t in row] for row in forks]
        got = fn(roots, forks, leaves)
        if not answered(got, "Exercise 4.2"):
            return False
        # by hand: each root is sampled whole; a branch from fork t is given o[:t] and samples the rest
        expected = sum(roots) + sum(length - t for row, by_fork in zip(forks, leaves)
                                    for t, lengths in zip(row, by_fork) for length in lengths)
        assert int(got) == expected, (
            f"not yet: roots of lengths {roots}, forks {forks}, leaves {leaves}: expected {expected} tokens, "
            f"got {got}; a branch from fork t is given its first t tokens and samples only the rest")
    return passed("Exercise 4.2", "your count is the trainer's tokens_sampled of a forest")


def check_majority_vote_rewards(fn) -> bool:
    """Exercise 4.3: fn(answers, G) = TTRL's reward 1[a_i = ŷ] of the first G answers, ŷ voted by all."""
    cases = [
        (["7", "7", "9", "7", "9", "9", "9", "9"], 4),        # the extra votes overturn the trained rows' majority
        ([None, None, None, "3", "3", "5", "3", None], 4),    # no answer does not vote (and is never right)
        (["2", "5", "5", "2", "8", "1"], 6),                  # a tie: the answer met first wins
        ([None, None, None, None], 2),                        # nobody answers: nobody is rewarded
    ]
    for answers, G in cases:
        got = fn(list(answers), G)
        if not answered(got, "Exercise 4.3"):
            return False
        label, _ = majority_vote(answers)
        expected = [float(label is not None and a == label) for a in answers[:G]]
        assert len(got) == G, f"not yet: one reward per trained sample (the first G = {G}), got {len(got)}"
        assert [float(r) for r in got] == expected, (
            f"not yet: answers {answers}, G = {G}: expected {expected}, got {list(got)}; every answer votes, "
            "a missing one (None) abstains, ties go to the answer met first")
    return passed("Exercise 4.3", "your rewards match minirl.methods.ttrl.majority_vote")


def check_mixed_var_advantage(fn) -> bool:
    """Exercise 4.4: fn(S, q_a, q_b, alpha, beta, w) = RiskPO's (w·A^CVaR + A^RVaR)/(w + 1), no std scaling."""
    rng = np.random.default_rng(6)
    for alpha, beta, w in ((0.2, 0.8, 1.5), (0.1, 0.6, 0.0), (0.3, 0.9, 3.0)):
        S = rng.integers(0, 6, size=8).astype(float)          # paper scores of a bundle of 5 questions
        q_a, q_b = np.quantile(S, alpha), np.quantile(S, beta)
        got = fn(S.copy(), q_a, q_b, alpha, beta, w)
        if not answered(got, "Exercise 4.4"):
            return False
        config = RiskPOConfig(quantile_down=alpha, quantile_up=beta, w_mix=w)
        expected = mvar_advantage(torch.tensor(S), torch.tensor(q_a), torch.tensor(q_b), config, False).numpy()
        assert np.shape(got) == expected.shape, f"not yet: one advantage per paper, shape {expected.shape}"
        assert np.allclose(got, expected, atol=1e-4), (
            f"not yet: S = {S.tolist()}, q_α = {q_a:.2f}, q_β = {q_b:.2f}, w = {w}: "
            f"expected {np.round(expected, 3)}, got {np.round(got, 3)}; RVaR is capped at both quantiles, CVaR is ≤ 0 and only below q_α")
    return passed("Exercise 4.4", "your advantages match minirl.methods.riskpo.mvar_advantage")


def _empg_rollout(step_H: list[list[float]]):
    """A rollout whose response i has one character per token, steps 'a;' ... 'a', each step's tokens at H."""
    texts = [";".join("a" * len(steps)) for steps in step_H]
    T = max(len(t) for t in texts)
    H, mask = torch.zeros(len(texts), T), torch.zeros(len(texts), T)
    for i, steps in enumerate(step_H):
        for j, h in enumerate(steps):
            H[i, 2 * j:2 * j + 2] = h
        mask[i, :len(texts[i])] = 1
        H[i, len(texts[i]):] = 0
    ids = torch.zeros(len(texts), T, dtype=torch.long)
    return Rollout(ids[:, :1], torch.ones(len(texts), 1), ids, mask, torch.zeros(len(texts), T), H, texts,
                   torch.zeros(len(texts), dtype=torch.long))


def check_empg_step_advantages(fn) -> bool:
    """Exercise 4.5: fn(step_H, A, k, k_f, zeta) = EMPG's advantage of every step of every response."""
    rng = np.random.default_rng(7)
    for k, k_f, zeta in ((1.0, 1.0, 0.1), (3.0, 1.0, 0.0), (0.0, 2.0, 0.5)):
        step_H = [rng.exponential(0.4, size=n).round(3).tolist() for n in (3, 1, 2, 4)]
        A = rng.normal(size=4).round(3).tolist()
        got = fn([list(h) for h in step_H], list(A), k, k_f, zeta)
        if not answered(got, "Exercise 4.5"):
            return False
        rollout = _empg_rollout(step_H)
        ctx = SimpleNamespace(segment=None, tokenizer=None, examples=None, group_size=1)
        _, A_tok, _ = empg_batch(rollout, torch.zeros(4), torch.tensor(A), EMPGConfig(k=k, k_f=k_f, zeta=zeta,
                                                                                   step_separator=";"), ctx)
        expected = [[A_tok[i, 2 * j].item() for j in range(len(h))] for i, h in enumerate(step_H)]
        assert [len(row) for row in got] == [len(h) for h in step_H], "not yet: one advantage per step of each response"
        for i, (row, want) in enumerate(zip(got, expected)):
            assert np.allclose(row, want, atol=1e-4), (
                f"not yet (k = {k}, k_f = {k_f}, ζ = {zeta}): response {i}: expected {np.round(want, 3)}, got "
                f"{np.round(row, 3)}; min, max and the means run over every step of the batch, the bonus is the "
                "next step's clarity (none for a response's last step), and the final mean is subtracted")
    return passed("Exercise 4.5", "your step advantages match minirl.methods.empg (empg_batch)")


def check_pear_reward(fn) -> bool:
    """Exercise 4.6: fn(H, sep, correct, alpha, s, r_fmt) = PEAR's reward of one response."""
    rng = np.random.default_rng(8)
    cases = [(0.9, 1.0, 0.0), (1.0, 1.0, 0.0), (0.2, 1.5, 0.1), (2.0, 1.2, 0.0)]
    for n, (alpha, s, r_fmt) in enumerate(cases):
        H = rng.exponential(0.3, size=10)
        H[6] = 3.0                                            # the separator token itself: in neither phase
        for sep, correct in ((6, True), (6, False), (None, True), (9, True)):
            got = fn(H.copy(), sep, correct, alpha, s, r_fmt)
            if not answered(got, "Exercise 4.6"):
                return False
            think, answer = phase_entropies(torch.tensor(H), len(H), sep)
            P = max(0.0, think - alpha * (answer or 0.0))                     # Eq. 6
            expected = min(1.0, s - P) if correct else r_fmt                 # Eq. 7
            assert np.isclose(float(got), expected, atol=1e-6), (
                f"not yet: separator at {sep}, correct {correct}, α = {alpha}, s = {s}, r_fmt = {r_fmt}: expected "
                f"{expected:.4f}, got {float(got):.4f}; the separator token is in neither phase, no separator means "
                "no answer phase (H̄_answer = 0), P is at least 0 and a correct reward at most 1")
    return passed("Exercise 4.6", "your rewards match PEAR's Eq. 6-7 on minirl.methods.pear.phase_entropies")


# ------------------------------------------------------------------ typical wrong answers


def _forks_ignoring_padding(H, mask, n):
    return [np.argsort(-row, kind="stable")[:n].tolist() for row in H]


def _forks_lowest(H, mask, n):
    return [[t for t in np.argsort(row, kind="stable") if m[t]][:n] for row, m in zip(H, mask)]


def _forks_in_order(H, mask, n):
    return [sorted([t for t in np.argsort(-row, kind="stable") if m[t]][:n]) for row, m in zip(H, mask)]


def _forest_whole_leaves(roots, forks, leaves):
    return sum(roots) + sum(length for by_fork in leaves for lengths in by_fork for length in lengths)


def _forest_branches_only(roots, forks, leaves):
    return sum(length - t for row, by_fork in zip(forks, leaves) for t, lengths in zip(row, by_fork)
               for length in lengths)


def _vote_trained_only(answers, G):
    label, _ = majority_vote(answers[:G])
    return [float(label is not None and a == label) for a in answers[:G]]


def _vote_with_none(answers, G):
    label, _ = majority_vote(answers, abstain_none=False)
    return [float(a == label) for a in answers[:G]]


def _vote_tie_to_largest(answers, G):
    votes = [a for a in answers if a is not None]
    if not votes:
        return [0.0] * G
    label = max(set(votes), key=lambda a: (votes.count(a), a))     # a tie goes to the largest answer
    return [float(a == label) for a in answers[:G]]


def _rvar_uncapped(S, q_a, q_b, alpha, beta, w):
    rvar = np.maximum(S - q_a, 0) / (beta - alpha)
    return (w * -np.maximum(q_a - S, 0) / alpha + rvar) / (w + 1)


def _cvar_positive(S, q_a, q_b, alpha, beta, w):
    rvar = (np.maximum(S - q_a, 0) - np.maximum(S - q_b, 0)) / (beta - alpha)
    return (w * np.maximum(q_a - S, 0) / alpha + rvar) / (w + 1)


def _empg_per_response(step_H, A, k, k_f, zeta):
    out = []
    for h, a in zip(step_H, A):                   # normalises within each response instead of the batch
        h = np.array(h)
        h_hat = (h - h.min()) / (h.max() - h.min() + 1e-8)
        g = np.exp(-k * h_hat) / np.mean(np.exp(-k * h_hat))
        bonus = np.append(zeta * np.exp(-k_f * h_hat[1:]), 0.0)
        out.append((g * a + bonus).tolist())
    mean = np.mean([x for row in out for x in row])
    return [[x - mean for x in row] for row in out]


def _empg_uncentred(step_H, A, k, k_f, zeta):
    flat = np.concatenate([np.array(h) for h in step_H])
    h_hat = (flat - flat.min()) / (flat.max() - flat.min() + 1e-8)
    g, f = np.exp(-k * h_hat) / np.mean(np.exp(-k * h_hat)), np.exp(-k_f * h_hat)
    out, j = [], 0
    for h, a in zip(step_H, A):
        out.append([g[j + s] * a + (zeta * f[j + s + 1] if s + 1 < len(h) else 0.0) for s in range(len(h))])
        j += len(h)
    return out                                    # forgets to subtract the batch mean


def _pear_separator_in_answer(H, sep, correct, alpha, s, r_fmt):
    if not correct:
        return r_fmt
    think = H[:sep].mean() if sep is not None else H.mean()
    answer = H[sep:].mean() if sep is not None else 0.0
    return min(1.0, s - max(0.0, think - alpha * answer))


def _pear_no_floor(H, sep, correct, alpha, s, r_fmt):
    if not correct:
        return r_fmt
    think = H[:sep].mean() if sep is not None else H.mean()
    answer = H[sep + 1:].mean() if sep is not None and sep + 1 < len(H) else 0.0
    return s - (think - alpha * answer)           # neither max(0, ·) nor min(1, ·)


MISTAKES = {
    "check_fork_positions": [_forks_ignoring_padding, _forks_lowest, _forks_in_order],
    "check_forest_tokens": [_forest_whole_leaves, _forest_branches_only],
    "check_majority_vote_rewards": [_vote_trained_only, _vote_with_none, _vote_tie_to_largest],
    "check_mixed_var_advantage": [_rvar_uncapped, _cvar_positive],
    "check_empg_step_advantages": [_empg_per_response, _empg_uncentred],
    "check_pear_reward": [_pear_separator_in_answer, _pear_no_floor],
}
