"""Entropy interventions, one file each, all registered in `METHODS` by name.

Each method file registers itself with `@register_method` when it is imported; the list below
imports every one (a new method file is added to it: tests/test_layers.py checks that none is
missing). GRPO, the baseline, comes first in listings; the others follow in this order.
"""
from .registry import (METHODS, BatchContext, LossExtras, Method, MethodState, PolicyLossConfig,
                       SamplingContext, get_method, register_method)

from . import grpo  # noqa: E402, F401, I001  (the baseline first)
from . import (aepo, aepo_agentic, aepo_agentic_loss, clip_cov, cure, dapo, dr_grpo, empg,  # noqa: E402, F401
               entropy_adv, entropy_bonus, epo, ettrl, evol_rl, high_entropy_tokens, kl_cov, kl_ref, llds, lp_reg,
               pear, riskpo, siren, spear, steer, tea_rl, ttrl, ulorl)

__all__ = ["METHODS", "BatchContext", "LossExtras", "Method", "MethodState", "PolicyLossConfig", "SamplingContext",
           "get_method", "register_method"]
