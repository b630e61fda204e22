"""Dr. GRPO: GRPO without its two biases (Liu et al., 2025, "Understanding R1-Zero-Like Training:
A Critical Perspective", arXiv 2503.20783).

GRPO divides each response's loss by its length |o_i| (so a long wrong answer is penalised less per
token) and each group's advantages by their std (so nearly-solved and nearly-hopeless questions get
the most weight). Dr. GRPO removes both: advantages are only centred, and the token losses are
summed and divided by a constant.

    A_i = R_i − mean_G R                                   (no ÷ std: train_defaults scale_adv_by_std=False)
    ℓ_{i,t} = max(−A_i·r_{i,t}, −A_i·clip(r_{i,t}, 1 − ε_low, 1 + ε_high))
    L = (1/G) Σ_i Σ_t M_{i,t} ℓ_{i,t} / L_max             (paper §3, the Dr. GRPO objective — equation
                                                            number not checked here; the authors' oat
                                                            code and TRL `dr_grpo`)

This is the `seq-mean-token-sum-norm` aggregation of `core.aggregate_loss`, as verl 0.9.1 computes it
(checked against it through `minirl.integrations.verl`); G is the number of sequences in the
mini-batch that hold a token (B here: every response holds at least its EOS). verl releases before
its PR #4510 divided by L_max only, Σ M ℓ / L_max: that form is the mode `seq-sum-token-sum-norm`
(`--set loss_agg_mode=seq-sum-token-sum-norm`). It grows with the number of sequences in the
mini-batch, which matters here because gradients are clipped at `max_grad_norm`.

Settings (`--set name=value`):
    loss_scale_factor  None  — L_max. Official: the generation budget (oat `generate_max_length`, TRL
                       `max_completion_length`, verl `actor.loss_scale_factor`). None: the trainer fills in the
                       task's `max_new_tokens` (the TRL adapter `max_completion_length`); a direct call
                       falls back to the padded length of the batch, which is NOT constant.
    clip_ratio_low/high 0.2/0.2, clip_ratio_c 3.0 — verl's PPO defaults (the paper uses ε = 0.2).
Also train_defaults {"scale_adv_by_std": False} (verl `algorithm.norm_adv_by_std_in_grpo=False`,
TRL `scale_rewards="none"`). No KL term (verl `use_kl_loss=False`). At the tiny CPU scale the defaults
fit; with Adam the constant only matters through gradient clipping.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import ppo_clip_loss
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class DrGRPOConfig(PolicyLossConfig):
    """PPO-clip's settings and `loss_scale_factor` (L_max); the constant divisor is the loss_agg_mode's."""


@register_method("dr_grpo", config_cls=DrGRPOConfig, default_agg_mode="seq-mean-token-sum-norm",
                 train_defaults={"scale_adv_by_std": False},
                 summary="GRPO without length and std normalisation: centred advantages, constant divisor")
def dr_grpo_loss(logp, old_logp, adv, mask, agg_mode="seq-mean-token-sum-norm",
                 config: DrGRPOConfig | None = None, extra: LossExtras | None = None):
    config = config or DrGRPOConfig()
    loss, metrics = ppo_clip_loss(logp, old_logp, adv, mask, agg_mode, config)
    L_max = config.loss_scale_factor or mask.shape[1]                  # what seq-mean-token-sum-norm divides by
    return loss, {**metrics, "L_max": float(L_max)}
