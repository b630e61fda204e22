"""Train several methods × seeds on one task and budget, resumably: the runs that `minirl.compare`
tabulates.

    variants = {"grpo": ("grpo", {}), "clip_cov 2%": ("clip_cov", {"clip_cov_ratio": "0.02"})}
    runs = run_variants(variants, seeds=[0, 1, 2], profile="smoke", steps=100, out="runs/cmp")
    print(compare.comparison_table(runs))

A finished run is read back instead of trained again; a killed one is resumed.
"""
from __future__ import annotations

from pathlib import Path

from .compare import slug
from .config import make_config
from .metrics import read_metrics
from .trainer import train


def run_variants(variants: dict[str, tuple], seeds, profile: str, steps: int, out,
                 progress: bool = True, **train_overrides) -> dict[str, dict[int, list[dict]]]:
    """Train every (variant, seed) into out/<variant>/seed<k>; returns rows[variant][seed].
    A variant is (method, method settings) or (method, method settings, TrainConfig overrides)."""
    runs: dict[str, dict[int, list[dict]]] = {}
    for label, (method, settings, *own) in variants.items():
        runs[label] = {}
        for seed in seeds:
            folder = Path(out) / slug(label) / f"seed{seed}"
            rows = read_metrics(folder) if (folder / "metrics.jsonl").exists() else []
            if not rows or rows[-1]["step"] < steps:
                config = make_config(profile, method=method, seed=seed, steps=steps,
                                     method_settings=dict(settings), **{**train_overrides, **(own[0] if own else {})})
                train(config, folder, resume=(folder / "checkpoint.pt").exists(), progress=progress)
                rows = read_metrics(folder)
            runs[label][seed] = rows
    return runs
