"""EPO: entropy bonus plus a smoothing penalty that keeps entropy inside a band around its own
history, weighted by training phase (Xu et al., 2025, "EPO: Entropy-regularized Policy
Optimization for LLM Agents Reinforcement Learning", arXiv 2509.22576; official code github.com/WujiangXu/EPO,
`verl/workers/actor/dp_actor.py`).

In multi-turn agents entropy oscillates step to step (the "exploration–exploitation cascade").
EPO adds an entropy bonus and penalises token entropy that leaves the band [κ_l·H̄_hist,
κ_r·H̄_hist] around the average rollout entropy of all past steps, with a weight w(e) that
changes over training.

    H̄_hist = mean of the rollout entropies of all past steps (MethodState, checkpointed)
    P_t    = out_penalty · ( relu(κ_l·H̄_hist − H_t) + relu(H_t − κ_r·H̄_hist) )   "hinge" (OURS)
    P_t    = out_penalty · 1[ H_t ≤ κ_l·H̄_hist  or  H_t ≥ κ_r·H̄_hist ]          "released"
    w(e)   = 1 − 0.2·(1 − exp(−2e/(E/2)))            for e ≤ E/2      (1.0 → 0.83)
           = 0.8·exp(−3·(e − E/2)/(E/2))             for e > E/2      (0.8 → 0.04)
    L      = L_PG − c_H·( agg(H) − c_s·w(e)·agg(P) )

The paper's penalty is meant to pull entropy back into the band, but in the released code P is a
constant chosen by a comparison: it moves the loss value and has no gradient, so the released
method is an entropy bonus with c_H. Our default `smooth_form = "hinge"` is the
differentiable reading of the paper; "squared_hinge" squares each relu; "released" reproduces the
code. The released w(e) decays late in training, unlike the paper's prose ("strong stabilisation
late"); we follow the code. In "seq" mode the response's masked mean entropy replaces H_t (the
code's mean also counts padding).

Settings (official keys; README runs for ALFWorld): entropy_coeff c_H = 0.001 (`actor.entropy_coeff`),
entropy_smooth = True, entropy_smooth_coeff c_s = 1.0, entropy_smooth_mask_mode = "token",
entropy_smooth_min_ratio κ_l = 0.0 (script default 0.5), entropy_smooth_max_ratio κ_r = 2.0 (script
default 1.5), entropy_smooth_out_range_penalty = 0.1 (ScienceWorld 0.05), enable_smooth_weights = True,
phase_epochs E = 150 (hard-coded in the code). The recipe also uses KL-to-ref 0.01 (trainer `kl_coef`).
Our mapping: e = training step − 1 (the code's epoch counts from 0). The code keeps one history per
environment turn and smooths only samples from turn ≥ max_step/2 = 25; minirl's tasks are single
turn, so the history is one number per step and that turn gate is inert (we smooth every sample).
The history holds only finished steps, so step 1 has none and smooths nothing (the code's history
also holds the current rollout). At CPU scale c_H = 0.001 is too small to matter:
`compare.TINY_SCALE_VARIANTS` uses c_H = 0.03 and c_s = 10.

Metrics: `entropy_mask_ratio` (fraction of tokens inside the band, official) and `hist_entropy`
(H̄_hist), both absent at step 1 (no history yet); `phase_weight` (w(e)), `smooth_penalty`
(w·agg(P)), `entropy_bonus` (agg(H)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core import aggregate_loss, masked_mean, ppo_clip_loss
from .registry import LossExtras, MethodState, PolicyLossConfig, register_method

SMOOTH_FORMS = ("hinge", "squared_hinge", "released")


@dataclass
class EPOConfig(PolicyLossConfig):
    entropy_coeff: float = 0.001
    """c_H: weight of the entropy bonus, and of the smoothing term (official 0.001)."""
    entropy_smooth: bool = True
    """Add the smoothing penalty (official True in the EPO runs)."""
    entropy_smooth_coeff: float = 1.0
    """c_s: weight of the smoothing penalty relative to the bonus (official 1.0)."""
    entropy_smooth_mask_mode: str = "token"
    """"token": compare each H_t with the band; "seq": the response's mean entropy."""
    entropy_smooth_min_ratio: float = 0.0
    """κ_l: lower edge of the band as a multiple of H̄_hist (README runs 0.0; script 0.5)."""
    entropy_smooth_max_ratio: float = 2.0
    """κ_r: upper edge of the band (README runs 2.0; script 1.5)."""
    entropy_smooth_out_range_penalty: float = 0.1
    """Penalty scale outside the band (ALFWorld 0.1, ScienceWorld 0.05)."""
    enable_smooth_weights: bool = True
    """Multiply the penalty by the phase weight w(e) (official True)."""
    phase_epochs: int = 150
    """E of w(e), hard-coded to 150 in the official code."""
    smooth_form: str = "hinge"
    """"hinge" / "squared_hinge" (differentiable, ours) or "released" (constant, no gradient)."""


class EPOState(MethodState):
    """The rollout entropy of every finished step; H̄_hist is their mean (no window, as the code)."""

    def __init__(self):
        self.history: list[float] = []

    def mean(self) -> float | None:
        return sum(self.history) / len(self.history) if self.history else None

    def end_step(self, metrics: dict) -> dict:
        self.history.append(float(metrics["entropy"]))
        return {}


def phase_weight(e: int, E: int = 150) -> float:
    """w(e): 1 → 0.83 over the first half of E, then 0.8 → 0.04 over the second (clamped to [0, E])."""
    e, half = min(max(e, 0), E), E // 2
    if e <= half:
        return 1.0 - 0.2 * (1.0 - math.exp(-2.0 * e / half)) if half else 1.0
    return 0.8 * math.exp(-3.0 * (e - half) / (E - half))


def band_penalty(H, H_hist: float, lo: float, hi: float, out_penalty: float, form: str):
    """P (same shape as H) and the bool map of entries inside the open band (lo·H̄, hi·H̄)."""
    lower, upper = lo * H_hist, hi * H_hist
    inside = (H > lower) & (H < upper)
    below, above = torch.relu(lower - H), torch.relu(H - upper)          # how far outside the band
    if form == "released":
        P = torch.where(inside, 0.0, out_penalty).to(H.dtype)
    elif form == "hinge":
        P = out_penalty * (below + above)
    elif form == "squared_hinge":
        P = out_penalty * (below**2 + above**2)
    else:
        raise ValueError(f"unknown smooth_form {form!r}; choose one of: {', '.join(SMOOTH_FORMS)}")
    return P, inside


@register_method("epo", config_cls=EPOConfig, default_agg_mode="token-mean", needs=("entropy",),
                 state_cls=EPOState, acts_without_advantages=lambda config: config.entropy_coeff != 0,  # bonus, band
                 summary="EPO: entropy bonus + penalty on entropy outside a band around its history")
def epo_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
             config: EPOConfig | None = None, extra: LossExtras | None = None):
    config = config or EPOConfig()
    pg_loss, pg_metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)

    H = extra.entropy                                                          # (B, T), with gradient
    entropy_bonus = aggregate_loss(H, mask, agg_mode, config.loss_scale_factor)
    H_hist = extra.state.mean() if extra.state is not None else None
    smooth, w, smooth_metrics = H.sum() * 0.0, 1.0, {}
    if config.entropy_smooth and H_hist is not None:
        if config.entropy_smooth_mask_mode == "seq":
            H_cmp = masked_mean(H, mask, dim=1)[:, None].expand_as(H)            # (B, T)
        elif config.entropy_smooth_mask_mode == "token":
            H_cmp = H
        else:
            raise ValueError(f"unknown entropy_smooth_mask_mode {config.entropy_smooth_mask_mode!r}; "
                             "choose one of: token, seq")
        P, inside = band_penalty(H_cmp, H_hist, config.entropy_smooth_min_ratio, config.entropy_smooth_max_ratio,
                                 config.entropy_smooth_out_range_penalty, config.smooth_form)
        w = phase_weight(extra.step - 1, config.phase_epochs) if config.enable_smooth_weights else 1.0
        smooth = w * aggregate_loss(P, mask, agg_mode, config.loss_scale_factor)
        smooth_metrics = {"entropy_mask_ratio": masked_mean(inside.float(), mask).item(),
                          "hist_entropy": H_hist}
    loss = pg_loss - config.entropy_coeff * (entropy_bonus - config.entropy_smooth_coeff * smooth)

    metrics = {
        **pg_metrics,
        "phase_weight": w,
        "smooth_penalty": smooth.item(),
        "entropy_bonus": entropy_bonus.item(),
        **smooth_metrics,
    }
    return loss, metrics
