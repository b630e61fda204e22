"""Write the course's GitHub repository (pyproject.toml's [project.urls] Repository) into every
notebook's Colab badge and install cell and into the READMEs, after the repository has moved.

    # 1. edit pyproject.toml:  Repository = "https://github.com/OWNER/NAME"
    python notebooks/sync_repository.py          # 2. rewrite the badges, install cells and docs

tests/test_course.py fails while any of them still names another repository.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r'^Repository\s*=\s*"https://github\.com/([\w.-]+/[\w.-]+?)/?"', re.M)
# where a slug appears: the Colab badge, GitHub links, nbviewer, and the install cell's REPO line
PATTERNS = (re.compile(r"(colab\.research\.google\.com/github/)([\w.-]+/[\w.-]+)(/blob/)"),
            re.compile(r"(nbviewer\.org/github/)([\w.-]+/[\w.-]+)(/blob/)"),
            re.compile(r"(git\+https://github\.com/)([\w.-]+/[\w.-]+?)(\.git)?(?=[\s\"'`)@]|$)"),
            re.compile(r'(REPO = \\?")([\w.-]+/[\w.-]+)(\\?")'))


def repository(root: Path = ROOT) -> str:
    """OWNER/NAME from pyproject.toml."""
    match = URL.search((root / "pyproject.toml").read_text())
    if not match:
        raise SystemExit("pyproject.toml has no [project.urls] line Repository = \"https://github.com/OWNER/NAME\"")
    return match.group(1)


def files(root: Path = ROOT) -> list[Path]:
    """Every file that names the repository."""
    return (sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")) + [root / "README.md", root / "notebooks" / "README.md"]
            + sorted((root / "docs").rglob("*.md")) + sorted((root / "docs").rglob("*.ipynb")))


def slugs(text: str) -> set[str]:
    """Every repository slug the text names."""
    return {m.group(2) for pattern in PATTERNS for m in pattern.finditer(text)}


def rewrite(text: str, slug: str) -> str:
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + slug + "".join(g or "" for g in m.groups()[2:]), text)
    return text


if __name__ == "__main__":
    slug = repository()
    for path in files():
        if path.exists():
            text = path.read_text()
            new = rewrite(text, slug)
            if new != text:
                path.write_text(new)
                print(f"rewrote {path.relative_to(ROOT)}")
    print(f"every badge, install cell and link names {slug}")
    sys.exit(0)
