"""A copy of the package's sources, for the tests that install minirl into an environment of their own
(tests/test_installed_course.py, tests/test_verl_env.py): building from a copy writes nothing into the
checkout."""
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_sources(folder: Path) -> Path:
    """pyproject.toml, README.md and minirl/ copied into `folder` (created), without bytecode."""
    folder.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "minirl", folder / "minirl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return folder
