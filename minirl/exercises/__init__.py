"""Self-checking exercises for the course notebooks, one module per notebook.

An exercise in a notebook is three cells: the question (markdown, "### Exercise N.M: ..."), the
answer (a code cell tagged `solution` that defines a function, with the solution between
`### BEGIN SOLUTION` and `### END SOLUTION`) and the check (a code cell tagged `check` that calls one
`check_*` function of `minirl.exercises.notebookNN` with that function). A check

* prints "passed" when the answer agrees with the library on inputs it draws itself,
* prints "not answered yet" when the function returns None (the student copies made by
  `python notebooks/student_copies.py` replace each solution by `pass`), so "Run all" goes on,
* raises AssertionError with a hint otherwise.

Each module lists, under MISTAKES, wrong answers its checks must refuse (tests/test_exercises.py
runs them, and runs the notebooks' own solutions through the checks).
"""
from __future__ import annotations

SOLUTIONS_NOTE = "write your code in the cell above (the solutions: notebooks/student_copies.py writes them to student/solutions.md)"


def answered(value, exercise: str) -> bool:
    """False, after saying so, when an exercise's function returned None (not written yet)."""
    if value is None:
        print(f"{exercise}: not answered yet; {SOLUTIONS_NOTE}")
        return False
    return True


def passed(exercise: str, what: str) -> bool:
    print(f"{exercise} passed: {what}")
    return True
