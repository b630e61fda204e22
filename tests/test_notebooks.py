"""The course notebooks follow notebooks/README.md, are committed clean, and run top to bottom
in the smoke profile (under papermill, and the theory notebook under nbval)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BADGE = "https://colab.research.google.com/github/minirl-lab/minirl/blob/main/notebooks/{}"
PROFILE_LINE = re.compile(r'^profile = os\.environ\.get\("MINIRL_PROFILE", "cpu"\)', re.M)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _kernel_env():
    """Environment of the notebook kernels: minirl imports from this checkout even where it is
    not pip-installed, and torch runs on one thread unless OMP_NUM_THREADS says otherwise (on a
    shared 2-core machine, two spinning OpenMP threads made a smoke run 10-20 times slower)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def test_the_course_has_its_first_notebooks():
    assert [p.stem for p in NOTEBOOKS][:3] == ["00_quickstart", "01_entropy_covariance_theory",
                                               "02_entropy_collapse"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_title_badge_and_profile_parameter(path):
    cells = _cells(path)
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# ")
    assert BADGE.format(path.name) in first
    assert "What you will learn" in first and "Time" in first
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assert PROFILE_LINE.search("".join(tagged[0]["source"]))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(_cells(path))
             if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"] is not None)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; run python notebooks/clear_outputs.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(path, tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    for key in ("PYTHONPATH", "OMP_NUM_THREADS"):
        monkeypatch.setenv(key, _kernel_env()[key])
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters={"profile": "smoke"}, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False)           # raises on any cell error
    outputs = [o for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "profile 'smoke'" in text                                              # the parameter reached the sizes
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was shown"


def test_theory_notebook_passes_nbval(tmp_path):
    pytest.importorskip("nbval")
    notebook = ROOT / "notebooks" / "01_entropy_covariance_theory.ipynb"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         str(notebook)],
        cwd=tmp_path, env={**_kernel_env(), "MINIRL_PROFILE": "smoke"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", result.stdout) and "failed" not in result.stdout
