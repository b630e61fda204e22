"""`python -m minirl reproduce GRID`: run every cell of a grid (`minirl.grid`) with papermill, each
into its own folder of one results folder (`minirl.results`), then write the table and the report.

    outcome = reproduce(load_grid("grids/smoke_two_methods.yaml"), workers=2)

The whole grid is checked before the first cell runs. A cell is done when its folder holds the
executed notebook, metrics.jsonl and, written last, done.json; a re-run skips done cells and
starts every other one again from an empty folder, so a killed grid resumes where it stopped.
A failed cell leaves error.txt (and its executed notebook, which shows where) and the grid goes on.
One `reproduce` at a time writes into a results folder: it holds RESULTS/reproduce.lock (its pid,
host and start time) while it runs; a second one is refused with those, and a lock left by a process
that no longer runs (on this host) is taken over.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from .checkpoints import load_checkpoint_file
from .grid import Cell, GridError, expand
from .metrics import METRICS_SCHEMA
from .report import write_report
from .results import CELL, DONE, ERROR, open_results, record_cells
from .run_folder import warn, write_atomic

LOCK = "reproduce.lock"


@dataclass
class Outcome:
    """What one `reproduce` call did, by cell id."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)     # id → one line: the error
    seconds: float = 0.0


def reproduce(spec: dict, out=None, workers: int = 1, dry_run: bool = False, report: bool = True,
              progress: bool = True) -> Outcome:
    """Check the grid, run its missing cells on `workers` processes, write runs.csv and report.md."""
    start = time.time()
    cells = expand(spec)                                   # every bad name is reported here
    root = Path(out or spec.get("out") or "results/grid")
    if root.exists() or not dry_run:
        open_results(root, create=not dry_run)             # refuses a folder of another schema
    with contextlib.nullcontext() if dry_run else results_lock(root):
        return _reproduce(cells, root, workers, dry_run, report, progress, start)


def _reproduce(cells: list[Cell], root: Path, workers: int, dry_run: bool, report: bool, progress: bool,
               start: float) -> Outcome:
    todo = [c for c in cells if not is_done(root / c.id)]
    check_done_cells([c for c in cells if c not in todo], root)
    if dry_run:
        print(describe(cells, todo, root))
        return Outcome(skipped=[c.id for c in cells if c not in todo])
    record_cells(root, [c.id for c in cells])
    workers = usable_workers(workers)
    print(f"{_count(cells, 'cell')} in {root}: {len(cells) - len(todo)} done already, {len(todo)} to run "
          f"on {_count(range(workers), 'worker')}")
    outcome = Outcome(skipped=[c.id for c in cells if c not in todo])
    for cell_id, seconds, error in _run_all(todo, root, workers, progress):
        if error:
            outcome.failed[cell_id] = error
        else:
            outcome.ran.append(cell_id)
    if report:
        print("report:", write_report(root))
    outcome.seconds = time.time() - start
    return outcome


@contextlib.contextmanager
def results_lock(root: Path):
    """Hold RESULTS/reproduce.lock while the block runs: refuse when another live process holds
    it (naming its pid, host and start time); take over one whose process has gone."""
    lock = Path(root) / LOCK
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is not None:
                raise GridError(f"{root} is being written by another `python -m minirl reproduce` (pid "
                                f"{holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}); "
                                f"wait for it to finish or choose another --out (if that process is gone, "
                                f"delete {lock})") from None
            warn(f"{lock} was left by a process that no longer runs; taking it over")
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(mine) + "\n")
        break
    else:
        raise GridError(f"could not take {lock}; another `reproduce` may have started at the same moment")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _lock_holder(lock: Path) -> dict | None:
    """Who holds the lock, or None when it is stale (its process, on this host, has gone)."""
    try:
        holder = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None                                        # unreadable (a kill while writing it): stale
    if not isinstance(holder, dict):
        return None
    if holder.get("host") != socket.gethostname():
        return holder                                      # another machine's process: cannot tell, so refuse
    try:
        os.kill(int(holder.get("pid")), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return None
    except PermissionError:
        pass                                               # alive, another user's
    return holder


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def is_done(folder: Path) -> bool:
    return (folder / DONE).exists() and (folder / "metrics.jsonl").exists() and any(folder.glob("*.ipynb"))


def check_done_cells(done: list[Cell], root: Path) -> None:
    """A done cell is skipped only if it ran exactly this cell: same method, settings and parameters."""
    stale = [c.id for c in done if json.loads((root / c.id / CELL).read_text()) != {
        "schema": METRICS_SCHEMA, **json.loads(json.dumps(c.to_dict()))}]
    if stale:
        raise GridError(f"{root} holds {', '.join(stale)} run with other settings or another metrics schema than "
                        "this grid's (see their cell.json); choose another --out, or delete those folders to run "
                        "them again")


def usable_workers(asked: int) -> int:
    """`asked`, at least 1 and at most the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if asked > cores:
        print(f"--workers {asked} is more than the {cores} cores here; using {cores}")
    return max(1, min(asked, cores))


def describe(cells: list[Cell], todo: list[Cell], root: Path) -> str:
    """The dry run: one line per cell, and what a real run would do."""
    lines = [f"{'status':<6}  {'cell':<52} method and settings; parameters"]
    for c in cells:
        settings = "".join(f" {k}={v}" for k, v in c.method_settings.items())
        params = {**c.notebook_parameters, **c.train_settings}
        lines.append(f"{'todo' if c in todo else 'done':<6}  {c.id:<52} {c.method}{settings}"
                     + (f"; {params}" if params else ""))
    lines.append(f"{len(cells)} cells ({len(todo)} to run) into {root}")
    return "\n".join(lines)


def _run_all(todo: list[Cell], root: Path, workers: int, progress: bool):
    """Yield (id, seconds, error or None) as cells finish, with a progress bar and an ETA."""
    bar = tqdm(total=len(todo), unit="cell", desc="reproduce", disable=not progress or not todo)
    with contextlib.ExitStack() as stack:
        if workers == 1:
            stack.enter_context(kernel_environment())
            finished = (run_cell(cell, root) for cell in todo)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                           initializer=_set_kernel_environment))
            finished = (f.result() for f in as_completed([pool.submit(run_cell, c, root) for c in todo]))
        for cell_id, seconds, error in finished:
            bar.update(1)
            bar.set_postfix_str(f"{cell_id} {seconds:.0f} s" + (" FAILED" if error else ""))
            if error:
                bar.write(f"failed: {cell_id}: {error}")
            yield cell_id, seconds, error
    bar.close()


def run_cell(cell: Cell, root) -> tuple[str, float, str | None]:
    """Execute one cell's notebook into an empty folder; returns (id, seconds, error or None)."""
    import papermill  # optional: papermill runs the notebooks (pip install papermill, or minirl[gpu])

    folder = Path(root) / cell.id
    if folder.exists():
        shutil.rmtree(folder)                              # a killed or failed cell starts again
    folder.mkdir(parents=True)
    (folder / CELL).write_text(json.dumps({"schema": METRICS_SCHEMA, **cell.to_dict()}, indent=2) + "\n")
    start = time.time()
    try:
        with _stderr_to(folder / "kernel.log"):             # the kernel's warnings, kept out of the progress bar
            papermill.execute_notebook(cell.notebook, str(folder / Path(cell.notebook).name),
                                       parameters=cell.papermill_parameters(folder.resolve()), kernel_name="python3",
                                       cwd=str(folder), progress_bar=False)
        if not (folder / "metrics.jsonl").exists():
            raise RuntimeError(f"{Path(cell.notebook).name} wrote no metrics.jsonl into its `out` folder")
        _write_config(folder)
    except Exception as err:  # noqa: BLE001  (record any failure of the cell and go on with the grid)
        seconds = time.time() - start
        (folder / ERROR).write_text(_error_text(err) + "\n")
        return cell.id, seconds, _error_text(err).splitlines()[0]
    seconds = time.time() - start
    (folder / ERROR).unlink(missing_ok=True)                # never an error.txt beside done.json
    write_atomic(folder / DONE, json.dumps({"seconds": round(seconds, 1)}) + "\n")   # last: the cell is done
    return cell.id, seconds, None


def _write_config(folder: Path) -> None:
    """config.json from the run's checkpoint, as `minirl train` writes it (the notebook's Trainer does not)."""
    if (folder / "checkpoint.pt").exists():
        state = load_checkpoint_file(folder / "checkpoint.pt")       # tensors and plain values: nothing in it runs
        write_atomic(folder / "config.json", json.dumps({"schema": state["schema"], **state["config"]}, indent=2))


def _error_text(err: Exception) -> str:
    """One line first (papermill's: the notebook's exception and the cell), then the details."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    head = f"{ename}: {evalue} (cell {err.exec_count})" if ename else f"{type(err).__name__}: {err}"
    return re.sub(r"\x1b\[[0-9;]*m", "", f"{head.splitlines()[0] if head.strip() else type(err).__name__}\n{err}")


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send this process's standard error, and so that of the kernels it starts, to a file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def kernel_environment():
    """While cells run here: one OpenMP thread per kernel (several share the cores) and this minirl."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "PYTHONPATH")}
    _set_kernel_environment()
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def _set_kernel_environment() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    package_root = str(Path(__file__).resolve().parents[1])
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if package_root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, paths)])
