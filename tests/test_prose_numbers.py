"""No stale numbers in the course's prose. A number that a run produces is printed by a code cell,
never typed into markdown, where it goes stale the next time the notebook runs. So every number in a
source notebook's markdown cells must either appear in an output of the notebook's executed copy
(docs/notebooks/, rebuilt from the sources by `python notebooks/build_docs.py`) or be a constant listed,
with its reason, in tests/prose_numbers_allowed.yaml (a default, a size, a paper's reported value with its
citation).

What is not a claim is not scanned: code spans and fenced code (names and examples), display equations
($$ ... $$), sub- and superscripts of inline math, link targets and HTML tags, the durations in the title
cell's **Time** paragraph and the machine they were measured on (wall times of the notebook itself, refreshed
with notebooks/README.md's table; the sizes beside them, such as "the 51 runs", are scanned), arXiv ids,
years, notebook numbers (01, 02, ...), and the numbers of sections, steps, exercises, parts, cells and
equations, headings and list items. A number joined to a word is part of a name (pass@8, Qwen2.5-0.5B,
top-20, k3, 4-bit, GSM8K) and is not scanned either.

A prose number matches an output number of the same value (0.54 and 0.540); a percentage also matches
the fraction a cell printed (54 % and 0.54). Nothing is rounded: a rounded outcome in prose is still an
outcome typed by hand.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
EXECUTED = ROOT / "docs" / "notebooks"
ALLOWED_FILE = ROOT / "tests" / "prose_numbers_allowed.yaml"
COMMON = "every_notebook"          # the allow-list's section for constants that any notebook may state

# A number: digits with optional thousands commas, decimals and exponent, not joined to a word on either
# side (pass@1, Qwen2, k3, 0.5B, 4-bit and top-20 are names), optionally followed by a percent sign.
NUMBER = re.compile(r"(?<![\w.@/\\#])(?<![^\W\d_]-)(\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-−]?\d+)?)(?:\s?(%))?"
                    r"(?![\w@]|-[^\W\d_]|\.\d)")
# "section 5", "sections 5 and 6", "Exercise 1.2", "notebooks 01–02", "Part 1", "cell 38", "eq. 3"
NUMBERED_THING = re.compile(
    r"\b(?:notebooks?|sections?|sec\.|exercises?|parts?|cells?|steps?|eqs?\.|equations?|figures?|fig\.|"
    r"tables?|chapters?|items?|cards?|stage)\s+\d+(?:\.\d+)*(?:\s*(?:,|and|or|to|–|-)\s*\d+(?:\.\d+)*)*",
    re.IGNORECASE)
ARXIV = re.compile(r"\barXiv[:\s]*\d{4}\.\d{4,5}|\b\d{4}\.\d{5}\b", re.IGNORECASE)
YEAR = re.compile(r"(?<![\d.,])(?:19[89]\d|20[0-3]\d)(?![\d.,]\d)")
NOTEBOOK_NUMBER = re.compile(r"(?<![\w.])0\d(?![\w.]*\d)")
CODE_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.S)
INLINE_MATH = re.compile(r"\$([^$\n]+)\$")
LINK_TARGET = re.compile(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
URL = re.compile(r"https?://\S+")
HTML_TAG = re.compile(r"<[^>\n]+>")
HEADING_OR_ITEM_NUMBER = re.compile(r"^(\s*#+\s*|\s*)\d+(?:\.\d+)*[.)]\s", re.M)
TIME_PARAGRAPH = re.compile(r"^\*\*Time\*\*.*?(?=\n\s*\n|\Z)", re.M | re.S)
# In the title cell's **Time** paragraph: the wall times themselves and the machine they were measured on
DURATION = re.compile(r"\d+(?:\.\d+)?(?:\s*[–-]\s*\d+(?:\.\d+)?)?\s*(?:s|min|h|minutes?|seconds?|hours?|times)\b"
                      r"|load\s+average\s+near\s+\d+(?:\s*[–-]\s*\d+)?|\d+\s+(?:idle\s+)?CPU\s+cores", re.IGNORECASE)


def _math_without_symbols(match: re.Match) -> str:
    """An inline formula with its sub- and superscripts, fractions of digits and commands removed, so
    that $\\eta^2$, $x_1$, $\\tfrac12$ or $e^{-k}$ leave nothing, while $\\rho = 0.05$ keeps its 0.05."""
    text = match.group(1)
    text = re.sub(r"[_^]\{[^{}]*\}|[_^]\\?\w", " ", text)
    text = re.sub(r"\\t?frac\s*\d\s*\d", " ", text)
    text = re.sub(r"\\[A-Za-z]+", " ", text)
    return f" {text} "


def prose_of(source: str, title_cell: bool = False) -> str:
    """The text of one markdown cell with everything that is not a claim removed (see the module)."""
    text = source
    if title_cell:
        text = TIME_PARAGRAPH.sub(lambda time: DURATION.sub(" ", time.group(0)), text)
    for pattern in (CODE_FENCE, CODE_SPAN, DISPLAY_MATH):
        text = pattern.sub(" ", text)
    text = INLINE_MATH.sub(_math_without_symbols, text)
    for pattern in (LINK_TARGET, URL, HTML_TAG, ARXIV, NUMBERED_THING, YEAR):
        text = pattern.sub(" ", text)
    text = HEADING_OR_ITEM_NUMBER.sub(r"\1", text)
    return NOTEBOOK_NUMBER.sub(" ", text)


def canonical(number: str) -> str:
    """'0.540' -> '0.54', '1,797' -> '1797', '2e-4' -> '0.0002': one spelling per value."""
    value = Decimal(number.replace(",", "").replace("−", "-"))
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def numbers_in(text: str) -> list[tuple[str, bool, str]]:
    """(canonical value, is a percentage, the words around it) of every number of `text`."""
    found = []
    for match in NUMBER.finditer(text):
        try:
            value = canonical(match.group(1))
        except InvalidOperation:
            continue
        context = " ".join(text[max(0, match.start() - 40):match.end() + 25].split())
        found.append((value, match.group(2) == "%", context))
    return found


def prose_numbers(notebook: dict) -> list[tuple[str, bool, str, int]]:
    """(value, is a percentage, context, cell index) of every number in the notebook's markdown prose."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        found += [(*number, index) for number in numbers_in(prose_of(source, title_cell=index == 0))]
    return found


def output_text(notebook: dict) -> str:
    """Everything the executed notebook's code cells printed or displayed as text."""
    pieces = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if output.get("output_type") == "stream":
                pieces.append(output.get("text", ""))
            for kind in ("text/plain", "text/markdown", "text/html"):
                pieces.append(output.get("data", {}).get(kind, ""))
    return HTML_TAG.sub(" ", "\n".join("".join(p) if isinstance(p, list) else p for p in pieces))


def output_numbers(text: str) -> set[Decimal]:
    """The value of every number in `text`, joined to a word or not (a table prints 'seed0', '0.41±0.03')."""
    values = set()
    for match in re.finditer(r"\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+−]?\d+)?|\d+(?:\.\d+)?", text):
        try:
            values.add(Decimal(canonical(match.group(0))))
        except InvalidOperation:
            pass
    return values


def allowed_numbers() -> dict[str, dict[str, str]]:
    """{notebook stem or COMMON: {canonical number: reason}} from the allow-list file."""
    raw = yaml.safe_load(ALLOWED_FILE.read_text(encoding="utf-8")) or {}
    return {section: {canonical(str(number)): str(reason) for number, reason in (entries or {}).items()}
            for section, entries in raw.items()}


def unexplained_numbers(source: dict, executed: dict, allowed: dict[str, str]) -> list[str]:
    """'cell N: value (… context …)' for every prose number neither printed by `executed` nor allowed."""
    printed = output_numbers(output_text(executed))
    missing = []
    for value, percent, context, index in prose_numbers(source):
        number = Decimal(value)
        if value in allowed or number in printed or (percent and number / 100 in printed):
            continue
        missing.append(f"cell {index}: {value}{' %' if percent else ''}   … {context} …")
    return missing


# ---------------------------------------------------------------------------------------------- the scanner

@pytest.mark.parametrize("markdown, expected", [
    ("pass@1 rose from 0.41 to 0.54 (95–100 % of the prompts)", ["0.41", "0.54", "95", "100%"]),
    ("Qwen2.5-0.5B-Instruct in 4-bit on GSM8K, top-20 positions, k3, 8×8 digits", ["8", "8"]),
    ("section 5 and notebooks 01–02, Exercise 1.2, sections 5 and 6, Cui et al. (2025), arXiv 2505.22617", []),
    ("## 3. Derivation\n1. **Softmax.** the `eval_k = 8`\n```\nx = 3\n```\nstays out", []),
    ("the error falls as $\\eta^2$ and $\\tfrac12 x_1$, while $\\rho = 0.05$ and $$H = 0.9$$", ["0.05"]),
    ("[glossary](../docs/metrics.md) at https://x.org/2 with 1,797 digits and r = 2e-4", ["1797", "0.0002"]),
])
def test_the_scanner_finds_claims_and_skips_names(markdown, expected):
    found = [value + ("%" if percent else "") for value, percent, _ in numbers_in(prose_of(markdown))]
    assert found == expected


def test_the_title_cells_time_paragraph_is_scanned_without_its_durations():
    title = ("# 02 · Title\n\n**Time** (2 CPU cores): smoke 91–129 s measured while jobs kept the load average near\n"
             "7, cpu ≈ 2.5 min, 2-3 times slower when busy; from the 51 runs shipped.\n\nIt kept 0.43 of its entropy.")
    found = [value for value, *_ in prose_numbers({"cells": [{"cell_type": "markdown", "source": title}]})]
    assert found == ["51", "0.43"]


def test_a_number_matches_the_same_value_printed_and_a_percentage_its_fraction():
    source = {"cells": [{"cell_type": "markdown", "source": "kept 0.54, 44 % and 0.45; 12 runs"}]}
    executed = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "text": ["grpo kept 0.540 ± 0.02\n", "share 0.44\n"]}]}]}
    assert [line.split("   ")[0] for line in unexplained_numbers(source, executed, {"12": "a size"})] \
        == ["cell 0: 0.45"]


# ------------------------------------------------------------------------------------------- the notebooks

def test_the_allow_list_gives_a_reason_for_every_entry_and_names_only_notebooks_that_exist():
    stems = {path.stem for path in NOTEBOOKS}
    for section, entries in allowed_numbers().items():
        assert section == COMMON or section in stems, (
            f"{ALLOWED_FILE.name} has a section {section!r}, but there is no notebooks/{section}.ipynb: "
            "move its entries to the notebook that states them now, or remove them")
        for number, reason in entries.items():
            assert len(reason.split()) >= 3, f"{ALLOWED_FILE.name}: {section}: {number} needs a reason"


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_is_printed_by_the_notebook_or_an_allowed_constant(source):
    copy = EXECUTED / source.name
    if not copy.exists():
        pytest.skip(f"no executed copy docs/notebooks/{source.name} to compare with yet "
                    f"(`python notebooks/build_docs.py {source.stem}` makes it)")
    allowed = allowed_numbers()
    permitted = {**allowed.get(COMMON, {}), **allowed.get(source.stem, {})}
    missing = unexplained_numbers(json.loads(source.read_text()), json.loads(copy.read_text()), permitted)
    assert not missing, (
        f"{source.name}: these numbers in the markdown are printed by no cell of {copy.relative_to(ROOT)}. "
        "An outcome of a run goes into a code cell that prints it (and record_outcomes), not into the prose; "
        f"a constant (a default, a size, a paper's value with its citation) goes into {ALLOWED_FILE.name} "
        f"under {source.stem} with its reason:\n  " + "\n  ".join(missing))


def test_no_allow_list_entry_is_left_over():
    """An allowed number that no notebook states any more is removed, so that the list stays a list of
    the constants the course actually states."""
    stated = {path.stem: {value for value, *_ in prose_numbers(json.loads(path.read_text()))} for path in NOTEBOOKS}
    anywhere = set().union(*stated.values()) if stated else set()
    left_over = [f"{section}: {number}" for section, entries in allowed_numbers().items() for number in entries
                 if number not in (anywhere if section == COMMON else stated.get(section, set()))]
    assert not left_over, f"no notebook's prose states these entries of {ALLOWED_FILE.name} any more: remove them:\n" \
        + "\n".join(left_over)
