"""Entropy interventions, one file each, all registered in `METHODS` by name."""
from .registry import METHODS, LossExtras, Method, PolicyLossConfig, get_method, register_method
from . import grpo  # noqa: F401  (registers "grpo")

__all__ = ["METHODS", "LossExtras", "Method", "PolicyLossConfig", "get_method", "register_method"]
