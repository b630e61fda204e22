"""Strip outputs, execution counts and papermill's run metadata from notebooks before a commit.

    python notebooks/clear_outputs.py              # every notebooks/NN_*.ipynb
    python notebooks/clear_outputs.py path.ipynb   # just these

(`jupyter nbconvert --clear-output --inplace` does the same where nbconvert is installed.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def clear(path: Path) -> bool:
    """Clear one notebook in place; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + "\n" if not after.endswith("\n") else after)
    return after != before


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path(__file__).parent.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"{'cleared' if clear(path) else 'clean  '} {path}")
