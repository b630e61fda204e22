"""docs/your_own_task.md and the README's section "Your own task, your own method", run as written.

Every fenced block of the page runs in order in an empty folder: a block whose first line is a
comment naming a file (`# mypkg/tasks.py`, `# multiples.yaml`) is written there, each line of a
bash block is a `python -m minirl` command (run in this process, exit code 0), a python block is
executed like a notebook cell, and a text block holding `minirl: error: ...` is the one line that
the command it describes prints. Only the sizes shrink (the smoke profile's batch and evaluation,
the warm start's steps), so that the whole page runs in about a minute; the grid's cells run in
kernels of their own, at the sizes the page's grid file gives.
"""
import dataclasses
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from minirl import profiles
from minirl.cli import main
from minirl.methods import METHODS
from minirl.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "your_own_task.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
FILE_HEADER = re.compile(r"# ([\w./-]+\.(?:py|yaml))\n")


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Your own task, your own method")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """An empty working folder importable as the user's, tiny sizes, and the registries as they were."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    small = dataclasses.replace(profiles.PROFILES["smoke"], warmstart=dict(steps=20, lr=3e-3, batch_size=16),
                                train=dict(prompts_per_step=4, group_size=4, lr=3e-4, eval_prompts=8, eval_samples=4,
                                           eval_k=2, eval_every=10))
    monkeypatch.setitem(profiles.PROFILES, "smoke", small)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))      # `reproduce` adds this folder to it
    methods, tasks = dict(METHODS), dict(TASKS)
    yield tmp_path
    METHODS.clear(), METHODS.update(methods)
    TASKS.clear(), TASKS.update(tasks)
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def run_block(language: str, code: str, capsys, printed: list | None = None) -> None:
    """Run one block of the page; what the commands printed before a text block is kept in `printed`."""
    header = FILE_HEADER.match(code)
    if header:                                                   # a file the page tells the user to write
        path = Path(header.group(1))
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch() if path.parent != Path(".") else None
        path.write_text(code)
    elif language == "bash":
        for line in code.strip().splitlines():
            argv = shlex.split(line)
            assert argv[:3] == ["python", "-m", "minirl"], line
            assert main(argv[3:]) == 0, (line, capsys.readouterr().err)
    elif language == "python":
        exec(compile(code, "<docs block>", "exec"), {"__name__": "__docs__"})
    elif language == "text":
        error = code.strip()
        task = re.match(r"minirl: error: task '([^']+)'", error).group(1)
        (printed if printed is not None else []).append(capsys.readouterr().out)
        assert main(["train", "--task", task, "--out", "unused"]) == 2
        assert capsys.readouterr().err.strip() == error
    else:
        raise AssertionError(f"a {language} block the test does not know how to run:\n{code}")


def test_the_page_runs_as_written(user_folder, capsys):
    printed = []
    for language, code in blocks(PAGE.read_text()):
        run_block(language, code, capsys, printed)
    assert (user_folder / "warmstarts" / "mypkg.tasks.my_task-smoke" / "config.json").exists()
    assert (user_folder / "warmstarts" / "multiples-smoke" / "config.json").exists()       # the notebook's
    out = "".join(printed) + capsys.readouterr().out
    assert "positive_weight" in out and "GRPO with the advantages above zero" in out      # methods --import
    for run in ("runs/multiples-grpo", "runs/multiples-pw", "runs/notebook-grpo", "runs/notebook-positive_weight"):
        assert (user_folder / run / "metrics.jsonl").exists(), run
    import json
    saved = json.loads((user_folder / "runs/multiples-pw/config.json").read_text())
    assert saved["task"] == "mypkg.tasks:my_task" and saved["method"] == "mypkg.methods:positive_weight_loss"
    assert saved["method_settings"] == {"positive_weight": "0.25"}
    cells = sorted(p.parent.name for p in (user_folder / "results" / "multiples").glob("00_quickstart/smoke/*/seed0/done.json"))
    assert len(cells) == 2, cells
    assert (user_folder / "results" / "multiples" / "report.md").exists()


def test_the_readme_section_runs_as_written(user_folder, capsys):
    for language, code in blocks(PAGE.read_text()):               # the module files the section points to
        if FILE_HEADER.match(code) and code.startswith("# mypkg/"):
            run_block(language, code, capsys)
    section = blocks(readme_section())
    assert section, "the README's section holds no code block"
    for language, code in section:
        run_block(language, code, capsys)


def test_a_bad_module_path_names_module_attribute_and_form(user_folder, capsys):
    (user_folder / "mine.py").write_text("value = 3\n\ndef needs_an_argument(x):\n    return x\n")
    for task, expected in [
        ("mine:nothing", "task 'mine:nothing': module 'mine' has no attribute 'nothing'; it defines: "
                         "needs_an_argument, value"),
        ("mine:value", "task 'mine:value' is of type int; give a Task or a function of no arguments that returns one"),
        ("mine:needs_an_argument", "task 'mine:needs_an_argument' is a function of (x); give a Task"),
        ("nowhere.tasks:t", "no module named 'nowhere.tasks': put nowhere/tasks.py in the current folder or on "
                            "PYTHONPATH (an address is written 'package.module:attribute', e.g. 'mypkg.tasks:my_task')"),
        ("mine:", "task 'mine:' is not a module path; write it as 'package.module:attribute'"),
    ]:
        assert main(["train", "--task", task, "--out", "unused"]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    (user_folder / "mine_methods.py").write_text(
        "from minirl.methods import METHODS, register_method\n\n"
        "@register_method('mine_grpo', summary='grpo again')\n"
        "def loss(*args):\n    return METHODS['grpo'].policy_loss(*args)\n")
    from minirl.methods import get_method
    assert get_method("mine_methods:loss") is get_method("mine_methods:mine_grpo") is METHODS["mine_grpo"]
    assert main(["train", "--method", "mine:needs_an_argument", "--out", "unused"]) == 2
    assert "is not a registered method: decorate needs_an_argument with @minirl.methods.register_method" in \
        capsys.readouterr().err
    assert main(["methods", "--import", "nowhere"]) == 2
    assert "--import: no module named 'nowhere'" in capsys.readouterr().err
