"""Every reference in the repository points at something a user can open: a paper (title, arXiv id),
an official repository, or a file of minirl. The developers' private reference sheet, its numbered
entries and its folder outside the repository are not such things, so no tracked file may name them.
And every relative link of the documentation (every markdown file, and the markdown cells of the source
notebooks) leads to a file or folder that is in the repository, and to a heading that exists where it
names one in a markdown file.
"""
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

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


# ------------------------------------------------------------------------------------------ relative links

CODE_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)[^`].*?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_LINK = re.compile(r"\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def link_targets(markdown: str) -> list[str]:
    """Every link target of `markdown` (inline, reference-style, HTML href/src), outside code."""
    text = CODE_SPAN.sub(" ", CODE_FENCE.sub(" ", markdown))
    targets = [m.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK) for m in pattern.finditer(text)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in targets]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for the headings of `markdown` (lower case, punctuation dropped, spaces
    to hyphens, -1, -2 for repeats), and the explicit ones (`<a id="...">`, `<a name="...">`)."""
    text = CODE_FENCE.sub(" ", markdown)
    anchors, seen = set(), {}
    for heading in re.findall(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        heading = re.sub(r"<[^>]+>", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading))
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    anchors.update(re.findall(r"<a\s+(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", text, re.IGNORECASE))
    return anchors


def broken_links(markdown: str, folder: Path, in_repository, own_anchors: set[str] | None = None) -> list[str]:
    """The relative link targets of `markdown`, read from `folder`, that lead nowhere in the repository
    ("target (why)"). An anchor into a markdown file must name one of its headings; an anchor alone is
    checked against `own_anchors` when given. Web addresses and other schemes are not followed."""
    broken = []
    for target in link_targets(markdown):
        if SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, anchor = target.partition("#")
        anchor = unquote(anchor).lower()
        if not path_part:
            if anchor and own_anchors is not None and anchor not in own_anchors:
                broken.append(f"{target} (no heading or anchor #{anchor} on this page)")
            continue
        path = (folder / unquote(path_part.split("?")[0])).resolve()
        if not in_repository(path):
            broken.append(f"{target} (no such file or folder in the repository)")
        elif anchor and path.suffix == ".md" and path.is_file() \
                and anchor not in github_anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading or anchor #{anchor} in {path.name})")
    return broken


def repository_paths() -> tuple[set[Path], set[Path]]:
    """(files, folders) that are in the repository: tracked, or new and not ignored by git."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the links are checked in the repository")
    files = {(ROOT / name).resolve() for name in listed.decode().split("\0") if name and (ROOT / name).exists()}
    folders = {parent for path in files for parent in path.parents if ROOT in parent.parents or parent == ROOT}
    return files, folders


def documentation() -> list[tuple[str, str, Path]]:
    """(name, markdown, folder its links are read from) of every markdown file of the repository and of
    every markdown cell of the source notebooks."""
    files, _ = repository_paths()
    pages = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"), p.parent) for p in sorted(files)
             if p.suffix == ".md"]
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb")):
        for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                pages.append((f"{notebook.relative_to(ROOT)} cell {index}", source, notebook.parent))
    return pages


def test_link_targets_are_found_outside_code_and_web_links_are_not_followed(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "glossary.md").write_text("# Glossary\n\n## Entropy (token)\n<a id=\"grpo\"></a>**GRPO**\n")
    markdown = ("[a](docs/glossary.md#grpo) [b](docs/glossary.md#entropy-token) ![c](docs/missing.png)\n"
                "[d](docs/glossary.md#nothing) [e](https://example.org/x.md) `[f](nowhere.md)`\n"
                "```\n[g](nowhere.md)\n```\n<img src=\"docs/gone.png\"> [i](#top) [j](#bottom)\n[h]: <docs/>\n")
    inside = lambda path: path.exists()                                            # noqa: E731
    assert broken_links(markdown, tmp_path, inside, own_anchors={"top"}) == [
        "docs/missing.png (no such file or folder in the repository)",
        "docs/glossary.md#nothing (no heading or anchor #nothing in glossary.md)",
        "#bottom (no heading or anchor #bottom on this page)",
        "docs/gone.png (no such file or folder in the repository)"]


def test_every_relative_link_of_the_documentation_resolves_in_the_repository():
    files, folders = repository_paths()
    in_repository = lambda path: path in files or path in folders                 # noqa: E731
    pages = documentation()
    assert any(name == "README.md" for name, _, _ in pages)
    found = [f"{name}: {problem}" for name, markdown, folder in pages
             for problem in broken_links(markdown, folder, in_repository,
                                         github_anchors(markdown) if name.endswith(".md") else None)]
    assert not found, ("these links lead to nothing in the repository (a file that was moved, renamed, "
                       "deleted or is ignored by git, or a heading that changed): fix the link or the target\n"
                       + "\n".join(found))
