"""Entropy collapse inside the network: attention entropy, and two methods that act on it.

    entropy.py               the diagnostic: per-head attention entropy of any Hugging Face causal LM
    bound.py                 the lower bound of attention entropy from the logits' spectral norm (Zhai et al.)
    sigma_reparam.py         σReparam: Ŵ = (γ/σ(W))·W for every linear layer (Zhai et al.)
    entropy_guided.py        the attention-entropy regulariser with learnable thresholds (Jha & Reagen)
    reduced_nonlinearity.py  a Qwen2 without norms and with a linear FFN, where Jha & Reagen's failures show
    synthetic_lm.py          a copy / reverse character language to train tiny LMs from scratch
    train_lm.py              the training loop that logs loss and attention entropy every step
    verdicts.py              what notebook 05 concludes, computed: collapsed / overloaded layers, seed-spread verdicts

Papers: Zhai et al., "Stabilizing Transformer Training by Preventing Attention Entropy Collapse"
(ICML 2023; official code github.com/apple/ml-sigma-reparam); Jha & Reagen, "Entropy-Guided
Attention for Private LLMs" (AAAI'25 PPAI workshop; official code
github.com/Nandan91/entropy-guided-attention-llm).

These methods change the architecture or the pre-training loss of a language model, not the RL
fine-tuning stages of `minirl.METHODS`, so they have their own small registry: `ATTENTION_METHODS`,
reached by name with `prepare_attention_method(name, model, **settings)`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .entropy import attention_entropy, attention_maps, head_entropy, row_entropy
from .entropy_guided import EntropyGuidedRegulariser
from .sigma_reparam import SigmaReparamLinear, apply_sigma_reparam


@dataclass(frozen=True)
class AttentionMethod:
    name: str
    paper: str
    """Where the method comes from ("-" for none)."""
    stage: str
    """"architecture" (changes the model in place) or "loss" (returns a term to add to the loss)."""
    summary: str
    prepare: Callable
    """prepare(model, **settings) → a regulariser module to add to the loss, or None."""


def _prepare_sigma_reparam(model, **settings):
    apply_sigma_reparam(model, **settings)
    return None


def _prepare_entropy_guided(model, **settings):
    config = model.config
    return EntropyGuidedRegulariser(config.num_hidden_layers, config.num_attention_heads, **settings)


ATTENTION_METHODS = {
    "none": AttentionMethod("none", "-", "architecture", "the model as it is", lambda model: None),
    "sigma_reparam": AttentionMethod("sigma_reparam", "Zhai et al., ICML 2023", "architecture",
                                     "every linear weight as (γ/σ(W))·W, σ by one power-iteration step a step",
                                     _prepare_sigma_reparam),
    "entropy_guided_attention": AttentionMethod("entropy_guided_attention", "Jha & Reagen, 2025", "loss",
                                                "penalise head entropies outside a band around a learned target",
                                                _prepare_entropy_guided),
}


def get_attention_method(name: str) -> AttentionMethod:
    if name not in ATTENTION_METHODS:
        raise ValueError(f"unknown attention method {name!r}; choose one of: {', '.join(ATTENTION_METHODS)}")
    return ATTENTION_METHODS[name]


def prepare_attention_method(name: str, model, **settings):
    """Apply method `name` to `model` (in place); returns the regulariser to pass to train_lm, or None.
    Build the optimiser afterwards (σReparam adds parameters)."""
    return get_attention_method(name).prepare(model, **settings)


__all__ = ["ATTENTION_METHODS", "AttentionMethod", "EntropyGuidedRegulariser", "SigmaReparamLinear",
           "apply_sigma_reparam", "attention_entropy", "attention_maps", "get_attention_method", "head_entropy",
           "prepare_attention_method", "row_entropy"]
