"""RiskPO: a Mixed Value-at-Risk advantage over bundles of questions (Ren et al., 2025, "RiskPO:
Risk-based Policy Optimization via Verifiable Reward for LLM Post-Training", arXiv 2510.00911;
official code github.com/RTkenny/RiskPO, `core_algos.py::compute_grpo_bundle_rvar_outcome_advantage_
quantile_tracking` and `ray_trainer.py`).

GRPO's mean baseline rewards whatever is above average; RiskPO scores the lower and middle part of the
reward distribution instead (a risk-averse objective), which the paper argues lowers the covariance
of log π with the advantage and so slows entropy collapse. Binary rewards are made richer by pooling
B questions into a bundle: a "paper" is one response to each of them, and its score counts the
correct ones. (Equation numbers not checked here; the formulas are the released code's.)

    S_j       = Σ_{q ∈ bundle} R_{q,j}                     paper j = the j-th response of each question
    A^RVaR_j  = [ (S_j − q_α)_+ − (S_j − q_β)_+ (+ q_α − q_β) ] / (β − α)      (paper's g(z,a,b)/(b − a))
    A^CVaR_j  = −(q_α − S_j)_+ / α                                            lower-tail CVaR
    A_j       = (w·A^CVaR_j + A^RVaR_j) / (w + 1)  ÷ std_j(S)                 Mixed VaR, std-scaled
    A_{q,j}   = A_j · (R_{q,j} − R̄_q) / Σ_{q'} (R_{q',j} − R̄_{q'})            "sum-mean" credit
    q_k      ← q_k + lr_q·(α_k − mean_j 1[S_j < q_k])   for α_k ∈ {0.05, …, 0.95}   quantile tracker

Settings (official keys `algorithm.*`, script run_qwen2.5_1.5b_MVaR_dapomath.sh): quantile_down α = 0.2,
quantile_up β = 0.8, bundle_size B = 5, lr_q = 0.1, credit_assign_mode = sum-mean (or uniform, score:
×0.5 correct / ×1.5 wrong, std: ÷ the question's reward std), use_q_track_mode = track (or batch:
the bundle's empirical quantiles, mix: their average), use_mixing_risk_measure = True, w_mix = 1.5,
natural_baseline_adv = False (the "+ q_α − q_β"), risk_seeking_upper_tail = False with upper_weight
1.5 (the ablation that collapses: A = (u·(S − q_β)_+/(1 − β) + A^RVaR)/(u + 1)). The std scaling is
`algorithm.norm_adv_by_std_in_grpo`, i.e. the trainer's `scale_adv_by_std`. PPO-clip 0.2, token-mean.
Not implemented: `use_mean_as_baseline` (False in the scripts).

Paper vs code, and our choices:
  * The released code writes the tracked quantiles into the step's batch *after* the advantages are
    computed, and each step builds a new batch, so they never reach an advantage: the released runs in
    effect use `batch` quantiles. We use the tracker as configured (paper intent): step t uses the
    tracker after step t − 1 (the first step, with an empty tracker, uses batch quantiles, as the code).
  * Bundles are consecutive prompts of the step (the code's rule). A remainder bundle of fewer than B
    questions (16 prompts, B = 5) is ours to handle: it uses its own quantiles and is not fed to the
    tracker, whose quantiles are on the 0..B scale of full bundles.
  * std(S) = 0 (all papers equal) with tracked quantiles would divide a non-zero A by 1e-6; we divide
    by 1 there (the code never meets this case, its quantiles being the bundle's own).
  * bundle_pairing = index (the code: the j-th sample of each question) or permute (the paper, per a
    secondary source: a random permutation per question before pairing).
  * ratio_level = token (the scripts' vanilla PPO loss) or sequence (the paper's length-normalised
    sequence ratio (π_θ(y|x)/π_old(y|x))^{1/|y|}, GSPO-like).

Metrics: `q_alpha`, `q_beta` (the quantiles used, mean over bundles), `tracked_q_alpha`,
`tracked_q_beta` (the tracker after this step), `paper_score` (mean S), `frac_zero_adv` (share of
responses not trained on: with tracked quantiles even a bundle whose papers all score the same gets a
signal, so it is lower than with `batch` quantiles), `adv_mean` (GRPO's is 0;
tracked quantiles let it move).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core import masked_mean
from .grpo import grpo_loss
from .registry import BatchContext, MethodState, PolicyLossConfig, register_method

ALPHA_GRID = [round(0.05 * k, 2) for k in range(1, 20)]        # the tracker's levels α_k
CHOICES = {"credit_assign_mode": ("sum-mean", "uniform", "score", "std"),
           "use_q_track_mode": ("track", "batch", "mix"), "bundle_pairing": ("index", "permute"),
           "ratio_level": ("token", "sequence")}
EPS = 1e-6


@dataclass
class RiskPOConfig(PolicyLossConfig):
    quantile_down: float = 0.2
    """α: lower quantile level (official 0.2)."""
    quantile_up: float = 0.8
    """β: upper quantile level (official 0.8)."""
    bundle_size: int = 5
    """B: questions per bundle (official 5; 1 = no bundling)."""
    lr_q: float = 0.1
    """Step size of the SGD quantile tracker (official 0.1)."""
    credit_assign_mode: str = "sum-mean"
    """How a paper's advantage is split among its B responses: sum-mean, uniform, score, std."""
    use_q_track_mode: str = "track"
    """Quantiles used: track (tracker), batch (the bundle's own), mix (their average)."""
    use_mixing_risk_measure: bool = True
    """Mix in the lower-tail CVaR term (official True)."""
    w_mix: float = 1.5
    """w: weight of the CVaR term (official 1.5)."""
    natural_baseline_adv: bool = False
    """Add the constant q_α − q_β inside the RVaR bracket (official False in the scripts)."""
    risk_seeking_upper_tail: bool = False
    """The risk-seeking ablation (upper-tail CVaR; used only when the mixing term is off)."""
    upper_weight: float = 1.5
    """u: weight of the upper-tail term of the ablation (official 1.5)."""
    bundle_pairing: str = "index"
    """index: paper j = the j-th response of each question (code); permute (paper)."""
    ratio_level: str = "token"
    """token: the scripts' per-token ratio; sequence: the paper's length-normalised sequence ratio."""


class RiskPOState(MethodState):
    """The quantile tracker: q_k for every level of ALPHA_GRID (None before the first step)."""

    def __init__(self):
        self.q = None


def check_config(config: RiskPOConfig) -> None:
    for key, allowed in CHOICES.items():
        if getattr(config, key) not in allowed:
            raise ValueError(f"unknown {key} {getattr(config, key)!r}; choose one of: {', '.join(allowed)}")
    a, b = config.quantile_down, config.quantile_up
    if not 0 < a < b < 1:
        raise ValueError(f"need 0 < quantile_down < quantile_up < 1 (got {a}, {b})")
    if config.bundle_size < 1 or config.w_mix < 0 or config.lr_q < 0:
        raise ValueError(f"need bundle_size >= 1, w_mix >= 0, lr_q >= 0 (got {config.bundle_size}, "
                         f"{config.w_mix}, {config.lr_q})")


def mvar_advantage(S, q_a, q_b, config: RiskPOConfig, scale_by_std: bool):
    """A_j of each paper score S_j (G,) given the quantiles q_α, q_β."""
    a, b = config.quantile_down, config.quantile_up
    rvar = (S - q_a).clamp(min=0) - (S - q_b).clamp(min=0)
    if config.natural_baseline_adv:
        rvar = rvar + q_a - q_b
    A = rvar / (b - a + EPS)
    if config.use_mixing_risk_measure:
        cvar = -(q_a - S).clamp(min=0) / (a + EPS)
        A = (config.w_mix * cvar + A) / (config.w_mix + 1)
    elif config.risk_seeking_upper_tail:
        upper = (S - q_b).clamp(min=0) / (1 - b + EPS)
        A = (config.upper_weight * upper + A) / (config.upper_weight + 1)
    if scale_by_std and len(S) > 1:
        std = S.std()
        A = A / (std + EPS) if std > 0 else A          # ours: std 0 → no scaling
    return A


def credit(A, R, mode: str):
    """A_{q,j} (n_q, G) of a bundle's responses from the papers' A_j (G,) and rewards R (n_q, G)."""
    if mode == "uniform":
        return A.expand_as(R).clone()
    if mode == "score":
        return torch.where(R > 0, 0.5, 1.5) * A
    if mode == "std":
        std = R.std(dim=1, keepdim=True) if R.shape[1] > 1 else torch.ones_like(R[:, :1])
        return A / (torch.where(std > 1e-3, std, torch.ones_like(std)) + EPS)
    ratio = R - R.mean(dim=1, keepdim=True)                               # (n_q, G) R_{q,j} − R̄_q
    total = ratio.sum(dim=0)                                              # (G,)
    even = total.abs() <= 1e-6
    return torch.where(even, A / len(R), A * ratio / torch.where(even, torch.ones_like(total), total))


def grid_index(level: float) -> int:
    """The tracker level nearest to `level` (the code's argmin)."""
    return min(range(len(ALPHA_GRID)), key=lambda k: abs(ALPHA_GRID[k] - level))


def pair_papers(n_q: int, G: int, pairing: str) -> torch.Tensor:
    """(n_q, G) row index of each question's response in paper j: rows q·G … q·G + G − 1, in order
    (index) or in a random order per question (permute)."""
    order = torch.arange(G).expand(n_q, G) if pairing == "index" else torch.argsort(torch.rand(n_q, G), dim=1)
    return order + G * torch.arange(n_q)[:, None]


def update_tracker(q: list | None, S: torch.Tensor, lr_q: float) -> list:
    """q_k ← q_k + lr_q·(α_k − mean_j 1[S_j < q_k]) over ALPHA_GRID; the first call (q None) starts
    at the empirical quantiles of S, as the code does."""
    grid = torch.tensor(ALPHA_GRID)
    if q is None:
        return torch.quantile(S, grid).tolist()
    q = torch.tensor(q)
    return (q + lr_q * (grid - (S[None, :] < q[:, None]).float().mean(dim=1))).tolist()


def riskpo_batch(rollout, rewards, advantages, config: RiskPOConfig, ctx: BatchContext):
    """Replace GRPO's advantages by the bundle MVaR advantages (one per response)."""
    check_config(config)
    state, G, B, levels = ctx.state, ctx.group_size, config.bundle_size, (config.quantile_down, config.quantile_up)
    rows = pair_papers(len(rollout) // G, G, config.bundle_pairing)      # (n_q, G)
    R = rewards.detach().float().cpu()[rows]                              # (n_q, G) R_{q,j}
    w = {"track": 1.0, "mix": 0.5, "batch": 0.0}[config.use_q_track_mode] if state.q is not None else 0.0
    A_rows, used, full = torch.zeros_like(R), [], []
    for start in range(0, len(R), B):
        Rb = R[start:start + B]                                           # (n_b, G)
        S = Rb.sum(dim=0)                                                 # (G,) paper scores S_j
        q_a, q_b = (torch.quantile(S, level) for level in levels)
        if len(Rb) == B:                                                  # a full bundle: tracked quantiles
            full.append(S)
            if w:                                                         # track: w = 1, mix: w = ½
                q_a = w * state.q[grid_index(levels[0])] + (1 - w) * q_a
                q_b = w * state.q[grid_index(levels[1])] + (1 - w) * q_b
        used.append([float(q_a), float(q_b), S.mean().item()])
        A_rows[start:start + B] = credit(mvar_advantage(S, q_a, q_b, config, ctx.scale_adv_by_std), Rb,
                                         config.credit_assign_mode)
    out = torch.zeros(len(rollout))
    out[rows.reshape(-1)] = A_rows.reshape(-1)
    if full:
        state.q = update_tracker(state.q, torch.cat(full), config.lr_q)
    q_alpha, q_beta, paper_score = torch.tensor(used).mean(dim=0).tolist()
    tracked = [state.q[grid_index(lv)] if state.q else None for lv in levels]
    metrics = {"q_alpha": q_alpha, "q_beta": q_beta, "tracked_q_alpha": tracked[0], "tracked_q_beta": tracked[1],
               "paper_score": paper_score, "frac_zero_adv": (out == 0).float().mean().item(),
               "adv_mean": out.mean().item()}
    return rollout, out.to(advantages.device), metrics


@register_method("riskpo", config_cls=RiskPOConfig, state_cls=RiskPOState, transform_batch=riskpo_batch,
                 default_agg_mode="token-mean",
                 summary="RiskPO: Mixed-VaR advantages of question bundles (risk-averse), quantile tracking")
def riskpo_loss(logp, old_logp, adv, mask, agg_mode="token-mean",
                config: RiskPOConfig | None = None, extra=None):
    """PPO-clip on the MVaR advantages; with ratio_level=sequence every token of a response gets
    the ratio exp(mean_t log r_t) = (π_θ(y|x)/π_old(y|x))^{1/|y|}."""
    config = config or RiskPOConfig()
    check_config(config)
    if config.ratio_level == "sequence":
        log_r = masked_mean(logp - old_logp, mask, dim=1)                   # (B,)
        logp = old_logp + log_r[:, None]
    return grpo_loss(logp, old_logp, adv, mask, agg_mode, config, extra)
