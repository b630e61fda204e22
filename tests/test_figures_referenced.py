"""Every image under docs/ is shown somewhere and can be made again: it is referenced from README.md,
notebooks/README.md, a docs/ page or an executed notebook (which saves it), and a command makes it,
either a notebook's `save_figure` call (re-made by `python notebooks/build_docs.py`) or one of the
commands listed here, which the README names. A figure nothing references is stale: delete it."""
import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg"}

# Figures under docs/ that no notebook saves, with the command (as the README gives it) that makes them.
MADE_BY_COMMAND = {
    "figures/demo_cpu.png":
        "python -m minirl plot runs/demo/grpo runs/demo/grpo-clip-higher --out docs/figures/demo_cpu.png",
    "figures/00_quickstart__profile_smoke_curves.png":
        "python -m minirl report results/cpu_all_methods --copy-figures-to docs/figures",
    "figures/00_quickstart__profile_smoke_entropy_reward.png":
        "python -m minirl report results/cpu_all_methods --copy-figures-to docs/figures",
}


def images() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def saved_by(notebooks) -> set[str]:
    """The file names (NAME.png) that the code cells of `notebooks` save: the name given to each
    `save_figure(figure, "NAME")` call, read from the cell's syntax tree (IPython magics left out)."""
    names = set()
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            code = "\n".join(line for line in "".join(cell["source"]).splitlines()
                             if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(code)):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "save_figure"
                        and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
                    names.add(f"{node.args[1].value}.png")
    return names


def pages() -> str:
    texts = [ROOT / "README.md", ROOT / "notebooks" / "README.md", *sorted(DOCS.rglob("*.md"))]
    return "\n".join(p.read_text() for p in texts if p.exists())


def test_the_saved_figure_pattern_reads_the_notebooks():
    """Guard of the guard: the notebooks' save_figure calls are found (a pattern that finds nothing
    would pass every figure off as unmade)."""
    assert {"02_entropy_law.png", "03_methods_curves.png", "03_aepo_controller.png"} <= saved_by(sorted((ROOT / "notebooks").glob("*.ipynb")))


@pytest.mark.parametrize("image", images(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_image_under_docs_is_referenced(image):
    executed = saved_by(sorted((DOCS / "notebooks").glob("*.ipynb")))
    relative = image.relative_to(DOCS).as_posix()
    assert image.name in pages() or image.name in executed, (
        f"docs/{relative} is shown nowhere: no README or docs page links it and no executed notebook saves it. "
        "Delete it if it is stale, or link it where it belongs.")


@pytest.mark.parametrize("image", images(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_image_under_docs_is_made_by_a_command(image):
    relative = image.relative_to(DOCS).as_posix()
    if relative in MADE_BY_COMMAND:
        command = MADE_BY_COMMAND[relative]
        assert command in (ROOT / "README.md").read_text(), f"the README does not name {command!r}, which makes it"
        return
    assert image.name in saved_by(sorted((ROOT / "notebooks").glob("*.ipynb"))), (
        f"docs/{relative} is made by no command: no source notebook saves it (save_figure) and "
        "tests/test_figures_referenced.py lists no command for it")


def test_every_listed_figure_exists():
    missing = [name for name in MADE_BY_COMMAND if not (DOCS / name).exists()]
    assert not missing, f"MADE_BY_COMMAND lists figures that are not under docs/: {missing}"
