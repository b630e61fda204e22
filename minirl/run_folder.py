"""A run's folder, written so that a kill at any moment loses nothing and mixes nothing, and read
back without running code from a file.

    OUT/metrics.jsonl   one JSON row per step, steps 0, 1, 2, ... appended as the run goes (a kill
                        may cut the last line in half; a resume drops that half line)
    OUT/config.json     the run's settings, replaced atomically
    OUT/checkpoint.pt   weights, optimizer and progress at the last checkpoint, replaced atomically
                        and loaded with `weights_only=True` (tensors and plain values only)

Whole files are replaced, never rewritten in place: the new content goes to a temporary file in
the same folder, which `os.replace` then puts in place in one step, so a reader (or a kill) sees
the old file or the new one, never half of each.

The rules a folder follows (`claim`): a new run needs a folder without metrics; a folder with
metrics and a checkpoint is continued only by a resume; a folder with metrics but no checkpoint
is a run killed before its first checkpoint, which starts again from step 0 (its rows are moved
aside, with a warning).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

METRICS, CONFIG, CHECKPOINT = "metrics.jsonl", "config.json", "checkpoint.pt"
KILLED_ROWS = "metrics.killed.jsonl"
"""Where the rows of a run killed before its first checkpoint go when the folder starts again."""


def warn(message: str) -> None:
    """One line on standard error."""
    print(f"minirl: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def atomic_file(path):
    """A binary file object whose content replaces the file at `path` in one step when the block
    ends (temporary file in the same folder, fsync, os.replace); on an error nothing is replaced."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path, data: str | bytes) -> Path:
    """Replace the file at `path` by `data` in one step."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def claim(out, resume: bool) -> str:
    """Check that a run may write into `out`; returns "new", "restart" (a run killed before its
    first checkpoint, moved aside here) or "resume". Refuses a folder that holds a run unless
    resuming, and a resume without a checkpoint and without rows."""
    out = Path(out)
    metrics, checkpoint = out / METRICS, out / CHECKPOINT
    if checkpoint.exists():
        if not resume:
            raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        return "resume"
    if not metrics.exists():
        if resume:
            raise ValueError(f"nothing to resume in {out}: no checkpoint.pt there")
        return "new"
    rows = sum(1 for line in metrics.read_text().splitlines() if line.strip())
    os.replace(metrics, out / KILLED_ROWS)
    warn(f"{out} holds {rows} row(s) of a run stopped before its first checkpoint; starting it again "
         f"from step 0 (the old rows are in {KILLED_ROWS})")
    return "restart"


def history_up_to(path, step: int) -> list[str]:
    """The lines of a metrics.jsonl for steps 0..`step` (a resume keeps these and drops later
    ones). The file must hold one row per step, in order, from 0 to at least `step`; a last line
    cut in half (a kill while writing it) is dropped with a warning. Anything else (an empty
    file, a hole, a second history appended, a damaged line) is refused, naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"cannot resume: {path} is missing, but the checkpoint is at step {step}")
    text = path.read_text()
    lines = text.split("\n")
    cut = lines.pop() if lines else ""                 # what follows the last newline: "" or a cut line
    if cut.strip():
        warn(f"{path}: dropped its last line, cut off at {len(cut)} characters (a kill while writing it)")
    kept, due = [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row_step = _row_step(path, number, line)
        if row_step != due:
            what = (f"steps {due}..{row_step - 1} are missing" if row_step > due
                    else "a second history starts there (two runs wrote to this folder)")
            raise ValueError(f"cannot resume: {path} line {number} holds step {row_step} where step {due} was due: "
                             f"{what}")
        if row_step <= step:
            kept.append(line)
        due += 1
    if due <= step:
        where = "is empty" if due == 0 else f"ends at step {due - 1}"
        raise ValueError(f"cannot resume: {path} {where}, but the checkpoint is at step {step}: rows were lost")
    return kept


def _row_step(path: Path, number: int, line: str) -> int:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot resume: {path} line {number} is not a JSON row ({err})") from None
    if not isinstance(row, dict) or not isinstance(row.get("step"), int):
        raise ValueError(f"cannot resume: {path} line {number} has no step")
    return row["step"]
