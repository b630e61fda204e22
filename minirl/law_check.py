"""The entropy law checked on the network, one training step at a time (`law_diagnostics=True`).

Notebook 01 derives, for one softmax π = softmax(z) whose logits move by δz, the lemma of Cui et
al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models"
(arXiv 2505.22617):

    ΔH ≈ −Cov_{v∼π}(log π(v), δz_v)                                          (the lemma)

On a language model the logits of every state s (a prompt and a response prefix) are made by one
shared network θ, so a step moves them all at once. Three numbers per step, each a mean over the
same states (every response position of the step's batch, the tokens fixed, nothing sampled), in
nats / token, and with H̄(θ) = mean over those states of the full-vocabulary entropy:

    law_predicted_change = ⟨∇_θ H̄(θ), Δθ⟩          first order through the network, with Δθ =
                                                    θ_after − θ_before the update the optimiser
                                                    actually applied (plain SGD: Δθ = −η∇L, so
                                                    this is −η⟨∇H̄, ∇L⟩; any optimiser)
    law_lemma_change     = mean_s −Cov_{π(·|s)}(log π, δz(s))   the lemma with the realised logit
                                                    change δz(s) = z_after(s) − z_before(s)
    law_realised_change  = H̄(θ_after) − H̄(θ_before)             exact

Both predictions are first order: they track the realised change while the step is small (a
small learning rate, few updates per step). What they do not need is the *tabular* assumption
of notebook 01 (each state's logits move by that state's own advantage), which fails on a shared
network.

The trainer's update (AdamW, several mini-batch steps) can be too large for first order late in a
run, when the policy is sharp. So the same three numbers are also measured on a clean probe, a
step the run never takes: from θ_before, one plain full-batch SGD step at the constant η = PROBE_LR
on the step's policy-gradient loss at the sampling policy,

    L(θ) = −Σ_t A_t log π_θ(y_t|s_t) / n      (token mean over the batch's n response tokens: the
                                              gradient of GRPO's clipped surrogate at ratio 1,
                                              without a method's own terms)
    θ_probe = θ_before − η ∇_θ L

    law_probe_predicted = ⟨∇_θ H̄, θ_probe − θ_before⟩ = −η ⟨∇_θ H̄, ∇_θ L⟩
    law_probe_lemma     = mean_s −Cov_{π(·|s)}(log π, δz(s)),  δz(s) = z_probe(s) − z_before(s)
    law_probe_realised  = H̄(θ_probe) − H̄(θ_before)

The probe's weights are given to the model for one forward pass (torch.func.functional_call) and
never kept. It runs in the policy's own precision, the entropies in float64: on the cpu profile's
policy its three numbers agreed with a float64 copy's to about 1e-4 relative at η = 1e-3 (4 batches)
and within 2 % at η = 3e-5 (6 batches), and it added about 1 s to a step where a float64 copy took
4-6 s (measured side by side, under load).
Cost, all told: one forward and two backward passes before the update, three forward passes after.
"""
from __future__ import annotations

import torch
from torch.func import functional_call

from .diagnostics import token_entropy
from .rollout import Rollout, gather_log_prob, policy_forward

LAW_KEYS = ("law_predicted_change", "law_lemma_change", "law_realised_change")
PROBE_KEYS = ("law_probe_predicted", "law_probe_lemma", "law_probe_realised")
PROBE_LR = 3e-5         # the probe's plain SGD step. At 1e-3, late steps of the cpu profile's run left first
                        # order (relative errors 5-58 % on 6 batches at step 75; r = 0.82 over its first 89 steps);
                        # at 3e-5 they stayed within 11 %, float32 and float64 agreeing within 2 %


def logit_change_prediction(logits: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
    """The lemma at each state: −Cov_{v∼π}(log π_v, δz_v) for π = softmax(logits), logits and δz
    (..., V); returns (...). Both centrings are under π."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    p = logp.exp()
    dz = dz.double()
    centred_logp = logp - (p * logp).sum(-1, keepdim=True)
    centred_dz = dz - (p * dz).sum(-1, keepdim=True)
    return -(p * centred_logp * centred_dz).sum(-1)


class LawCheck:
    """Made just before the update (it keeps θ_before, ∇_θ H̄ and, given the step's per-token
    advantages `adv_tok`, the probe's ∇_θ L there); `finish(model)` just after it returns the three
    `law_*` metrics, and the three `law_probe_*` ones when `adv_tok` was given. The training run
    itself is left exactly as it was: no `.grad` is touched and no random number is drawn."""

    def __init__(self, model, batch: Rollout, temperature: float, chunk_rows: int | None = None,
                 adv_tok: torch.Tensor | None = None, probe_lr: float = PROBE_LR):
        self.batch, self.temperature, self.chunk_rows, self.probe_lr = batch, temperature, chunk_rows, probe_lr
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        params = [p for p in model.parameters() if p.requires_grad]
        self.before = {name: p.detach().clone() for name, p in zip(self.names, params)}
        self.n = batch.response_mask.sum().clamp(min=1)
        self.grad = [torch.zeros_like(p) for p in params]                            # ∇_θ H̄
        self.probe_grad = None if adv_tok is None else [torch.zeros_like(p) for p in params]    # ∇_θ L
        with _eval_mode(model):
            for rows in self._chunks():          # each gradient = Σ_chunks ∇_θ (Σ_{tokens in chunk} ...) / n
                mask, logits = self.batch.response_mask[rows], self._logits(model, rows)           # (b, T), (b, T, V)
                H = token_entropy(logits) * mask                                                  # (b, T)
                _add(self.grad, torch.autograd.grad(H.sum() / self.n, params, retain_graph=adv_tok is not None,
                                                    allow_unused=True))
                if adv_tok is not None:          # L = −Σ_t A_t log π(y_t|s_t) / n
                    L = -(adv_tok[rows] * gather_log_prob(logits, self.batch.response_ids[rows]) * mask).sum()
                    _add(self.probe_grad, torch.autograd.grad(L / self.n, params, allow_unused=True))

    @torch.no_grad()
    def finish(self, model) -> dict[str, float]:
        params = dict(model.named_parameters())
        after = {name: params[name].detach() for name in self.names}
        predicted = self._dot(after)
        before = lambda **inputs: functional_call(model, self.before, (), inputs)  # noqa: E731  θ_before
        states = {"update": model}
        if self.probe_grad is not None:         # θ_probe = θ_before − η∇L, one plain SGD step
            probe = {name: self.before[name] - self.probe_lr * g for name, g in zip(self.names, self.probe_grad)}
            states["probe"] = lambda **inputs: functional_call(model, probe, (), inputs)  # noqa: E731
            probe_predicted = self._dot(probe)
        lemma = {key: torch.zeros((), dtype=torch.float64) for key in states}
        realised = {key: torch.zeros((), dtype=torch.float64) for key in states}
        with _eval_mode(model):
            for rows in self._chunks():
                mask = self.batch.response_mask[rows].double()                                     # (b, T)
                z_before = self._logits(before, rows)                                              # (b, T, V)
                H_before = _entropy(z_before)
                for key, state in states.items():
                    z_after = self._logits(state, rows)
                    realised[key] += ((_entropy(z_after) - H_before) * mask).sum()
                    lemma[key] += (logit_change_prediction(z_before, z_after - z_before) * mask).sum()
        n = self.n.double()
        metrics = {"law_predicted_change": float(predicted), "law_lemma_change": float(lemma["update"] / n),
                   "law_realised_change": float(realised["update"] / n)}
        if self.probe_grad is not None:
            metrics.update(law_probe_predicted=float(probe_predicted), law_probe_lemma=float(lemma["probe"] / n),
                           law_probe_realised=float(realised["probe"] / n))
        return metrics

    def _dot(self, theta: dict[str, torch.Tensor]) -> torch.Tensor:
        """⟨∇_θ H̄, θ − θ_before⟩ in float64: the first-order change of H̄ for the step taken to θ."""
        return sum((g.double() * (theta[name] - self.before[name]).double()).sum()
                   for name, g in zip(self.names, self.grad))

    def _chunks(self):
        n, step = len(self.batch), self.chunk_rows or max(len(self.batch), 1)
        return [slice(i, i + step) for i in range(0, n, step)]

    def _logits(self, model, rows: slice) -> torch.Tensor:
        b = self.batch
        return policy_forward(model, b.prompt_ids[rows], b.prompt_mask[rows], b.response_ids[rows], self.temperature)


def _add(totals: list[torch.Tensor], grads) -> None:
    """totals += grads, parameter by parameter (a parameter that had no part in the loss adds none)."""
    for total, g in zip(totals, grads):
        if g is not None:
            total += g


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary entropy (nats) in float64: a step's change is small against H itself."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class _eval_mode:
    """The model in eval mode (no dropout) inside the block, its own mode after it."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


# ------------------------------------------------------------------ which tokens drain the entropy
WEIGHTINGS = ("natural", "vanilla")


def token_drain(logp: torch.Tensor, entropy: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                weighting: str = "natural") -> torch.Tensor:
    """Each sampled token's part in the entropy drain at its own state, in units of η (positive:
    it lowers the entropy), (B, T), 0 on padding. With y_t drawn from π(·|s_t), advantage A_t,
    log π_t = log π(y_t|s_t) and H_t = H(π(·|s_t)), by the lemma:

        natural  the logits move by η A (tabular); −η Cov_π(log π, A) = −η E_{y∼π}[A_y (log π_y + H)]
                 when E_π A = 0, so token t contributes      A_t (log π_t + H_t)
        vanilla  token t's gradient moves the logits by η A_t (e_y − π) (in expectation η π⊙A), and
                 −Cov_π(log π, e_y − π) = −π_t (log π_t + H_t), so it contributes  A_t π_t (log π_t + H_t)

    The natural form is the per-token covariance Cov_t of Clip-Cov and KL-Cov with the state's −H_t
    in place of the batch mean of log π; the vanilla form weighs each token by its probability π_t,
    so rare tokens drain little (notebook 01 derives both).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose one of: {', '.join(WEIGHTINGS)}")
    drain = adv * (logp + entropy)
    if weighting == "vanilla":
        drain = drain * logp.exp()
    return torch.where(mask.bool(), drain, torch.zeros_like(drain))


def top_share(score: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, fraction: float) -> float:
    """The share of Σ values (over valid tokens) carried by the top `fraction` of the valid tokens
    ranked by `score` (at least one token): e.g. how much of the drain the top 0.2 % by Cov_t carry."""
    valid = mask.bool()
    score, values = score[valid].double(), values[valid].double()
    k = max(1, int(fraction * score.numel()))
    return float(values[score.topk(k).indices].sum() / values.sum())
