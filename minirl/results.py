"""A results folder, as `python -m minirl reproduce` writes it, and reading it back as one table.

    RESULTS/minirl-results.json          {"schema": 1, ...}: the metrics schema of every run inside
    RESULTS/<notebook>/<profile>/<variant>/seed<k>/      one cell of the grid
        cell.json          what ran: notebook, profile, variant label, method, settings, seed, schema
        <notebook>.ipynb   the executed notebook
        metrics.jsonl      one row per step (docs/metrics.md); config.json, checkpoint.pt
        done.json          written last: the cell finished (error.txt instead: it failed)
    RESULTS/runs.csv, report.md, figures/                the table and the report

A folder or a cell written under another metrics schema is refused, never mixed in.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .metrics import METRICS_SCHEMA, read_metrics
from .run_folder import write_atomic

MANIFEST, CELL, DONE, ERROR = "minirl-results.json", "cell.json", "done.json", "error.txt"
ID_COLUMNS = ("run_id", "notebook", "variant", "method", "seed", "profile")


class SchemaError(ValueError):
    """A results folder this version cannot read (or add to) without mixing schemas."""


@dataclass
class Run:
    id: str          # the cell's folder under RESULTS, e.g. "00_quickstart/cpu/clip_cov_2/seed0"
    cell: dict       # cell.json
    rows: list[dict]  # metrics.jsonl
    folder: Path


def open_results(root, create: bool = False) -> Path:
    """Check that `root` is a results folder of this metrics schema; with `create`, start one."""
    root = Path(root)
    manifest = root / MANIFEST
    if manifest.exists():
        check_schema(json.loads(manifest.read_text()).get("schema"), root)
    elif not create:
        raise SchemaError(f"{root} is not a results folder (no {MANIFEST}); make one with "
                          "`python -m minirl reproduce GRID --out FOLDER`")
    elif root.exists() and any(root.iterdir()):
        raise SchemaError(f"{root} holds files but no {MANIFEST}; choose a new folder for the results")
    else:
        root.mkdir(parents=True, exist_ok=True)
        write_atomic(manifest, json.dumps({"schema": METRICS_SCHEMA, "minirl": __version__}, indent=2) + "\n")
    return root


def check_schema(schema, where) -> None:
    if schema != METRICS_SCHEMA:
        raise SchemaError(f"{where} holds metrics of schema {schema}, but this minirl writes and reads schema "
                          f"{METRICS_SCHEMA}; read it with the minirl version that wrote it, or re-run the grid "
                          "into a new folder")


def record_cells(root, ids: list[str]) -> None:
    """Put a grid's cell ids, in its order, first in the manifest: tables and figures keep that order."""
    manifest = json.loads((Path(root) / MANIFEST).read_text())
    manifest["cells"] = ids + [i for i in manifest.get("cells", []) if i not in ids]
    write_atomic(Path(root) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def collect(root) -> list[Run]:
    """Every finished cell of the results folder, in the order of the grids that made them."""
    root = open_results(root)
    order = {cell_id: i for i, cell_id in enumerate(json.loads((root / MANIFEST).read_text()).get("cells", []))}
    runs = []
    for done in sorted(root.rglob(DONE), key=lambda d: (order.get(str(d.parent.relative_to(root)), len(order)), d)):
        cell = json.loads((done.parent / CELL).read_text())
        check_schema(cell.get("schema"), done.parent)
        runs.append(Run(cell["id"], cell, read_metrics(done.parent), done.parent))
    return runs


def failures(root) -> dict[str, str]:
    """Cells that failed (error.txt and no done.json): id → the error's first line."""
    root = Path(root)
    return {str(e.parent.relative_to(root)): (e.read_text().strip().splitlines() or ["?"])[0]
            for e in sorted(root.rglob(ERROR)) if not (e.parent / DONE).exists()}


def tidy_table(runs: list[Run]) -> tuple[list[str], list[dict]]:
    """(columns, rows): one row per run and step; the run's identity, then every scalar metric."""
    metrics: dict[str, None] = {}
    for run in runs:
        for row in run.rows:
            metrics.update((k, None) for k, v in row.items() if not isinstance(v, (dict, list)))
    columns = [*ID_COLUMNS, "step", *(k for k in metrics if k != "step")]
    table = []
    for run in runs:
        ident = dict(zip(ID_COLUMNS, (run.id, run.cell["notebook"], run.cell["label"], run.cell["method"],
                                      run.cell["seed"], run.cell["profile"])))
        table += [{**ident, **{k: row.get(k) for k in columns[len(ID_COLUMNS):]}} for row in run.rows]
    return columns, table


def write_table(runs: list[Run], root) -> list[Path]:
    """RESULTS/runs.csv, and runs.parquet too where pandas and pyarrow are installed."""
    columns, table = tidy_table(runs)
    path = Path(root) / "runs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    written = [path]
    try:
        import pandas as pd  # optional: pandas and pyarrow write the Parquet copy
        import pyarrow  # noqa: F401  # optional: pandas' Parquet engine
    except ImportError:
        return written
    pd.DataFrame(table, columns=columns).to_parquet(path.with_suffix(".parquet"), index=False)
    return written + [path.with_suffix(".parquet")]


def comparisons(runs: list[Run]) -> dict[str, dict[str, dict[int, list[dict]]]]:
    """The runs grouped for comparison: "<notebook>, profile <p>" → variant label → seed → rows
    (the shape of `minirl.variants.run_variants`, which its tables and figures take)."""
    groups: dict[str, dict] = {}
    for run in runs:
        name = f"{run.cell['notebook']}, profile {run.cell['profile']}"
        groups.setdefault(name, {}).setdefault(run.cell["label"], {})[run.cell["seed"]] = run.rows
    return groups


def run_config(folder) -> dict:
    """The settings a run trained with (config.json, written from its checkpoint)."""
    return json.loads((Path(folder) / "config.json").read_text())
