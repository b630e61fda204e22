"""minirl's methods inside other trainers: TRL's `GRPOTrainer` and verl's policy-loss registry.

    from minirl.integrations.trl import MinirlGRPOTrainer        # needs `pip install minirl[trl]`
    trainer = MinirlGRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=...,
                                method="clip_cov", method_settings={"clip_cov_ratio": "0.02"})

    from minirl.integrations.verl import register_verl_losses    # needs verl (see verl.py)
    register_verl_losses()          # then actor_rollout_ref.actor.policy_loss.loss_mode=minirl_clip_cov

This is the only place in minirl that knows TRL or verl (docs/DESIGN layering). Neither is imported
until you import its module, so `import minirl` never needs them.
"""
from __future__ import annotations


def __getattr__(name: str):
    """`from minirl.integrations import MinirlGRPOTrainer` (or `register_verl_losses`) imports lazily."""
    if name == "MinirlGRPOTrainer":
        from .trl import MinirlGRPOTrainer  # optional: trl (pip install "minirl[trl]")
        return MinirlGRPOTrainer
    if name == "register_verl_losses":
        from .verl import register_verl_losses  # optional: verl, in its own environment (verl.py)
        return register_verl_losses
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MinirlGRPOTrainer", "register_verl_losses"]
