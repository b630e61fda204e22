"""The course's exercises: every notebook from 01 has some, each check refuses the listed mistakes and
accepts the notebook's own solution, and the students' copies hold no solution code."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
sys.path.insert(0, str(ROOT / "notebooks"))
import student_copies  # noqa: E402

MINIMUM = {"00": 1, "01": 3}  # every other notebook: at least two exercises
PRELUDE = "import math\nimport numpy as np\nimport torch\n"


def tagged(nb, tag):
    return [(i, cell) for i, cell in enumerate(nb.cells) if tag in cell.metadata.get("tags", [])]


def exercises(path):
    """(solution cell, the checker function, the answer's name) for each exercise of a notebook."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in tagged(nb, "solution"):
        check = nb.cells[index + 1]
        assert "check" in check.metadata.get("tags", []), f"{path.name}: cell {index + 1} after a solution is not a check"
        call = next(node for node in ast.walk(ast.parse(check.source))
                    if isinstance(node, ast.Call) and getattr(node.func, "id", "").startswith("check_"))
        module = importlib.import_module(f"minirl.exercises.notebook{path.name[:2]}")
        found.append((cell, getattr(module, call.func.id), call.args[0].id, module))
    return found


ALL = [(path, *exercise) for path in NOTEBOOKS for exercise in exercises(path)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_exercises(path):
    assert len(exercises(path)) >= MINIMUM.get(path.name[:2], 2)


@pytest.mark.parametrize("path,cell,check,name,module", ALL, ids=lambda v: getattr(v, "__name__", ""))
def test_the_notebooks_solution_passes_and_the_mistakes_fail(path, cell, check, name, module, capsys):
    scope = {}
    exec(PRELUDE + cell.source, scope)  # the solution cell alone, on numpy, torch and math
    assert check(scope[name]) is True
    mistakes = module.MISTAKES[check.__name__]
    assert mistakes, f"{check.__name__} lists no mistake to refuse"
    for wrong in mistakes:
        with pytest.raises(AssertionError):
            check(wrong)


@pytest.mark.parametrize("path,cell,check,name,module", ALL, ids=lambda v: getattr(v, "__name__", ""))
def test_the_students_blank_answer_is_reported_not_raised(path, cell, check, name, module, capsys):
    blank, _ = student_copies.split_solution(cell.source)
    scope = {}
    exec(PRELUDE + blank, scope)
    assert check(scope[name]) is False
    assert "not answered yet" in capsys.readouterr().out


def test_student_copies_hold_no_solution_code(tmp_path):
    assert student_copies.main(["--out", str(tmp_path)]) == 0
    solutions = (tmp_path / "solutions.md").read_text()
    for path in NOTEBOOKS:
        source = nbformat.read(path, as_version=4)
        copy = nbformat.read(tmp_path / path.name, as_version=4)
        assert len(copy.cells) == len(source.cells)
        text = "\n".join(cell.source for cell in copy.cells)
        assert student_copies.BEGIN not in text and student_copies.END not in text
        for _, cell in tagged(source, "solution"):
            _, solution = student_copies.split_solution(cell.source)
            for line in solution.splitlines():
                if line.strip() and not line.strip().startswith(("#", "return", ")", "]", "}")):
                    assert line not in text, f"{path.name}: solution line {line!r} in the student copy"
                assert line.strip() in solutions


def test_a_students_copy_runs_to_the_end_with_every_exercise_blank(tmp_path, monkeypatch):
    """'Run all' goes on past blank answers: the copy of notebook 01 (no training, seconds) runs to its
    last cell and every check says "not answered yet" instead of failing."""
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    name = "01_entropy_covariance_theory.ipynb"
    student_copies.main(["--out", str(tmp_path), str(ROOT / "notebooks" / name)])
    papermill.execute_notebook(str(tmp_path / name), str(tmp_path / "out.ipynb"), parameters={"profile": "smoke"},
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    text = (tmp_path / "out.ipynb").read_text()
    assert text.count("not answered yet") == len(exercises(ROOT / "notebooks" / name))
