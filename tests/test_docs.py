"""The executed copies under docs/notebooks are made from the current source notebooks (by
`python notebooks/build_docs.py`), show their figures, hold no errors, and the README links them."""
import json
import sys
from pathlib import Path

import pytest

from minirl.course import source_hash

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))
from build_docs import DOCS, LINK, relink  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIX = "run `python notebooks/build_docs.py {}` and commit docs/ with the notebook"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_copy_is_made_from_the_current_source(source):
    copy = ROOT / "docs" / "notebooks" / source.name
    assert copy.exists(), f"no executed copy of {source.name}: " + FIX.format(source.stem)
    executed = json.loads(copy.read_text())
    cells = json.loads(source.read_text())["cells"]
    recorded = executed["metadata"].get("minirl", {})
    assert recorded.get("source_sha256") == source_hash(cells), f"{copy.name} is stale: " + FIX.format(source.stem)
    relinked = [{**c, "source": relink("".join(c["source"]))} if c["cell_type"] == "markdown" else c for c in cells]
    assert source_hash(executed["cells"]) == source_hash(relinked)       # the cells themselves, not only the record
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], f"{copy.name} holds an error"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{copy.name} shows no figure"


def test_readme_links_every_executed_copy():
    readme = (ROOT / "README.md").read_text()
    for source in NOTEBOOKS:
        assert f"docs/notebooks/{source.name}" in readme, f"README does not link docs/notebooks/{source.name}"


def test_every_figure_the_readme_shows_exists():
    import re

    readme = (ROOT / "README.md").read_text()
    for path in re.findall(r"\]\((docs/figures/[^)\s]+\.png)\)", readme):
        assert (ROOT / path).exists(), f"README shows {path}, which does not exist"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_copys_links_resolve_from_docs(source):
    copy = DOCS / source.name
    if not copy.exists():
        pytest.skip(f"no executed copy of {source.name} yet")
    for cell in json.loads(copy.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for _, link in LINK.findall("".join(cell["source"])):
                if "://" not in link and not link.startswith(("#", "mailto:")):
                    assert (DOCS / link.partition("#")[0]).exists(), f"{copy.name}: {link} leads nowhere"
