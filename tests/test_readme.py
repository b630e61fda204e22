"""CI runs exactly the test command the README gives."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_command = [l for l in (ROOT / ".ci/run").read_text().splitlines() if "pytest" in l]
    assert len(ci_command) == 1
    assert ci_command[0].strip() in (ROOT / "README.md").read_text()
