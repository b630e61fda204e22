"""Train a tiny causal LM from scratch on token batches, logging loss and attention entropy each step.

One loop for every experiment of notebook 05: plain training at a high learning rate without
warm-up (where the attention entropy can collapse), the same with σReparam applied to the model
first, and training with the entropy-guided regulariser added to the loss:

    L = L_CE + L_ent          (L_ent = 0 without a regulariser)

Every step runs the model with eager attention and `output_attentions=True`, so the logged attention
entropy is that of the very batch the step trains on (before its update). Row fields (one dict a step):

    step, loss (L_CE, nats/token), total_loss (L), grad_norm (before clipping),
    attn_entropy [layer] (mean over heads and queries, nats), attn_entropy_norm [layer] (Ent/log n, 0..1),
    attn_entropy_heads [layer][head] (nats), qk_norm [layer] (max over heads of σ_h, bound.py),
    plus the regulariser's metrics. A non-finite loss or gradient ends the run (before the update) with a
    last row `diverged: True`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .bound import qwen2_head_logit_norms
from .entropy import eager_attention, head_entropy


@dataclass
class LMTrainConfig:
    steps: int = 200
    """Optimiser steps."""
    batch_size: int = 16
    """Sequences per step, drawn with replacement from the training set."""
    lr: float = 3e-3
    """Adam learning rate after warm-up."""
    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many steps; 0 = none (the unstable setting that σReparam
    (Zhai et al., 2023) trains through)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's β1, β2 (torch defaults)."""
    weight_decay: float = 0.0
    """AdamW weight decay (0: none, as in the paper's no-weight-decay runs)."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this value; None: no clipping."""
    seed: int = 0
    """Seed of the batch order."""


def train_lm(model, data: torch.Tensor, config: LMTrainConfig, regulariser=None) -> list[dict]:
    """Train `model` (a Hugging Face causal LM) on `data` (N, T) token ids; returns one row a step."""
    params = [p for p in model.parameters() if p.requires_grad]
    if regulariser is not None:
        params += [p for p in regulariser.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    warm = max(config.warmup_steps, 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    g = torch.Generator().manual_seed(config.seed)
    rows, start = [], time.time()
    model.train()
    with eager_attention(model):
        for step in range(config.steps):
            batch = data[torch.randint(len(data), (config.batch_size,), generator=g)]       # (B, T)
            out = model(input_ids=batch, labels=batch, output_attentions=True)
            loss = out.loss                                                                  # L_CE
            row = {"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0]}
            if not math.isfinite(row["loss"]):
                rows.append({**row, "diverged": True, "wall_s": time.time() - start})
                break
            total = loss
            if regulariser is not None:
                reg_loss, reg_metrics = regulariser(out.attentions)
                total = loss + reg_loss                                                      # L = L_CE + L_ent
                row.update(reg_metrics)
            opt.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf"))
            if not math.isfinite(grad_norm.item()):                                          # no NaN step
                rows.append({**row, "grad_norm": grad_norm.item(), "diverged": True, "wall_s": time.time() - start})
                break
            opt.step()
            sched.step()
            row.update(_attention_stats(model, out.attentions), total_loss=total.item(),
                       grad_norm=grad_norm.item(), wall_s=time.time() - start)
            rows.append(row)
    return rows


@torch.no_grad()
def _attention_stats(model, attentions) -> dict:
    heads = head_entropy([a.detach() for a in attentions])                                  # (L, H)
    norm = head_entropy([a.detach() for a in attentions], normalise=True)                   # (L, H)
    return {"attn_entropy": heads.mean(dim=1).tolist(), "attn_entropy_norm": norm.mean(dim=1).tolist(),
            "attn_entropy_heads": heads.tolist(),
            "qk_norm": [qwen2_head_logit_norms(layer.self_attn).max().item() for layer in model.model.layers]}


@torch.no_grad()
def evaluate_lm(model, data: torch.Tensor, batch_size: int = 64) -> dict:
    """Mean cross-entropy (nats per predicted token) and per-layer attention entropy on held-out data."""
    was_training = model.training
    model.eval()
    losses, maps_entropy = [], []
    with eager_attention(model):
        for chunk in data.split(batch_size):
            out = model(input_ids=chunk, labels=chunk, output_attentions=True)
            losses.append(out.loss.item() * len(chunk))
            maps_entropy.append(head_entropy(out.attentions) * len(chunk))                   # (L, H)
    model.train(was_training)
    heads = torch.stack(maps_entropy).sum(0) / len(data)
    return {"loss": sum(losses) / len(data), "attn_entropy": heads.mean(dim=1).tolist(),
            "attn_entropy_heads": heads.tolist()}


def describe_run(label: str, rows: list[dict], evaluation: dict | None) -> str:
    """One printed line: final training loss (mean of the last 10% of steps), the largest loss after
    the first 10%, held-out loss and per-layer attention entropy, and the largest q·k logit norm σ_h."""
    tail = rows[-max(1, len(rows) // 10):]
    late = [r["loss"] for r in rows[len(rows) // 10:]] or [rows[-1]["loss"]]
    if rows[-1].get("diverged"):
        return f"{label:<34} DIVERGED at step {rows[-1]['step']} (loss {rows[-1]['loss']}, grad norm " \
               f"{rows[-1].get('grad_norm')})"
    entropy = " ".join(f"{h:.2f}" for h in evaluation["attn_entropy"])
    qk = " ".join(f"{s:.2g}" for s in rows[-1]["qk_norm"])
    return (f"{label:<34} train loss {sum(r['loss'] for r in tail) / len(tail):.3f} (max after 10%: {max(late):.2f})  "
            f"held-out {evaluation['loss']:.3f}  attention entropy per layer [{entropy}] nats  max σ_h [{qk}]")


def describe_seeds(label: str, evaluations: list[dict | None]) -> str:
    """One printed line over seeds: every held-out loss and the mean per-layer attention entropy."""
    done = [e for e in evaluations if e is not None]
    if not done:
        return f"{label:<34} every seed diverged"
    losses = ", ".join(f"{e['loss']:.3f}" for e in done)
    layers = zip(*(e["attn_entropy"] for e in done))
    entropy = " ".join(f"{sum(h) / len(done):.2f}" for h in layers)
    diverged = f"; {len(evaluations) - len(done)} diverged" if len(done) < len(evaluations) else ""
    return (f"{label:<34} held-out loss {losses} (mean {sum(e['loss'] for e in done) / len(done):.3f}){diverged}; "
            f"attention entropy per layer, mean over seeds [{entropy}] nats")
