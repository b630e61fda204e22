"""Write the students' copies of the course: every exercise's solution replaced by `pass`, and the
solutions in one file apart.

    python notebooks/student_copies.py                  # student/NN_*.ipynb and student/solutions.md
    python notebooks/student_copies.py --out handout    # somewhere else

In a source notebook an exercise's answer is a code cell tagged `solution` whose solution sits
between `### BEGIN SOLUTION` and `### END SOLUTION`; the copy keeps the rest of the cell (the
function's name and arguments) and puts `pass` where the solution was, so the check cell after it
says "not answered yet" and "Run all" goes on. tests/test_exercises.py checks that no solution line
survives in the copies.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE = re.compile(r"^#+\s*(Exercise [0-9.]+[^\n]*)", re.MULTILINE)


def split_solution(source: str) -> tuple[str, str]:
    """(the cell with its solution replaced by `pass`, the solution lines)."""
    lines, kept, solution, inside = source.splitlines(), [], [], False
    for number, line in enumerate(lines, 1):
        if line.strip() == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside a solution")
            inside = True
            kept.append(line[: len(line) - len(line.lstrip())] + "pass  # your code here")
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif inside:
            solution.append(line)
        else:
            kept.append(line)
    if inside or not solution:
        raise ValueError(f"a solution cell needs one {BEGIN} ... {END} block with the solution inside")
    return "\n".join(kept), "\n".join(solution)


def exercise_title(cells, index: int) -> str:
    """The "Exercise N.M: ..." heading of the markdown cell nearest above cell `index`."""
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown":
            found = EXERCISE.findall(cell.source)
            if found:
                return found[-1].strip()
    return f"cell {index}"


def student_copy(path: Path) -> tuple[nbformat.NotebookNode, list[tuple[str, str]]]:
    """The student's copy of one notebook and its (exercise title, solution code) pairs."""
    nb = nbformat.read(path, as_version=4)
    solutions = []
    for index, cell in enumerate(nb.cells):
        if "solution" in cell.metadata.get("tags", []):
            original = cell.source
            try:
                cell.source, _ = split_solution(original)
            except ValueError as error:
                raise ValueError(f"{path.name}, cell {index}: {error}") from None
            answer = "\n".join(line for line in original.splitlines() if line.strip() not in (BEGIN, END))
            solutions.append((exercise_title(nb.cells, index), answer))
    return nb, solutions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("student"), help="folder to write (default: student)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="source notebooks (default: all of notebooks/)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("[0-9][0-9]*_*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    from minirl.run_folder import write_atomic

    markdown = ["# Solutions to the course's exercises", ""]
    for path in paths:
        nb, solutions = student_copy(path)
        write_atomic(args.out / path.name, nbformat.writes(nb) + "\n")
        markdown += [f"## {path.stem}", ""]
        for title, code in solutions:
            markdown += [f"### {title}", "", "```python", code, "```", ""]
        print(f"{args.out / path.name}: {len(solutions)} exercise(s)")
    write_atomic(args.out / "solutions.md", "\n".join(markdown))
    print(f"{args.out / 'solutions.md'}: the solutions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
