"""Checks for notebook 06's exercises (Tent's gradient, SAR's reliable samples and its reset)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..tta.adapter import softmax_entropy
from ..tta.sar import recovery_check, reliable_mask
from . import answered, passed


def _batch(generator: torch.Generator, B: int = 8, C: int = 10) -> torch.Tensor:
    """Logits (B, C) from sure to unsure: each row scaled by its own temperature."""
    scale = torch.logspace(-0.5, 1.0, B, dtype=torch.float64)[torch.randperm(B, generator=generator)]
    return scale[:, None] * torch.randn(B, C, generator=generator, dtype=torch.float64)


def check_tent_logit_gradient(fn) -> bool:
    """Exercise 6.1: fn(logits) = ∂L/∂z for Tent's loss L = (1/B) Σ_i H(softmax(z_i)); logits (B, C)."""
    generator = torch.Generator().manual_seed(6)
    for B, C in [(1, 10), (8, 10), (5, 3)]:
        logits = _batch(generator, B, C)
        got = fn(logits.clone())
        if not answered(got, "Exercise 6.1"):
            return False
        z = logits.clone().requires_grad_(True)
        softmax_entropy(z).mean().backward()                      # the library's loss, differentiated by autograd
        got = torch.as_tensor(np.asarray(got, dtype=np.float64))
        assert got.shape == z.shape, f"not yet: expected shape {tuple(z.shape)}, got {tuple(got.shape)}"
        assert torch.allclose(got, z.grad, rtol=1e-6, atol=1e-9), (
            f"not yet (B = {B}): compare with ∂H/∂z_c = −p_c (log p_c + H) for each row, then the 1/B of the mean")
    return passed("Exercise 6.1", "your gradient matches autograd on minirl.tta.adapter.softmax_entropy; "
                  "it is negative exactly for the classes more likely than e^(−H)")


def check_reliable_entropy_loss(fn) -> bool:
    """Exercise 6.2: fn(logits, e0_fraction) = (SAR's L1 = mean of H over {i : H_i < e0_fraction·ln C}, or 0.0
    when no sample is reliable; the fraction of the batch kept)."""
    generator = torch.Generator().manual_seed(60)
    cases = [(_batch(generator, 16, 10), 0.4), (_batch(generator, 12, 4), 0.4), (_batch(generator, 16, 10), 0.6),
             (torch.zeros(4, 10, dtype=torch.float64), 0.4)]           # the last: uniform predictions, none reliable
    for logits, fraction in cases:
        got = fn(logits.clone(), fraction)
        if not answered(got, "Exercise 6.2"):
            return False
        loss, kept = (float(v) for v in got)
        entropy = softmax_entropy(logits)
        mask = reliable_mask(entropy, fraction * math.log(logits.shape[1]))
        expected = entropy[mask].mean().item() if mask.any() else 0.0
        assert math.isclose(kept, mask.double().mean().item(), abs_tol=1e-9), (
            f"not yet: you kept {kept:.3f} of the batch, SAR keeps {mask.double().mean().item():.3f}; reliable means "
            f"H(x_i) < E0 = e0_fraction · ln C (here {fraction} · ln {logits.shape[1]})")
        assert math.isclose(loss, expected, rel_tol=1e-6, abs_tol=1e-9), (
            f"not yet: L1 = {loss:.4f}, expected {expected:.4f}; average over the kept samples only (0.0 if none)")
    return passed("Exercise 6.2", "your filter and loss match minirl.tta.sar.reliable_mask and SAR's L1")


def check_sar_reset_steps(fn) -> bool:
    """Exercise 6.3: fn(losses, reset_em) = the steps (0-based) at which SAR resets, with the EMA kept
    through a reset as the official code does."""
    rng = np.random.default_rng(600)
    streams = [[0.05, 0.3, 0.5, 0.6, 0.4, 0.5], [0.9, 0.8, 0.1, 0.05, 0.02, 0.01, 0.01, 0.6, 0.9],
               list(rng.uniform(0.0, 0.6, size=40)), list(0.8 * np.exp(-np.arange(30) / 6))]
    for losses, reset_em in zip(streams, (0.2, 0.2, 0.25, 0.2)):
        got = fn(list(losses), reset_em)
        if not answered(got, "Exercise 6.3"):
            return False
        ema, expected = None, []
        for step, loss in enumerate(losses):
            ema, reset = recovery_check(ema, loss, reset_em)       # the EMA survives the reset (keep_ema_after_reset)
            if reset:
                expected.append(step)
        assert [int(s) for s in got] == expected, (
            f"not yet: losses {np.round(losses[:8], 3).tolist()}... give resets at {expected}, you said {list(got)}; "
            "ema starts at the first loss, then ema ← 0.9·ema + 0.1·L2, reset when ema < e_m, and the ema is kept")
    return passed("Exercise 6.3", "your resets match minirl.tta.sar.recovery_check step by step")


def _sum_not_mean(logits):
    logp = logits.log_softmax(1)
    p = logp.exp()
    return -p * (logp + (-(p * logp).sum(1, keepdim=True)))


def _no_centring(logits):
    logp = logits.log_softmax(1)
    return -logp.exp() * (logp + 1) / logits.shape[0]


def _unreliable_kept(logits, fraction):
    logp = logits.log_softmax(1)
    entropy = -(logp.exp() * logp).sum(1)
    keep = entropy > fraction * math.log(logits.shape[1])
    return (entropy[keep].mean().item() if keep.any() else 0.0), keep.double().mean().item()


def _threshold_without_log(logits, fraction):
    logp = logits.log_softmax(1)
    entropy = -(logp.exp() * logp).sum(1)
    keep = entropy < fraction
    return (entropy[keep].mean().item() if keep.any() else 0.0), keep.double().mean().item()


def _divided_by_batch(logits, fraction):
    logp = logits.log_softmax(1)
    entropy = -(logp.exp() * logp).sum(1)
    keep = entropy < fraction * math.log(logits.shape[1])
    return (entropy * keep).mean().item(), keep.double().mean().item()


def _ema_restarted(losses, reset_em):
    ema, resets = None, []
    for step, loss in enumerate(losses):
        ema = loss if ema is None else 0.9 * ema + 0.1 * loss
        if ema < reset_em:
            resets.append(step)
            ema = None                              # keep_ema_after_reset=False: not the official behaviour
    return resets


def _weights_swapped(losses, reset_em):
    ema, resets = None, []
    for step, loss in enumerate(losses):
        ema = loss if ema is None else 0.1 * ema + 0.9 * loss
        if ema < reset_em:
            resets.append(step)
    return resets


MISTAKES = {
    "check_tent_logit_gradient": [_sum_not_mean, _no_centring, lambda logits: -_sum_not_mean(logits) / len(logits)],
    "check_reliable_entropy_loss": [_unreliable_kept, _threshold_without_log, _divided_by_batch],
    "check_sar_reset_steps": [_ema_restarted, _weights_swapped],
}
