"""The course's comparison runs, shipped with the package: metrics only, no checkpoints.

Notebooks 03, 04 and 08 compare many methods × 5 seeds × 120 steps, about an hour of training on
2 cores. The runs are the cells of three grids (`grids/cpu_all_methods.yaml`, `cpu_steps_methods.yaml`,
`cpu_tool_methods.yaml`); each grid's metrics ship as one gzip'd JSON file in `minirl/assets/results/`,
so that the notebooks draw the comparison in seconds:

    course = load("cpu_all_methods")
    course.runs["clip_cov 2%"][0]              # seed 0's metrics rows, as `variants.run_variants` returns them
    unpack("cpu_all_methods", "results/x")     # a results folder that `results.collect` and the report read

A shipped file is made in a checkout, after `python -m minirl reproduce GRID`, by
`python -m minirl ship RESULTS GRID` (`minirl.shipping.pack`); `minirl.shipping.check` (run by
tests/test_shipped.py) fails when the grid file no longer makes the cells that were shipped, until the
grid is run and shipped again. Reading them (this module) needs neither torch nor the grid.
"""
from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from .metrics import METRICS_SCHEMA
from .results import CELL, DONE, open_results, record_cells
from .run_folder import write_atomic

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
        """{label: {seed: rows}} in grid order, the shape of `minirl.variants.run_variants`."""
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


def unpack(name, folder) -> Path:
    """Write the shipped runs as a results folder (manifest; per cell cell.json, config.json,
    metrics.jsonl, done.json; no checkpoints). A cell already there with the same identity is kept."""
    shipped = load(name)
    root = open_results(folder, create=True)
    for cell in shipped.cells:
        where = root / cell["id"]
        cell_json = {"schema": METRICS_SCHEMA, **identity(cell)}
        if (where / DONE).exists():
            if identity(json.loads((where / CELL).read_text())) != identity(cell):
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


def identity(cell: dict) -> dict:
    """What makes a cell the cell it is (IDENTITY), as JSON values (tuples become lists)."""
    return json.loads(json.dumps({key: cell[key] for key in IDENTITY}))
