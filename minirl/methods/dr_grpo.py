"""Dr. GRPO: GRPO without its two biases (Liu et al., 2025, "Understanding R1-Zero-Like Training:
A Critical Perspective", arXiv 2503.20783).

GRPO divides each response's loss by its length |o_i| (so a long wrong answer is penalised less per
token) and each group's advantages by their std (so nearly-solved and nearly-hopeless questions get
the most weight). Dr. GRPO removes both: advantages are only centred, and the token losses are
summed and divided by a constant.

    A_i = R_i − mean_G R                                   (no ÷ std: train_defaults scale_adv_by_std=False)
    ℓ_{i,t} = max(−A_i·r_{i,t}, −A_i·clip(r_{i,t}, 1 − ε_low, 1 + ε_high))
    L = Σ_i Σ_t M_{i,t} ℓ_{i,t} / (G·L_max)                (paper §3, the Dr. GRPO objective — equation
                                                            number not checked here; the authors' oat
                                                            code and TRL `dr_grpo`)
    L = Σ_i Σ_t M_{i,t} ℓ_{i,t} / L_max                    (divide_by_seqs=False: older verl releases)

Both are the `seq-mean-token-sum-norm` aggregation of `core.aggregate_loss`. verl 0.9.1's
`seq-mean-token-sum-norm` divides by B·L_max, the first form (checked against it through
`minirl.integrations.verl`); the ÷ L_max form grows with
the number of sequences in the mini-batch, which matters here because gradients are clipped at
`max_grad_norm`. `G` above is the number of sequences in the mini-batch (B).

Settings (`--set name=value`):
    divide_by_seqs     True  — the paper/oat/TRL/verl 0.9.1 form (÷ B·L_max); False: ÷ L_max only.
    loss_scale_factor  None  — L_max. Official: the generation budget (oat `generate_max_length`, TRL
                       `max_completion_length`, verl `actor.loss_scale_factor`). None falls back to the
                       padded length of the mini-batch, which the trainer trims to its longest response,
                       so it is NOT constant; set it to the task's `max_new_tokens` for the exact method.
    clip_ratio_low/high 0.2/0.2, clip_ratio_c 3.0 — verl's PPO defaults (the paper uses ε = 0.2).
Also train_defaults {"scale_adv_by_std": False} (verl `algorithm.norm_adv_by_std_in_grpo=False`,
TRL `scale_rewards="none"`). No KL term (verl `use_kl_loss=False`). At the tiny CPU scale the defaults
fit; with Adam the constant only matters through gradient clipping.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import aggregate_loss, ppo_clip_token_loss, ppo_metrics
from .registry import LossExtras, PolicyLossConfig, register_method


@dataclass
class DrGRPOConfig(PolicyLossConfig):
    divide_by_seqs: bool = True
    """True: L = Σ M ℓ / (B·L_max), the paper and its authors' code (TRL `loss_type="dr_grpo"`).
    False: L = Σ M ℓ / L_max (older verl releases; verl 0.9.1 divides by B·L_max too)."""


@register_method("dr_grpo", config_cls=DrGRPOConfig, default_agg_mode="seq-mean-token-sum-norm",
                 train_defaults={"scale_adv_by_std": False},
                 summary="GRPO without length and std normalisation: centred advantages, constant divisor")
def dr_grpo_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="seq-mean-token-sum-norm",
                 config: DrGRPOConfig | None = None, extra: LossExtras | None = None):
    config = config or DrGRPOConfig()
    ell, is_clipped, dual = ppo_clip_token_loss(                                  # ℓ (B, T)
        log_prob, old_log_prob, advantages,
        eps_low=config.clip_ratio_low, eps_high=config.clip_ratio_high, clip_ratio_c=config.clip_ratio_c)
    L_max = config.loss_scale_factor or response_mask.shape[1]
    loss = aggregate_loss(ell, response_mask, loss_agg_mode, L_max, divide_by_seqs=config.divide_by_seqs)
    metrics = {
        **ppo_metrics(loss, log_prob, old_log_prob, is_clipped, dual, response_mask),
        "L_max": float(L_max),
    }
    return loss, metrics
