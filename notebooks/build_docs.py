"""Make the executed copies of the course that readers see without running anything:
docs/notebooks/NN_*.ipynb (every figure and number, viewable on GitHub and nbviewer) and the
figures the README shows (docs/figures/), from the current source notebooks, in a checkout.

    python notebooks/build_docs.py                       # every notebook, in its DOCS_PROFILE
    python notebooks/build_docs.py 00_quickstart 02_entropy_collapse --profile smoke

Each notebook runs with papermill in a fresh temporary folder (so it writes nothing here but
what this script copies back). Its executed copy records the SHA-256 of the source cells it was
made from (metadata "minirl"), and tests/test_docs.py fails when a source has changed since:
run this script again and commit docs/ with the notebook.
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

from minirl.course import FIGURES_VARIABLE, OUTCOMES_VARIABLE, source_hash  # noqa: E402
from minirl.run_folder import write_atomic  # noqa: E402

# The profile each executed copy is made in: `cpu` where the notebook trains in minutes, the
# shipped results where it compares many runs (03, the three 04 notebooks and 08 read them in every profile
# but gpu; 04_steps_and_tools in every profile).
DOCS_PROFILES = {
    "00_quickstart": "cpu",
    "01_entropy_covariance_theory": "cpu",
    "02_entropy_collapse": "cpu",
    "03_loss_interventions": "cpu",
    "04_branching_rollouts": "cpu",
    "04_rewards_and_advantages": "cpu",
    "04_steps_and_tools": "cpu",
    "05_attention_entropy": "cpu",
    "06_test_time_adaptation": "cpu",
    "07_search_and_detection": "cpu",
    "08_results_dashboard": "cpu",
}
DOCS = ROOT / "docs" / "notebooks"
FIGURES = ROOT / "docs" / "figures"


LINK = re.compile(r"(\]\(|src=\"|href=\")([^)\"\s]+)")


def relink(markdown: str) -> str:
    """Rewrite the relative links of a source notebook's markdown (relative to notebooks/) so that they
    work from docs/notebooks/: another course notebook points at its executed copy beside it, anything
    else at the same file in the checkout."""
    def fix(match):
        link = match.group(2)
        if "://" in link or link.startswith(("#", "mailto:")):
            return match.group(0)
        path, _, anchor = link.partition("#")
        target = (ROOT / "notebooks" / path).resolve()
        if target.parent == ROOT / "notebooks" and target.stem in DOCS_PROFILES:
            new = target.name
        else:
            new = os.path.relpath(target, DOCS)
        return match.group(1) + new + (f"#{anchor}" if anchor else "")
    return LINK.sub(fix, markdown)


def build(name: str, profile: str) -> tuple[Path, list[Path], float]:
    """Execute one notebook into docs/notebooks; returns (its copy, the figures copied, seconds)."""
    import papermill

    source = ROOT / "notebooks" / f"{name}.ipynb"
    with tempfile.TemporaryDirectory(prefix=f"minirl-docs-{name}-") as scratch:
        scratch = Path(scratch)
        env = {FIGURES_VARIABLE: str(scratch / "figures"), OUTCOMES_VARIABLE: str(scratch / "outcomes")}
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        start = time.time()
        try:
            papermill.execute_notebook(str(source), str(scratch / source.name), parameters={"profile": profile},
                                       kernel_name="python3", cwd=str(scratch), progress_bar=False)
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        seconds = time.time() - start
        executed = json.loads((scratch / source.name).read_text())
        for cell in executed["cells"]:                       # papermill's timings would make every build a diff
            cell.get("metadata", {}).pop("papermill", None)
            cell.get("metadata", {}).pop("execution", None)
        executed["metadata"].pop("papermill", None)
        for cell in executed["cells"]:                       # links written for notebooks/, read from docs/notebooks/
            if cell["cell_type"] == "markdown":
                cell["source"] = relink("".join(cell["source"]))
        executed["metadata"]["minirl"] = {"source_sha256": source_hash(json.loads(source.read_text())["cells"]),
                                          "profile": profile, "seconds": round(seconds),
                                          "made_by": "python notebooks/build_docs.py"}
        DOCS.mkdir(parents=True, exist_ok=True)
        target = write_atomic(DOCS / source.name, json.dumps(executed, indent=1, ensure_ascii=False) + "\n")
        FIGURES.mkdir(parents=True, exist_ok=True)
        copied = [write_atomic(FIGURES / figure.name, figure.read_bytes())
                  for figure in sorted((scratch / "figures").glob("*.png"))]
    return target, copied, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help=f"names (default: all): {', '.join(DOCS_PROFILES)}")
    parser.add_argument("--profile", help="run every chosen notebook in this profile instead of its DOCS_PROFILES one")
    args = parser.parse_args(argv)
    unknown = [n for n in args.notebooks if n not in DOCS_PROFILES]
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}; choose from: {', '.join(DOCS_PROFILES)}")
    for name in args.notebooks or DOCS_PROFILES:
        target, figures, seconds = build(name, args.profile or DOCS_PROFILES[name])
        print(f"{target.relative_to(ROOT)}: {seconds:.0f} s; figures: "
              + (", ".join(f.name for f in figures) or "none saved"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
