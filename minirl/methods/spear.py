"""SPEAR: self-imitation with progressive exploration (Qin et al., 2025, "Learn the Ropes, Then
Trust the Wins", arXiv 2509.22601; official code github.com/TencentYoutuResearch/SPEAR
@7e84315, folder verl/).

Successful trajectories of the last few steps are kept in a replay buffer and trained on again
(self-imitation) with a weight that ramps up over training, after their advantage has been
measured again against a baseline of past group-mean rewards. Clip-Cov (`clip_cov.py`) on both the
on-policy and the replayed rows curbs over-confidence; an intrinsic tool-call reward that decays
with the step drives early exploration on tool tasks.

    buffer    after each step, store the rows with A > 0 (and ≥ 1 tool call); before storing, drop
              entries more than min(tolerate, 10) steps older than the newest entry
              (ray_trainer_hybrid.py `TrajectoryBufferBatch.remove_old`, `update_batch`)
    baseline  per step, the G-group means and stds of R; whole steps are dropped, oldest first,
              while more than `baseline_buffer_size` groups are held, then the step is appended
    flush     when n_ready = #stored rows with R > P50(means) exceeds 1.5·S (S = buffer size):
              recalibrate, replay a random 2^⌊log2 n⌋ (≤ S, none if n < 2) of the rows with
              A > 0 this step, empty the buffer (`is_full_capacity`, `get_buffer`, `reset_buffer`)
                A_replay = R − P50(means)   [÷ (P50(stds) + 1e-6) with std scaling]  (γ ∉ (0, 1])
                A_replay = γ·A_stored                                               (γ ∈ (0, 1])
    weight    c(step) = coef·(1 − cos(π·step/T_r))/2 for step ≤ T_r, else coef (dp_actor.py)
    tool      R ← R + min(0.1·n_calls, 1)·w(step),  w = (1 + cos(π·step/T_tool))/2 up to T_tool,
              then 0 ("cosine"; "constant": w = 1) (recipe/spear/reward.py)
    loss      ℓ = PPO-clip (ε 0.2 / 0.28) with Clip-Cov's I_clip;  L = Σ M ℓ / L_max

One batch, one loss (OURS). The official code runs the replayed rows through their own
mini-batches and optimizer steps after the on-policy ones, with the loss × c. Here they are
appended to the batch (B on-policy + R replayed rows, shuffled into the same `num_mini_batches`
updates) with advantage c·A_replay. That is exact for the PPO term, ℓ(c·A) = c·ℓ(A) for c ≥ 0
(clip(r) does not depend on A, so the max picks the same branch), and with the default sum
aggregation Σ M ℓ / L_max a mini-batch's loss is exactly L_on + c·L_replay of its rows. What
differs: one gradient clip and one Adam step for both terms; with token-mean the replayed tokens
join the denominator. Clip-Cov draws I_clip separately among on-policy and replayed tokens, as
the separate official loss does: the loss knows the replayed rows by their old log-probs (kept in
the state; the trainer does not tell a loss which rows it got), and ranks their covariance on
A = c⁻¹·(c·A_replay), centred over those rows of the mini-batch (verl centres per micro-batch).

Settings (`--set`; official script run_qwen2-32b_spear.sh | README (yaml); key = official key):
    enable_trajectory_replay      True
    trajectory_buffer_size        S = 32 | 2048
    trajectory_tolerate_steps     5 | 10 (the code caps it at 10; so do we)
    replay_loss_coef              1 | 1 (yaml 0.001)
    max_replay_loss_steps         T_r = 300 | 200
    weight_decay_trajectory_replay  −1 (P50 recalibration) | −1 (dataclass 0.9)
    baseline_buffer_size          32 | 10240 (groups)
    clip_ratio_low/high           0.2 / 0.28 (Dr.BoT); clip_ratio_c None (the script's 10 is
                                  ignored: verl's clip_cov loss has no dual clip)
    clip_cov_ratio/lb/ub          2e-4 / 1 / 5: the yaml values, which the script leaves in force
                                  | README 0.02 / 1 / 40
    clip_cov_*_replay             0.02 / 1 / 40 (script and README; yaml 2e-4 / 1 / 5), but the
                                  official loss has its `is_replay` branch commented out: replayed
                                  rows use the on-policy keys. `replay_clip_cov=True` (OURS) uses them.
    rescore_replay                False: the official replay keeps the old log-probs of the step
                                  the row was sampled in, so r = π_θ/π_behaviour (an off-policy
                                  update, as the paper says). True (OURS): re-score under the
                                  current policy (ctx.score), r = 1 at the first update.
    use_toolcall_reward           "cosine" ("none" | "constant" | "cosine"); max_toolcall_steps
                                  T_tool = 200 | 100
    tool_call_pattern             "" (OURS): a regex whose matches in a completion count its tool
                                  calls. "": the task's own (`info["tool_call_pattern"]`, e.g.
                                  countdown_tool's `[a op b]`); a task without tools gets no bonus,
                                  and `require_tool_call` (official True) admits every row.
Trainer defaults (Dr.BoT): scale_adv_by_std=False (`norm_adv_by_std_in_grpo`), loss_agg_mode
seq-sum-token-sum-norm, Σ M ℓ / L_max: the official script's seq-mean-token-sum-norm in the verl it
ships, which divides by L_max only (verl 0.9.1's mode of that name also divides by the rows),
kl_coef 0. Not implemented: Dr.BoT's filters of overlong / incomplete / repetitive / unreadable
responses and its group filter by reward std (`rollout_filter_ratio` 0.75), which belong to
sampling; `trajectory_score_threshold` is read by no code path. Replay adds ~S rows to every flush
step's batch.

Tiny scale (smoke profile, 16 prompts × 8 = 128 rows a step). A good part of a step's rows have
A > 0, so S = 32 fills within a step or two (a flush adds 32 rows, +25 % of the batch) and rows are
replayed soon after they were sampled: `trajectory_tolerate_steps` rarely binds (`spear/replay_age`
shows it). T_r = 300 leaves c < 0.1 for 61 steps and c(120) = 0.35: use max_replay_loss_steps ≈
steps/4 (30 for 120 steps). Self-imitation exploits, so the replay pulls the entropy down; the
README's Clip-Cov values (clip_cov_ratio=0.02, clip_cov_ub=40) are the brake. Both are the settings
of `compare.BATCH_LEVEL_VARIANTS`, which notebook 04_rewards_and_advantages compares with grpo
over seeds.

Metrics (`spear/...`): `buffer_rows` (rows held after storing), `buffer_ready` (n_ready, the
official `trajectory_replay_buffersize`), `baseline` (P50 of the group means held), `replay_rows`,
`replay_weight` c(step), `replay_adv` and `replay_age` (mean A_replay before ×c and mean age in
steps of the replayed rows; only on flush steps), `toolcall_bonus` (mean); from the loss, per
update: `replay_rows_mb`, `replay_ppo_kl` (mean old_logp − logp over replayed tokens, official
`ppo_kl_replay`), `n_detached`, `n_candidates`, `ppo_clip_frac`; `clip_frac` = |I_clip| / N.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core import aggregate_loss, group_advantages, masked_mean, ppo_clip_token_loss, ppo_metrics
from ..diagnostics import centred_covariance
from ..rollout import Rollout, concat_rollouts
from .clip_cov import clip_cov_selection
from .registry import BatchContext, LossExtras, MethodState, PolicyLossConfig, register_method

TOOLCALL_MODES = ("none", "constant", "cosine")


@dataclass
class SPEARConfig(PolicyLossConfig):
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_c: float | None = None
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    replay_clip_cov: bool = False
    """True: Clip-Cov on replayed rows uses the *_replay keys (official: the on-policy ones)."""
    clip_cov_ratio_replay: float = 0.02
    clip_cov_lb_replay: float = 1.0
    clip_cov_ub_replay: float = 40.0
    enable_trajectory_replay: bool = True
    trajectory_buffer_size: int = 32
    trajectory_tolerate_steps: int = 5
    replay_loss_coef: float = 1.0
    max_replay_loss_steps: int = 300
    weight_decay_trajectory_replay: float = -1.0
    """γ in (0, 1]: A_replay = γ·A_stored; otherwise recalibrate against the P50 baseline."""
    baseline_buffer_size: int = 32
    rescore_replay: bool = False
    """True: replayed rows' old log-probs are re-scored under π_θ (official: kept as sampled)."""
    use_toolcall_reward: str = "cosine"
    max_toolcall_steps: int = 200
    tool_call_pattern: str = ""
    require_tool_call: bool = True


class SPEARState(MethodState):
    """Replay buffer, baseline history, and what the loss must know about this step's replay."""

    def __init__(self):
        self.buffer = []          # [(step, Rollout of the stored rows, R (n,), A (n,))]
        self.mean_history = []    # [(step, [group mean of R, ...])]
        self.std_history = []     # [(step, [group std of R, ...])]
        self.replay_keys = None   # (R, T) old log-probs of this step's replayed rows
        self.n_on_policy = None   # on-policy rows of this step's batch; replayed rows come after
        self.replay_weight = 0.0  # c(step)

    def state_dict(self) -> dict:
        """Plain tensors, lists and numbers (a checkpoint is loaded with weights_only=True): each
        buffered Rollout as a dict of its fields."""
        fields = lambda rows: {f.name: getattr(rows, f.name) for f in dataclasses.fields(rows)}  # noqa: E731
        return {**vars(self), "buffer": [(step, fields(rows), R, A) for step, rows, R, A in self.buffer]}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update({**state, "buffer": [(step, Rollout(**rows), R, A) for step, rows, R, A in state["buffer"]]})


def replay_weight(step: int, coef: float, max_steps: int) -> float:
    """c(step) = coef·(1 − cos(π·step/T_r))/2 up to T_r, then coef."""
    if step > max_steps or max_steps <= 0:
        return coef
    return coef * (1 - math.cos(math.pi * step / max_steps)) / 2


def toolcall_weight(step: int, mode: str, max_steps: int) -> float:
    """w(step) of the intrinsic tool-call reward."""
    if mode not in TOOLCALL_MODES:
        raise ValueError(f"unknown use_toolcall_reward {mode!r}; choose one of: {', '.join(TOOLCALL_MODES)}")
    if mode == "cosine":
        return (1 + math.cos(math.pi * step / max_steps)) / 2 if step <= max_steps else 0.0
    return float(mode == "constant")


def baseline(state: SPEARState) -> tuple[float, float]:
    """(P50 of the held group means, P50 of the held group stds), linear interpolation."""
    means = [m for _, ms in state.mean_history for m in ms]
    stds = [s for _, ss in state.std_history for s in ss]
    p50 = lambda xs: torch.quantile(torch.tensor(xs, dtype=torch.float64), 0.5).item()  # noqa: E731
    return p50(means), p50(stds)


def recalibrate(rewards, stored_adv, state: SPEARState, config: SPEARConfig, scale_by_std: bool):
    """A_replay of stored rows: R − P50(means) [÷ (P50(stds) + 1e-6)], or γ·A_stored."""
    gamma = config.weight_decay_trajectory_replay
    if 0 < gamma <= 1:
        return gamma * stored_adv
    mean, std = baseline(state)
    return (rewards - mean) / (std + 1e-6) if scale_by_std else rewards - mean


def n_ready(state: SPEARState, config: SPEARConfig) -> int:
    """Stored rows that would survive recalibration (all of them in γ mode)."""
    rewards = [r for _, _, r, _ in state.buffer]
    if not rewards:
        return 0
    if 0 < config.weight_decay_trajectory_replay <= 1:
        return sum(len(r) for r in rewards)
    return int((torch.cat(rewards) > baseline(state)[0]).sum())


def take_replay(state: SPEARState, config: SPEARConfig, ctx: BatchContext):
    """Flush a full buffer: (rows, A_replay, ages) of the rows to replay, or None."""
    if n_ready(state, config) <= 1.5 * config.trajectory_buffer_size:
        return None
    rows = concat_rollouts([e[1] for e in state.buffer], ctx.pad_id)
    rewards, stored_adv = torch.cat([e[2] for e in state.buffer]), torch.cat([e[3] for e in state.buffer])
    steps = torch.tensor([s for s, r, _, _ in state.buffer for _ in range(len(r))])
    adv = recalibrate(rewards, stored_adv, state, config, ctx.scale_adv_by_std)
    state.buffer = []                                                            # reset_buffer
    keep = (adv > 0).nonzero().squeeze(-1).cpu()
    n = min(1 << (len(keep).bit_length() - 1) if len(keep) > 1 else 0, config.trajectory_buffer_size)  # 2^⌊log2⌋
    if n == 0:
        return None
    chosen = keep[torch.randperm(len(keep))[:n]]
    return rows.select(chosen), adv[chosen], (ctx.step - steps[chosen]).float()


def store(state: SPEARState, rollout, rewards, adv, eligible, config: SPEARConfig, step: int, G: int):
    """End of a step: drop stale entries, extend the baseline history, keep rows with A > 0."""
    if state.buffer:
        newest = state.buffer[-1][0]
        state.buffer = [e for e in state.buffer if newest - e[0] <= min(config.trajectory_tolerate_steps, 10)]
    while sum(len(ms) for _, ms in state.mean_history) > config.baseline_buffer_size:
        state.mean_history.pop(0)
        state.std_history.pop(0)
    grouped = rewards.view(-1, G)                                                # (B/G, G)
    state.mean_history.append((step, grouped.mean(dim=1).tolist()))
    state.std_history.append((step, grouped.std(dim=1).tolist()))
    keep = ((adv > 0) & eligible).nonzero().squeeze(-1)
    if len(keep):
        state.buffer.append((step, rollout.select(keep), rewards[keep], adv[keep]))


def spear_batch(rollout, rewards, advantages, config: SPEARConfig, ctx: BatchContext):
    """Tool bonus, then this step's replay (from earlier steps' buffer), then store this step."""
    step, state = ctx.step, ctx.state
    w = toolcall_weight(step, config.use_toolcall_reward, config.max_toolcall_steps)
    pattern = config.tool_call_pattern or (ctx.task.info.get("tool_call_pattern", "") if ctx.task else "")
    n_calls = torch.tensor([len(re.findall(pattern, text)) if pattern else 0
                            for text in rollout.completions], dtype=rewards.dtype, device=rewards.device)
    bonus = (0.1 * n_calls).clamp(max=1.0) * w
    if pattern:
        rewards = rewards + bonus
        advantages, _ = group_advantages(rewards, ctx.group_size, ctx.scale_adv_by_std)
    metrics = {"toolcall_bonus": bonus.mean().item()}
    if not config.enable_trajectory_replay:
        return rollout, advantages, metrics
    c = replay_weight(step, config.replay_loss_coef, config.max_replay_loss_steps)
    replay = take_replay(state, config, ctx)
    state.replay_keys, state.replay_weight, state.n_on_policy = None, c, None
    out, out_adv = rollout, advantages
    if replay is not None and c > 0:
        rows, adv, age = replay
        rows = ctx.score(rows) if config.rescore_replay else rows
        out = concat_rollouts([rollout, rows], ctx.pad_id)
        out_adv = torch.cat([advantages, c * adv.to(advantages)])
        state.replay_keys = rows.old_log_prob.clone()     # for direct calls without extra.rows
        state.n_on_policy = len(rollout)                  # replayed rows follow the on-policy ones
        metrics.update(replay_adv=adv.mean().item(), replay_age=age.mean().item())
    eligible = n_calls > 0 if pattern and config.require_tool_call else torch.ones_like(bonus).bool()
    store(state, rollout, rewards, advantages, eligible, config, step, ctx.group_size)
    metrics.update(buffer_rows=float(sum(len(e[2]) for e in state.buffer)), buffer_ready=float(n_ready(state, config)),
                   baseline=baseline(state)[0], replay_rows=float(len(out) - len(rollout)), replay_weight=c)
    return out, out_adv, metrics


def replayed_rows(old_logp: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
    """(B,) bool: the rows whose old log-probs equal a replayed row's (padding zeros aside)."""
    if keys is None or len(keys) == 0:
        return torch.zeros(len(old_logp), dtype=torch.bool, device=old_logp.device)
    T = max(old_logp.shape[1], keys.shape[1])
    rows = F.pad(old_logp.detach(), (0, T - old_logp.shape[1]))                   # (B, T)
    keys = F.pad(keys.to(rows), (0, T - keys.shape[1]))                              # (R, T)
    return (rows[:, None, :] == keys[None, :, :]).all(dim=-1).any(dim=-1)


@register_method("spear", config_cls=SPEARConfig, state_cls=SPEARState, transform_batch=spear_batch,
                 default_agg_mode="seq-sum-token-sum-norm", train_defaults={"scale_adv_by_std": False},
                 summary="SPEAR: replay recent wins (P50-recalibrated, cosine-ramped weight) with Clip-Cov, Dr.BoT")
def spear_loss(logp, old_logp, adv, mask, agg_mode="seq-sum-token-sum-norm",
               config: SPEARConfig | None = None, extra: LossExtras | None = None):
    """Clip-Cov PPO loss; I_clip drawn separately among on-policy and replayed rows."""
    config = config or SPEARConfig()
    ell, is_clipped, dual = ppo_clip_token_loss(                                    # ℓ (B, T)
        logp, old_logp, adv,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    state = extra.state if extra is not None else None
    if extra is not None and extra.rows is not None and getattr(state, "n_on_policy", None) is not None:
        replay = extra.rows.to(old_logp.device) >= state.n_on_policy               # (B,)
    else:
        replay = replayed_rows(old_logp, getattr(state, "replay_keys", None))      # (B,) by old log-probs
    c = getattr(state, "replay_weight", 0.0) or 1.0
    M = mask.bool()
    on_keys = (config.clip_cov_ratio, config.clip_cov_lb, config.clip_cov_ub)
    replay_keys = ((config.clip_cov_ratio_replay, config.clip_cov_lb_replay, config.clip_cov_ub_replay)
                   if config.replay_clip_cov else on_keys)
    I_clip, C = torch.zeros_like(M), torch.zeros_like(M)                            # (B, T)
    for rows, scale, keys in ((~replay, 1.0, on_keys), (replay, 1.0 / c, replay_keys)):
        if rows.any():
            cov = centred_covariance(logp[rows].detach(), adv[rows] * scale, M[rows])
            I_clip[rows], C[rows] = clip_cov_selection(cov, M[rows], is_clipped[rows] & M[rows], *keys)
    loss = aggregate_loss(ell.masked_fill(I_clip, 0.0), mask, agg_mode, config.loss_scale_factor)
    replay_mask = mask * replay[:, None]
    return loss, {
        **ppo_metrics(loss, logp, old_logp, I_clip, dual, mask),                   # clip_frac = |I_clip| / N
        "n_detached": float(I_clip.sum()), "n_candidates": float(C.sum()),
        "ppo_clip_frac": masked_mean(is_clipped.float(), mask).item(),
        "replay_rows_mb": float(replay.sum()),
        "replay_ppo_kl": masked_mean(old_logp - logp, replay_mask).item(),
    }
