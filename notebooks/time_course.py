"""Time every notebook of the course and write the times into the tables that quote them.

    python notebooks/time_course.py              # run each notebook in `smoke`, one at a time, then update the tables
    python notebooks/time_course.py --tables     # only rewrite the tables from the recorded times

`smoke` (the fast profile) is timed here: each notebook runs with papermill in a fresh temporary
folder, one at a time, with OMP_NUM_THREADS=1, kernel start included; the times and the machine's
load average go to docs/notebooks/timings.json. `cpu` times are the `seconds` that each executed copy
under docs/notebooks/ records (`python notebooks/build_docs.py` makes them). The tables of README.md,
notebooks/README.md and docs/workshop.md quote both: their time cells are rewritten here, row by
row (a row is found by its link to the notebook, a column by its header), and tests/test_course.py
fails when a table disagrees with the records. Time on a quiet machine: a second job on 2 cores
makes a run several times slower.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minirl.run_folder import write_atomic  # noqa: E402

NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMINGS = ROOT / "docs" / "notebooks" / "timings.json"
TABLES = [ROOT / "README.md", ROOT / "notebooks" / "README.md", ROOT / "docs" / "workshop.md"]


def duration(seconds: float) -> str:
    """'42 s' or '3 min 5 s'."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


def recorded_times() -> dict[str, dict[str, str]]:
    """{notebook: {"smoke": '42 s', "cpu": '3 min 5 s'}} from timings.json and the executed copies."""
    smoke = json.loads(TIMINGS.read_text())["smoke"] if TIMINGS.exists() else {}
    times = {}
    for name in NOTEBOOKS:
        copy = ROOT / "docs" / "notebooks" / f"{name}.ipynb"
        cpu = json.loads(copy.read_text())["metadata"].get("minirl", {}).get("seconds") if copy.exists() else None
        times[name] = {key: duration(value) for key, value in (("smoke", smoke.get(name)), ("cpu", cpu))
                       if value is not None}
    return times


def column_kind(header: str) -> str | None:
    header = header.strip().lower()
    if header.startswith("smoke") or "fast profile" in header:
        return "smoke"
    return "cpu" if header == "cpu" else None


def rewrite_table(text: str, times: dict[str, dict[str, str]]) -> str:
    """Put the recorded times in the time columns of every table row that links a notebook."""
    lines, kinds = text.splitlines(keepends=True), {}
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            kinds = {}
            continue
        cells = line.rstrip("\n").split("|")
        if not kinds and any(column_kind(c) for c in cells):              # a header row
            kinds = {j: column_kind(c) for j, c in enumerate(cells) if column_kind(c)}
            continue
        linked = re.search(r"\]\((?:\.\./)?(?:notebooks/)?([0-9][0-9]_[A-Za-z0-9_]+)\.ipynb\)", line)
        if kinds and linked and linked.group(1) in times:
            for j, kind in kinds.items():
                if kind in times[linked.group(1)]:
                    cells[j] = f" {times[linked.group(1)][kind]} "
            lines[i] = "|".join(cells) + "\n"
    return "".join(lines)


def time_smoke(names: list[str]) -> dict[str, float]:
    import papermill

    seconds = {}
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"minirl-time-{name}-") as scratch:
            start = time.time()
            papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(Path(scratch) / "out.ipynb"),
                                       parameters={"profile": "smoke"}, kernel_name="python3", cwd=scratch,
                                       progress_bar=False)
            seconds[name] = round(time.time() - start, 1)
        print(f"{name}: {duration(seconds[name])} (load average {os.getloadavg()[0]:.1f})", flush=True)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", action="store_true", help="only rewrite the tables from the recorded times")
    parser.add_argument("notebooks", nargs="*", help=f"names to time (default: all): {', '.join(NOTEBOOKS)}")
    args = parser.parse_args(argv)
    if not args.tables:
        unknown = [n for n in args.notebooks if n not in NOTEBOOKS]
        if unknown:
            parser.error(f"unknown notebook(s) {', '.join(unknown)}; choose from: {', '.join(NOTEBOOKS)}")
        load_before = os.getloadavg()[0]
        smoke = time_smoke(args.notebooks or NOTEBOOKS)
        record = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {"smoke": {}}
        record["smoke"].update(smoke)
        record["machine"] = {"cpus": os.cpu_count(), "load_average_before": round(load_before, 2),
                             "load_average_after": round(os.getloadavg()[0], 2), "omp_num_threads": 1}
        write_atomic(TIMINGS, json.dumps(record, indent=1, sort_keys=True) + "\n")
    times = recorded_times()
    for path in TABLES:
        text = path.read_text()
        new = rewrite_table(text, times)
        if new != text:
            write_atomic(path, new)
        print(f"{path.relative_to(ROOT)}: {'rewritten' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
