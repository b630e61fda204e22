"""The course notebooks follow notebooks/README.md and are committed clean; the theory notebook
passes nbval; the notebooks that train also run their gpu code path on a CPU, with the tiny
model standing in for Qwen. (Every notebook's run in the fast profile, from an installed wheel
outside the checkout, and the story it tells: tests/test_installed_course.py.)"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPOSITORY = re.search(r'^Repository = "https://github\.com/(.+?)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
BADGE = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{{}}"
PROFILE_LINE = re.compile(r'^profile = os\.environ\.get\("MINIRL_PROFILE", "cpu"\)', re.M)
INSTALL = 'f"minirl[gpu] @ git+https://github.com/{REPO}"'
# the notebooks that RL-train a policy and have a gpu branch for real Qwen models (05 and 06 train toy
# models of their own on the CPU in every profile; 08 reads results)
TRAINING_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem in ("00_quickstart", "02_entropy_collapse", "03_loss_interventions",
                                                         "04_branching_rollouts", "04_rewards_and_advantages",
                                                         "07_search_and_detection")]


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


def test_theory_notebook_passes_nbval(tmp_path):
    pytest.importorskip("nbval")
    notebook = ROOT / "notebooks" / "01_entropy_covariance_theory.ipynb"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         str(notebook)],
        cwd=tmp_path, env={**_kernel_env(), "MINIRL_PROFILE": "smoke", "MINIRL_FIGURES": str(tmp_path / "figures"),
                           "MINIRL_OUTCOMES": str(tmp_path / "outcomes")},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", result.stdout) and "failed" not in result.stdout


def _first_code_cell(path):
    return next("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")


def test_every_notebook_starts_with_the_same_colab_cell():
    sources = {path.name: _first_code_cell(path) for path in NOTEBOOKS}
    assert len(set(sources.values())) == 1, f"first code cells differ: {sorted(sources)}"
    cell = next(iter(sources.values()))
    assert 'if "google.colab" in sys.modules:' in cell and INSTALL in cell and f'REPO = "{REPOSITORY}"' in cell
    assert "raise SystemExit(" in cell                                   # a failed install: one line, no traceback wall
    assert 'os.environ.setdefault("MINIRL_PROFILE", "gpu")' in cell


@pytest.mark.parametrize("path", TRAINING_NOTEBOOKS, ids=lambda p: p.stem)
def test_training_notebooks_take_model_task_and_steps_parameters(path):
    tagged = next(c for c in _cells(path) if "parameters" in c["metadata"].get("tags", []))
    namespace = {}
    exec("".join(tagged["source"]), namespace)                 # plain assignments that papermill can override
    assert {k: namespace[k] for k in ("model", "task", "steps")} == {"model": None, "task": None, "steps": None}


@pytest.mark.parametrize("gpu, preset, expected", [(True, None, "gpu"), (True, "smoke", "smoke"), (False, None, None)],
                         ids=["gpu-found", "gpu-but-profile-chosen", "no-gpu"])
def test_first_cell_defaults_to_the_gpu_profile_only_on_a_gpu(gpu, preset, expected, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30))
    monkeypatch.setenv("MINIRL_PROFILE", "placeholder")             # so that monkeypatch restores the variable
    if preset is None:
        monkeypatch.delenv("MINIRL_PROFILE")
    else:
        monkeypatch.setenv("MINIRL_PROFILE", preset)
    exec(_first_code_cell(NOTEBOOKS[0]), {})                          # not on Colab: no install
    assert os.environ.get("MINIRL_PROFILE") == expected
    printed = capsys.readouterr().out
    if gpu:
        assert "Tesla T4, 15.0 GiB" in printed and "gpu profile" in printed
        assert ("MINIRL_PROFILE='smoke' chooses the profile instead" in printed) == (preset == "smoke")
    else:
        assert "No CUDA GPU" in printed and "cpu profile" in printed


GPU_BRANCH_OUTPUT = {  # what each notebook prints only on its branch for real models (hf backend)
    "00_quickstart": "FIRST SAMPLE",
    "02_entropy_collapse": "forks (H ≥ 1 nat) marked",
    "03_loss_interventions": "clip_cov 0.2%        method=clip_cov",
    "04_branching_rollouts": "method=cure         settings={'critical_min_chars': '2'}",
    "04_rewards_and_advantages": "method=entropy_adv  settings=official defaults",
    "07_search_and_detection": "hf backend: the second pass uses mode=",
}
MULTI_RUN_NOTEBOOKS = {"03_loss_interventions": 4, "04_branching_rollouts": 2,  # runs of their gpu profile
                       "04_rewards_and_advantages": 3}


@pytest.mark.parametrize("path", TRAINING_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_its_gpu_code_path_on_a_cpu(path, tmp_path, monkeypatch):
    """profile="gpu" takes the hf backend (4-bit NF4 + LoRA through minirl.hf) and the notebooks'
    branches for real models; the tiny model saved to a folder stands in for Qwen2.5-0.5B-Instruct,
    countdown for GSM8K, and 2 steps for the profile's budget, so that it runs in seconds offline."""
    papermill = pytest.importorskip("papermill")
    pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    model = tmp_path / "qwen-stand-in"
    shutil.copytree(ROOT / "minirl" / "assets" / "warmstart" / "countdown-smoke", model)
    for key in ("PYTHONPATH", "OMP_NUM_THREADS"):
        monkeypatch.setenv(key, _kernel_env()[key])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters={"profile": "gpu", "model": str(model),
                                                                "task": "countdown", "steps": 2},
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    outputs = [o for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "profile 'gpu'" in text and GPU_BRANCH_OUTPUT[path.stem] in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was shown"
    runs = sorted((tmp_path / "runs").rglob("metrics.jsonl"))
    assert len(runs) == MULTI_RUN_NOTEBOOKS.get(path.stem, 1)
    for metrics in runs:  # every run: 2 steps on the hf backend from the stand-in; its checkpoint is the adapter
        assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [0, 1, 2]
        state = torch.load(metrics.parent / "checkpoint.pt", weights_only=False, map_location="cpu")
        assert (state["config"]["backend"], state["config"]["init"], state["config"]["task"]) == (
            "hf", str(model), "countdown")
        assert "adapter" in state and "model" not in state
