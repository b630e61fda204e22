"""What the course notebooks share: where they write their figures, and where the course lives.

A notebook never writes into the installed package: its figures go to `figures/` under the
folder the notebook runs in (or wherever `MINIRL_FIGURES` points), its runs to `runs/` there.

    fig = training_curves(rows)
    save_figure(fig, "grpo_curves")          # figures/grpo_curves.png, written atomically

`python notebooks/build_docs.py` runs every notebook in a temporary folder and copies what they saved
into the checkout's `docs/figures/`, the only way the README's figures change.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .run_folder import atomic_file, write_atomic

FIGURES_VARIABLE = "MINIRL_FIGURES"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def figures_dir() -> Path:
    """The folder notebooks save their figures in: $MINIRL_FIGURES, else ./figures."""
    return Path(os.environ.get(FIGURES_VARIABLE) or "figures")


def save_figure(fig, name: str, dpi: int = 110) -> Path:
    """Save `fig` as figures_dir()/name.png (atomically: a reader never sees half a file)."""
    if not NAME.match(name):
        raise ValueError(f"figure name {name!r} must be a plain file name (letters, digits, _ . -), "
                         "without a folder or an extension")

    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    with atomic_file(path) as f:
        fig.savefig(f, dpi=dpi, format="png")
    return path


OUTCOMES_VARIABLE = "MINIRL_OUTCOMES"


def outcomes_dir() -> Path:
    """The folder `record_outcomes` writes to: $MINIRL_OUTCOMES, else ./outcomes."""
    return Path(os.environ.get(OUTCOMES_VARIABLE) or "outcomes")


def record_outcomes(notebook: str, **values) -> Path:
    """Keep the numbers a notebook's text is about (outcomes/<notebook>.json, merged with what the
    notebook recorded before), so that a test can check the story its run tells. Values must be
    JSON numbers, strings, booleans, lists or dicts of them."""
    if not NAME.match(notebook):
        raise ValueError(f"notebook name {notebook!r} must be a plain name such as '00_quickstart'")
    folder = outcomes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded.update(values)

    return write_atomic(path, json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def read_outcomes(notebook: str, folder: str | Path | None = None) -> dict:
    """What `record_outcomes` kept for `notebook` (in `folder`, default outcomes_dir())."""
    path = Path(folder or outcomes_dir()) / f"{notebook}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def source_hash(cells: list[dict]) -> str:
    """SHA-256 of a notebook's source: every cell's type and text, in order (outputs, counts and
    metadata left out; a cell papermill injected for parameters skipped). An executed copy records
    the hash of the source it was made from, so a stale copy can be told from a current one."""
    def text(cell):
        source = cell.get("source", "")
        return "".join(source) if isinstance(source, list) else source

    kept = [(c["cell_type"], text(c)) for c in cells
            if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return hashlib.sha256(json.dumps(kept, ensure_ascii=False).encode()).hexdigest()
