"""The course's comparison runs, shipped with the package: metrics only, no checkpoints.

Notebooks 03, 04 and 08 compare many methods × 5 seeds × 120 steps, about an hour of training on
2 cores. The runs are the cells of three grids (`grids/cpu_all_methods.yaml`, `cpu_steps_methods.yaml`,
`cpu_tool_methods.yaml`); each grid's metrics ship as one gzip'd JSON file in `minirl/assets/results/`,
so that the notebooks draw the comparison in seconds:

    course = load("cpu_all_methods")
    course.runs["clip_cov 2%"][0]              # seed 0's metrics rows, as `compare.run_variants` returns them
    unpack("cpu_all_methods", "results/x")     # a results folder that `results.collect` and the report read

A shipped file is made in a checkout, after `python -m minirl reproduce GRID`, by
`python -m minirl ship RESULTS GRID` (`pack`); `check` (run by tests/test_shipped.py) fails when the
grid file no longer makes the cells that were shipped, until the grid is run and shipped again.
"""
from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from .results import CELL, DONE, ERROR, MANIFEST, open_results, record_cells
from .run_folder import atomic_file, write_atomic
from .metrics import METRICS_SCHEMA, read_metrics

ASSETS = Path(__file__).resolve().parent / "assets" / "results"
FORMAT = 1
# A cell's notebook parameters that are TrainConfig fields under another name (00_quickstart's cells).
NOTEBOOK_TO_CONFIG = {"model": "init", "task": "task", "steps": "steps"}
IDENTITY = ("id", "notebook", "profile", "label", "method", "seed", "method_settings", "notebook_parameters",
            "train_settings")


class ShippedError(ValueError):
    """Shipped results that are missing, unfinished, or no longer what their grid file makes."""


@dataclass
class Shipped:
    """One grid's shipped runs: `cells` in grid order, each with its identity, `config` and `rows`."""

    name: str
    grid: dict            # the grid file as loaded
    cells: list[dict]

    @property
    def runs(self) -> dict[str, dict[int, list[dict]]]:
        """{label: {seed: rows}} in grid order, the shape of `minirl.compare.run_variants`."""
        runs: dict[str, dict[int, list[dict]]] = {}
        for cell in self.cells:
            runs.setdefault(cell["label"], {})[cell["seed"]] = cell["rows"]
        return runs

    def config(self, label: str = "grpo") -> dict:
        """The settings (config.json) the first seed of `label` trained with."""
        return next(cell["config"] for cell in self.cells if cell["label"] == label)


def available() -> list[str]:
    """The names of the shipped grids."""
    return sorted(p.name[:-len(".json.gz")] for p in ASSETS.glob("*.json.gz"))


def path_of(name) -> Path:
    """The shipped file of `name` (a grid name such as "cpu_all_methods", or a .json.gz path)."""
    path = Path(name)
    if path.suffix == ".gz":
        if not path.exists():
            raise ShippedError(f"no shipped results file {path}")
        return path
    path = ASSETS / f"{name}.json.gz"
    if not path.exists():
        raise ShippedError(f"no shipped results named {name!r}; choose one of: {', '.join(available()) or 'none'} "
                           f"(in {ASSETS})")
    return path


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def load(name) -> Shipped:
    """The shipped runs of one grid (read once per process)."""
    path = path_of(name)
    data = _read(str(path), path.stat().st_mtime_ns)
    if data.get("format") != FORMAT or data.get("schema") != METRICS_SCHEMA:
        raise ShippedError(f"{path} holds format {data.get('format')}, metrics schema {data.get('schema')}; this minirl "
                           f"reads format {FORMAT}, schema {METRICS_SCHEMA}: re-run its grid and ship it again")
    return Shipped(data["name"], data["grid"], data["cells"])


def pack(results_folder, grid_file, out=None) -> Path:
    """Write <out>/<grid name>.json.gz (default: minirl/assets/results/) from a finished results folder:
    the grid as loaded and, for every cell, its identity, config.json and metrics rows. Refuses a
    folder where any cell of the grid is missing, failed, or ran other settings."""
    from .grid import expand, load_grid

    root, grid_file = open_results(results_folder), Path(grid_file)
    spec = load_grid(grid_file)
    cells = expand(spec)
    missing = [c.id for c in cells if not (root / c.id / DONE).exists()]
    failed = [i for i in missing if (root / i / ERROR).exists()]
    if missing:
        raise ShippedError(f"{root} lacks {len(missing)} of the grid's {len(cells)} cells ({len(failed)} failed; first: "
                           f"{missing[0]}); run `python -m minirl reproduce {grid_file} --out {root}` until every cell "
                           "is done, then ship it")
    stale = [c.id for c in cells if _identity(json.loads((root / c.id / CELL).read_text())) != _identity(c.to_dict())]
    if stale:
        raise ShippedError(f"{root} holds {len(stale)} cells run with other settings than {grid_file} makes now "
                           f"(first: {stale[0]}); run the grid into a new folder and ship that")
    shipped = []
    for c in cells:
        folder = root / c.id
        config = json.loads((folder / "config.json").read_text())
        seconds = json.loads((folder / DONE).read_text()).get("seconds")
        shipped.append({**_identity(c.to_dict()), "config": config, "seconds": seconds, "rows": read_metrics(folder)})
    from . import __version__

    data = {"format": FORMAT, "schema": METRICS_SCHEMA, "minirl": __version__, "name": grid_file.stem,
            "grid_file": grid_file.name, "grid": spec, "cells": shipped}
    folder = Path(out) if out is not None else ASSETS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{grid_file.stem}.json.gz"
    with atomic_file(path) as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(json.dumps(data, separators=(",", ":")).encode())
    return path


def unpack(name, folder) -> Path:
    """Write the shipped runs as a results folder (manifest; per cell cell.json, config.json,
    metrics.jsonl, done.json; no checkpoints). A cell already there with the same identity is kept."""
    shipped = load(name)
    root = open_results(folder, create=True)
    for cell in shipped.cells:
        where = root / cell["id"]
        cell_json = {"schema": METRICS_SCHEMA, **_identity(cell)}
        if (where / DONE).exists():
            if _identity(json.loads((where / CELL).read_text())) != _identity(cell):
                raise ShippedError(f"{where} holds a run with other settings than the shipped {cell['id']}; "
                                   "unpack into a new folder")
            continue
        where.mkdir(parents=True, exist_ok=True)
        write_atomic(where / CELL, json.dumps(cell_json, indent=2) + "\n")
        write_atomic(where / "config.json", json.dumps(cell["config"], indent=2) + "\n")
        write_atomic(where / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in cell["rows"]))
        write_atomic(where / DONE, json.dumps({"seconds": cell["seconds"], "shipped": shipped.name}) + "\n")
    record_cells(root, [cell["id"] for cell in shipped.cells])
    return root


def check(name, grid_file) -> None:
    """Raise ShippedError unless the shipped cells are the ones `grid_file` makes now: the same cells in
    the same order (variants, methods, settings, seeds, parameters), each trained with the TrainConfig
    the cell makes now, and each holding every step from 0 to its `steps`."""
    from .grid import expand, load_grid

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
        now = _identity(c.to_dict())
        changed = [k for k in IDENTITY if json.dumps(now[k], sort_keys=True) != json.dumps(cell[k], sort_keys=True)]
        config_now = config_of(c)
        changed += [f"config {k}" for k in sorted(set(config_now) | set(cell["config"]))
                    if config_now.get(k, "<missing>") != cell["config"].get(k, _added_later(k))]
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
    from .config import make_config

    mapped = {NOTEBOOK_TO_CONFIG[k]: v for k, v in cell.notebook_parameters.items() if k in NOTEBOOK_TO_CONFIG}
    config = make_config(cell.profile, method=cell.method, seed=cell.seed, method_settings=dict(cell.method_settings),
                         **{**cell.train_settings, **mapped})
    return json.loads(json.dumps({"schema": METRICS_SCHEMA, **config.to_dict()}))


def _added_later(key: str):
    """What a run made before TrainConfig had the field `key` ran with: the field's default (a field is
    added with a default that keeps earlier runs' behaviour, e.g. a diagnostic that is off)."""
    from dataclasses import MISSING, fields

    from .config import TrainConfig

    default = {f.name: f.default for f in fields(TrainConfig)}.get(key, MISSING)
    return "<missing>" if default is MISSING else json.loads(json.dumps(default))


def _identity(cell: dict) -> dict:
    return json.loads(json.dumps({key: cell[key] for key in IDENTITY}))

