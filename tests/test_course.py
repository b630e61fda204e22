"""The course opens anywhere: one repository slug, fp16 on GPUs without native bf16, widgets
under ipywidgets 7 and 8 (and Colab's manager switched on), notebooks found outside a checkout,
and figures and outcomes written under the working folder."""
import importlib.util
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

from minirl import course, grid, widgets
from minirl.hf import compute_dtype

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _sync():
    spec = importlib.util.spec_from_file_location("sync_repository", ROOT / "notebooks" / "sync_repository.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_badge_install_cell_and_link_names_the_repository_of_pyproject():
    sync = _sync()
    slug = sync.repository()
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", slug)
    named = {path.relative_to(ROOT): sync.slugs(path.read_text()) for path in sync.files() if path.exists()}
    for path in NOTEBOOKS:
        assert named[path.relative_to(ROOT)] == {slug}, f"{path.name} names {named[path.relative_to(ROOT)]}"
    wrong = {str(p): s - {slug} for p, s in named.items() if s - {slug}}
    assert not wrong, f"these name another repository than pyproject's {slug}: {wrong}"


def test_sync_rewrites_every_place_a_slug_stands(tmp_path):
    sync = _sync()
    text = ('[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]'
            '(https://colab.research.google.com/github/old/repo/blob/main/notebooks/00_quickstart.ipynb)\n'
            'REPO = "old/repo"  # comment\n"REPO = \\"old/repo\\"\\n"\n'
            'pip install "minirl[gpu] @ git+https://github.com/old/repo"\n'
            'https://nbviewer.org/github/old/repo/blob/main/docs/notebooks/00_quickstart.ipynb\n')
    assert sync.slugs(text) == {"old/repo"}
    new = sync.rewrite(text, "new-owner/minirl")
    assert sync.slugs(new) == {"new-owner/minirl"} and new.count("new-owner/minirl") == 5


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16), ((7, 0), torch.float16)],
                         ids=["T4", "A100", "H100", "V100"])
def test_half_precision_follows_the_compute_capability_not_emulation(capability, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)     # what a T4 says (emulation)
    assert compute_dtype("cuda") == expected
    assert compute_dtype(torch.device("cuda", 0)) == expected
    assert compute_dtype("cpu") == torch.float32


def test_no_notebook_hard_codes_a_dtype():
    for path in NOTEBOOKS:
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert not re.search(r"torch\.(bfloat16|float16|half)\b|dtype=\"(bf16|fp16)\"", code), path.name


def test_widget_bundle_under_ipywidgets_8_and_7():
    ipywidgets = pytest.importorskip("ipywidgets")
    slider = ipywidgets.IntSlider(value=3)
    bundle = widgets.widget_bundle(slider)                               # the installed version
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == slider.model_id and view["version_major"] == 2

    class Version7Widget:                                                # ipywidgets 7: no _repr_mimebundle_
        model_id = "abc123"

        def __repr__(self):
            return "VBox(children=())"
    old = widgets.widget_bundle(Version7Widget())
    assert old == {"text/plain": "VBox(children=())",
                   "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                                "model_id": "abc123"}}


def test_colab_widget_manager_is_switched_on_only_on_colab(monkeypatch):
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append(1))
    colab = types.ModuleType("google.colab")
    colab.output = output
    assert widgets.enable_colab_widgets(modules={}) is False and calls == []
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    assert widgets.enable_colab_widgets() is True and calls == [1]
    assert widgets._ipywidgets() is not None and calls == [1, 1]          # every widget asks first


def test_notebooks_are_found_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "CHECKOUT", tmp_path / "site-packages")     # as when minirl is installed from a wheel
    monkeypatch.chdir(tmp_path)
    with pytest.raises(grid.GridError, match="not in the installed package.*notebooks/ folder"):
        grid.find_notebook("00_quickstart")
    shutil.copytree(ROOT / "notebooks", tmp_path / "course")
    monkeypatch.chdir(tmp_path / "course")                                # a copy of notebooks/, as in a workshop
    assert grid.find_notebook("00_quickstart") == (tmp_path / "course" / "00_quickstart.ipynb").resolve()
    with pytest.raises(grid.GridError, match=r"unknown notebook 'nope'; choose one of: 00_quickstart, 01_"):
        grid.find_notebook("nope")
    monkeypatch.chdir(tmp_path)                                           # the folder above: ./notebooks
    (tmp_path / "course").rename(tmp_path / "notebooks")
    assert grid.find_notebook("08_results_dashboard.ipynb").parent == (tmp_path / "notebooks").resolve()


def test_figures_and_outcomes_go_under_the_working_folder(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(course.FIGURES_VARIABLE, raising=False)
    monkeypatch.delenv(course.OUTCOMES_VARIABLE, raising=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = course.save_figure(fig, "00_test")
    plt.close(fig)
    assert path == Path("figures") / "00_test.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["00_test.png"]   # no partial file left
    with pytest.raises(ValueError, match="plain file name"):
        course.save_figure(fig, "../docs/figures/x")
    course.record_outcomes("00_test", entropy_first=0.5)
    course.record_outcomes("00_test", entropy_last=0.2)
    assert course.read_outcomes("00_test") == {"entropy_first": 0.5, "entropy_last": 0.2}
    monkeypatch.setenv(course.FIGURES_VARIABLE, str(tmp_path / "elsewhere"))
    assert course.figures_dir() == tmp_path / "elsewhere"


def _colab_cell():
    return next("".join(c["source"]) for c in json.loads(NOTEBOOKS[0].read_text())["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("returncode", [0, 1], ids=["install-works", "install-fails"])
def test_colab_cell_installs_from_the_repository_or_says_why_not_in_one_line(returncode, monkeypatch, capsys):
    import subprocess

    slug = _sync().repository()
    calls = []

    def pip(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, stdout="",
                                           stderr="Cloning ...\nERROR: Repository not found." if returncode else "")
    monkeypatch.setattr(subprocess, "run", pip)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("MINIRL_PROFILE", "smoke")
    if returncode:
        with pytest.raises(SystemExit) as stop:
            exec(_colab_cell(), {})
        message = str(stop.value)
        assert "\n" not in message and f"https://github.com/{slug}" in message
        assert "ERROR: Repository not found." in message and "set REPO in this cell" in message
    else:
        exec(_colab_cell(), {})
        assert "No CUDA GPU" in capsys.readouterr().out or torch.cuda.is_available()
    assert calls[0][-1] == f"minirl[gpu] @ git+https://github.com/{slug}"


def test_the_time_tables_quote_the_recorded_times():
    """The notebook times in README.md, notebooks/README.md and docs/workshop.md are the ones
    notebooks/time_course.py recorded (smoke) and the executed copies record (cpu)."""
    sys.path.insert(0, str(ROOT / "notebooks"))
    import time_course

    assert time_course.TIMINGS.exists(), "no recorded times: run `python notebooks/time_course.py`"
    times = time_course.recorded_times()
    assert all({"smoke", "cpu"} <= set(times[name]) for name in time_course.NOTEBOOKS), times
    for path in time_course.TABLES:
        text = path.read_text()
        assert time_course.rewrite_table(text, times) == text, \
            f"{path.relative_to(ROOT)} quotes other times: run `python notebooks/time_course.py --tables`"
