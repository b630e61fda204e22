"""Shipping a grid's finished runs with the package (`python -m minirl ship RESULTS GRID`), and
checking that the shipped runs are still the ones the grid file makes (tests/test_shipped.py).

`pack` writes <grid name>.json.gz from a finished results folder; `minirl.shipped` reads it (without
torch). `check` compares the shipped cells with the cells and TrainConfigs the grid makes now.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from . import __version__, shipped
from .config import BEFORE_THE_FIELD, make_config, value_before_field
from .grid import expand, load_grid
from .metrics import METRICS_SCHEMA, read_metrics
from .results import CELL, DONE, ERROR, open_results
from .run_folder import atomic_file
from .shipped import FORMAT, IDENTITY, NOTEBOOK_TO_CONFIG, ShippedError, identity, load


def pack(results_folder, grid_file, out=None) -> Path:
    """Write <out>/<grid name>.json.gz (default: minirl/assets/results/) from a finished results folder:
    the grid as loaded and, for every cell, its identity, config.json and metrics rows. Refuses a
    folder where any cell of the grid is missing, failed, or ran other settings."""
    root, grid_file = open_results(results_folder), Path(grid_file)
    spec = load_grid(grid_file)
    cells = expand(spec)
    missing = [c.id for c in cells if not (root / c.id / DONE).exists()]
    failed = [i for i in missing if (root / i / ERROR).exists()]
    if missing:
        raise ShippedError(f"{root} lacks {len(missing)} of the grid's {len(cells)} cells ({len(failed)} failed; first: "
                           f"{missing[0]}); run `python -m minirl reproduce {grid_file} --out {root}` until every cell "
                           "is done, then ship it")
    stale = [c.id for c in cells if identity(json.loads((root / c.id / CELL).read_text())) != identity(c.to_dict())]
    if stale:
        raise ShippedError(f"{root} holds {len(stale)} cells run with other settings than {grid_file} makes now "
                           f"(first: {stale[0]}); run the grid into a new folder and ship that")
    packed = []
    for c in cells:
        folder = root / c.id
        config = json.loads((folder / "config.json").read_text())
        seconds = json.loads((folder / DONE).read_text()).get("seconds")
        packed.append({**identity(c.to_dict()), "config": config, "seconds": seconds, "rows": read_metrics(folder)})
    data = {"format": FORMAT, "schema": METRICS_SCHEMA, "minirl": __version__, "name": grid_file.stem,
            "grid_file": grid_file.name, "grid": spec, "cells": packed}
    folder = Path(out) if out is not None else shipped.ASSETS      # read here, where a test may point it elsewhere
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{grid_file.stem}.json.gz"
    with atomic_file(path) as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(json.dumps(data, separators=(",", ":")).encode())
    return path


def check(name, grid_file) -> None:
    """Raise ShippedError unless the shipped cells are the ones `grid_file` makes now: the same cells in
    the same order (variants, methods, settings, seeds, parameters), each trained with the TrainConfig
    the cell makes now, and each holding every step from 0 to its `steps`."""
    shipped, cells = load(name), expand(load_grid(grid_file))
    problems = []
    ids_now, ids_shipped = [c.id for c in cells], [cell["id"] for cell in shipped.cells]
    if set(ids_now) != set(ids_shipped):
        problems.append(f"cells only in the grid: {sorted(set(ids_now) - set(ids_shipped))[:3]}, only shipped: "
                        f"{sorted(set(ids_shipped) - set(ids_now))[:3]}")
    elif ids_now != ids_shipped:
        problems.append("the grid orders its cells differently")
    by_id = {cell["id"]: cell for cell in shipped.cells}
    for c in (c for c in cells if c.id in by_id):
        cell = by_id[c.id]
        now = identity(c.to_dict())
        # a setting that a grid pins at its value from before the field existed: the shipped cell did not record it
        cell = {**cell, "train_settings": {**{k: v for k, v in now["train_settings"].items()
                                               if k in BEFORE_THE_FIELD and v == BEFORE_THE_FIELD[k]},
                                            **cell["train_settings"]}}
        changed = [k for k in IDENTITY if json.dumps(now[k], sort_keys=True) != json.dumps(cell[k], sort_keys=True)]
        config_now = config_of(c)
        changed += [f"config {k}" for k in sorted(set(config_now) | set(cell["config"]))
                    if config_now.get(k, "<missing>") != cell["config"].get(k, value_before_field(k))]
        steps = [row["step"] for row in cell["rows"]]
        if steps != list(range(cell["config"]["steps"] + 1)):
            changed.append(f"steps logged {steps[:1]}..{steps[-1:]} (expected 0..{cell['config']['steps']})")
        if changed:
            problems.append(f"{c.id}: {', '.join(changed)}")
    if problems:
        raise ShippedError(f"the shipped {shipped.name} is not what {grid_file} makes now ({len(problems)} "
                           f"differences; {problems[0]}); run `python -m minirl reproduce {grid_file}` and "
                           f"`python -m minirl ship RESULTS {grid_file}` again")


def config_of(cell) -> dict:
    """The config.json that a grid cell's run writes: its TrainConfig (from the cell's profile, method,
    seed, settings and parameters) and the metrics schema."""
    mapped = {NOTEBOOK_TO_CONFIG[k]: v for k, v in cell.notebook_parameters.items() if k in NOTEBOOK_TO_CONFIG}
    config = make_config(cell.profile, method=cell.method, seed=cell.seed, method_settings=dict(cell.method_settings),
                         **{**cell.train_settings, **mapped})
    return json.loads(json.dumps({"schema": METRICS_SCHEMA, **config.to_dict()}))
