"""Every reference in the repository points at something a user can open: a paper (title, arXiv id),
an official repository, or a file of minirl. The developers' private reference sheet, its numbered
entries and its folder outside the repository are not such things, so no tracked file may name them.
"""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Nothing is excluded: the notebooks cite the papers too. (A folder may be listed here while it is
# being converted; the test then guards the rest.)
EXCLUDED_FOR_NOW: tuple[str, ...] = ()

# Written so that this file does not match itself.
PRIVATE_REFERENCE = re.compile(r"\bcards? [0-9]|\.\./shared|method\s+notes", re.IGNORECASE)


def private_references(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line of `text` that cites the private reference sheet."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if PRIVATE_REFERENCE.search(line)]


def tracked_text_files() -> list[Path]:
    """The tracked files outside EXCLUDED_FOR_NOW that exist and are text (no NUL byte)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the references are checked in the repository")
    files = []
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if name and not name.startswith(EXCLUDED_FOR_NOW) and path.is_file() and b"\0" not in path.read_bytes():
            files.append(path)
    return files


@pytest.mark.parametrize("text, lines", [
    ("see " + "card" + " 1.2 for the derivation", [1]),
    ("first line\n(" + "Cards" + " 20a, 20b)", [2]),
    ("read .." + "/shared/reference/methods.md", [1]),
    ("as the " + "Method" + " notes say", [1]),
    ("the Clip-Cov paper (arXiv 2505.22617), discard 5 tokens, scorecard 2", []),
])
def test_the_pattern_finds_private_references_and_nothing_else(text, lines):
    assert [n for n, _ in private_references(text)] == lines


def test_no_tracked_file_cites_the_private_reference_sheet():
    files = tracked_text_files()
    assert any(f.suffix == ".py" for f in files)        # the listing worked: minirl's sources are in it
    found = [f"{path.relative_to(ROOT)}:{n}: {line}"
             for path in files for n, line in private_references(path.read_text(encoding="utf-8", errors="replace"))]
    assert not found, ("these lines cite the developers' private reference sheet, which users do not have; "
                       "cite the paper (title, arXiv id) or the official repository instead:\n" + "\n".join(found))
