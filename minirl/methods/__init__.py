"""Entropy interventions, one file each, all registered in `METHODS` by name.

Every module in this folder is imported here, so a new method file registers itself by
using `@register_method` (no list to edit).
"""
import importlib
import pkgutil

from .registry import (METHODS, BatchContext, LossExtras, Method, MethodState, PolicyLossConfig,
                       SamplingContext, get_method, register_method)

importlib.import_module(f"{__name__}.grpo")          # the baseline comes first in listings
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in ("registry", "grpo"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "BatchContext", "LossExtras", "Method", "MethodState", "PolicyLossConfig", "SamplingContext",
           "get_method", "register_method"]
