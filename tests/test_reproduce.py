"""`python -m minirl reproduce` and `report`: a grid runs end to end into one results folder, a
re-run executes only the cells that did not finish, a failed cell is recorded and the grid goes on,
bad grids and foreign schemas are refused before anything runs, and the report's numbers are the
ones worked out by hand."""
import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from minirl import METHODS
from minirl.cli import main
from minirl.grid import GridError, expand, load_grid
from minirl.results import SchemaError, collect, tidy_table

ROOT = Path(__file__).resolve().parents[1]
SMOKE_GRID = ROOT / "grids" / "smoke_two_methods.yaml"
SMOKE_CELLS = ["00_quickstart/smoke/grpo/seed0", "00_quickstart/smoke/grpo/seed1",
               "00_quickstart/smoke/clip_cov_2/seed0", "00_quickstart/smoke/clip_cov_2/seed1"]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """The smoke grid (2 methods × 2 seeds × 6 steps) run once with 2 workers, as CI runs it."""
    pytest.importorskip("papermill")
    from minirl.reproduce import reproduce

    out = tmp_path_factory.mktemp("grid") / "smoke"
    outcome = reproduce(load_grid(SMOKE_GRID), out=out, workers=2, progress=False)
    return out, outcome


def test_smoke_grid_writes_every_cell_the_table_and_the_report(smoke_results):
    out, outcome = smoke_results
    assert sorted(outcome.ran) == sorted(SMOKE_CELLS) and not outcome.failed and not outcome.skipped
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == ["run_id", "notebook", "variant", "method", "seed", "profile", "step"]
    assert len(rows) == 4 * 7                                               # 4 runs × steps 0..6
    assert {(r["variant"], r["method"], r["seed"]) for r in rows} == {
        ("grpo", "grpo", "0"), ("grpo", "grpo", "1"), ("clip_cov 2%", "clip_cov", "0"), ("clip_cov 2%", "clip_cov", "1")}
    # the method and its setting reached the trainer: only clip_cov's rows carry its own metrics
    assert all((r["clip_cov/n_detached"] != "") == (r["method"] == "clip_cov" and r["step"] != "0") for r in rows)
    config = json.loads((out / SMOKE_CELLS[3] / "config.json").read_text())
    assert (config["method"], config["method_settings"], config["seed"], config["steps"], config["eval_k"]) == (
        "clip_cov", {"clip_cov_ratio": "0.02"}, 1, 6, 2)
    report = (out / "report.md").read_text()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) == 2 and all(f"figures/{name}" in report for name in figures)
    assert "| grpo | 2 |" in report and "| clip_cov 2% | 2 |" in report and "1.00× |" in report


def test_rerun_executes_only_the_unfinished_cell(smoke_results, tmp_path, capsys):
    out = tmp_path / "smoke"
    shutil.copytree(smoke_results[0], out)
    killed = out / SMOKE_CELLS[1]                                           # killed mid-run: no marker, half the rows
    (killed / "done.json").unlink()
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    (killed / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    before = {c: (out / c / "00_quickstart.ipynb").stat().st_mtime_ns for c in SMOKE_CELLS}
    assert main(["reproduce", str(SMOKE_GRID), "--out", str(out)]) == 0
    assert "ran 1, skipped 3 done, 0 failed" in capsys.readouterr().out
    after = {c: (out / c / "00_quickstart.ipynb").stat().st_mtime_ns for c in SMOKE_CELLS}
    assert [c for c in SMOKE_CELLS if after[c] != before[c]] == [SMOKE_CELLS[1]]   # only the killed cell ran again
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 7 and (killed / "done.json").exists()


STAND_IN = """from pathlib import Path
import json
if method == "dapo":
    raise ValueError("this stand-in fails for dapo")
rows = [{"step": 0, "pass_at_1": 0.5, "pass_at_k": 0.9}] + [
    {"step": s, "entropy": 1.0 / s, "reward": 0.1 * s, "step_s": 0.1, "wall_s": 0.1 * s} for s in (1, 2)]
rows[-1].update(pass_at_1=0.6, pass_at_k=0.8)
Path(out, "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
"""


def test_a_failed_cell_is_recorded_the_grid_goes_on_and_the_exit_code_says_so(tmp_path, capsys):
    """A stand-in notebook (no training: quick kernels) that fails for one method."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "cpu"\nmethod = "grpo"\nseed = 0\nout = None',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(STAND_IN)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, tmp_path / "stand_in.ipynb")
    grid = {"notebook": str(tmp_path / "stand_in.ipynb"), "profile": "smoke", "seeds": [0], "methods": ["dapo", "grpo"]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    assert main(["reproduce", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "out")]) == 1
    printed = capsys.readouterr()
    assert "ran 1, skipped 0 done, 1 failed" in printed.out
    assert "FAILED stand_in/smoke/dapo/seed0: ValueError: this stand-in fails for dapo" in printed.err
    assert (tmp_path / "out/stand_in/smoke/grpo/seed0/done.json").exists()
    assert (tmp_path / "out/stand_in/smoke/dapo/seed0/error.txt").exists()
    assert "`stand_in/smoke/dapo/seed0`: ValueError: this stand-in fails for dapo" in (
        tmp_path / "out" / "report.md").read_text()
    # the same folder, grpo's cell now with another setting: refused before anything runs, never mixed in
    grid["methods"] = {"grpo": {"method": "grpo", "settings": {"clip_ratio_high": "0.28"}}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    assert main(["reproduce", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "holds stand_in/smoke/grpo/seed0 run with other settings" in capsys.readouterr().err


def test_the_cpu_grid_holds_every_method_the_course_runs_on_the_default_task():
    from minirl import compare

    course = [v for name in dir(compare) if name.endswith("_VARIANTS") for v in getattr(compare, name).values()]
    on_countdown = {method for method, _, *own in course if not (own and "task" in own[0])}
    elsewhere = {method for method, _, *own in course if own and "task" in own[0]}   # countdown_steps, _tool
    assert on_countdown | elsewhere == set(METHODS)                         # the course runs every method
    cells = expand(load_grid(ROOT / "grids" / "cpu_all_methods.yaml"))
    assert {c.method for c in cells} == on_countdown
    assert {c.seed for c in cells} == {0, 1, 2, 3, 4} and {c.profile for c in cells} == {"smoke"}   # the course's policy size
    assert {c.label for c in cells} == {c.label for c in expand(load_grid(ROOT / "grids" / "cpu_profile_all_methods.yaml"))}
    assert len(cells) == 5 * len({c.label for c in cells})
    assert next(c for c in cells if c.label == "grpo G=16").train_settings == {
        "group_size": 16, "eval_every": 20, "eval_prompts": 64, "share_prompt_update": False, "fused_adamw": False}


@pytest.mark.parametrize("grid, expected", [
    ({"methods": ["grpo", "clipcov"]}, "unknown method 'clipcov'; choose one of: grpo, aepo"),
    ({"notebook": "99_nothing", "methods": ["grpo"]}, "unknown notebook '99_nothing'; choose one of: 00_quickstart, 01_"),
    ({"notebook": "02_entropy_collapse", "methods": ["grpo"]},
     "notebook 02_entropy_collapse cannot run a grid cell: its parameters cell has no method, seed, out; "
     "notebooks that can: 00_quickstart"),
    ({"methods": ["grpo"], "parameters": {"stepz": 3}},
     "unknown parameter 'stepz' (variant 'grpo'); choose a parameter of 00_quickstart (model, task, steps)"
     " or a TrainConfig field (backend, checkpoint_every"),
    ({"methods": {"cc": {"method": "clip_cov", "settings": {"clip_cov_rate": 1}}}},
     "variant 'cc': method 'clip_cov' has no setting 'clip_cov_rate'; choose one of: clip_ratio_low"),
    ({"methods": ["grpo"], "profile": "laptop"}, "unknown profile 'laptop'; choose one of: smoke, cpu, gpu"),
    ({"method": "grpo"}, "unknown grid key(s) 'method'; choose from: notebook, notebooks, profile"),
    ({"variants_from": ["ALL_VARIANTS"]}, "unknown variant list 'ALL_VARIANTS'; choose one of: BATCH_LEVEL_VARIANTS"),
])
def test_a_bad_grid_is_reported_with_the_choices_before_anything_runs(grid, expected, tmp_path, capsys):
    with pytest.raises(GridError) as err:
        expand(grid)
    assert expected in str(err.value)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    assert main(["reproduce", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()                                  # nothing ran, nothing was written


# ------------------------------------------------------------------ the report, on hand-written runs
def _write_run(root: Path, label: str, method: str, seed: int, head: float, tail: float, step_s: float,
               pass1: tuple, passk: tuple, wall: float, a: float = 0.2, b: float = 1.0, schema: int = 1) -> None:
    """Steps 0..10: evals at 0 and 10, entropy `head` for steps 1-5 and `tail` for 6-10, reward on the
    law R = −a·exp(H) + b."""
    folder = root / "00_quickstart" / "smoke" / label.replace(" ", "_").replace("%", "") / f"seed{seed}"
    folder.mkdir(parents=True)
    rows = [{"step": 0, "pass_at_1": pass1[0], "pass_at_k": passk[0], "wall_s": 1.0}]
    for step in range(1, 11):
        H = head if step <= 5 else tail
        rows.append({"step": step, "entropy": H, "reward": -a * math.exp(H) + b, "step_s": step_s,
                     "wall_s": 1.0 + step * (wall - 1.0) / 10, f"{method}/extra": {"nested": 1}})
    rows[-1].update(pass_at_1=pass1[1], pass_at_k=passk[1])
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cell = {"schema": schema, "id": str(folder.relative_to(root)), "notebook": "00_quickstart", "profile": "smoke",
            "label": label, "method": method, "seed": seed}
    (folder / "cell.json").write_text(json.dumps(cell))
    (folder / "done.json").write_text(json.dumps({"seconds": 30.0}))


@pytest.fixture
def hand_results(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    ids = ["00_quickstart/smoke/grpo/seed0", "00_quickstart/smoke/grpo/seed1"]
    (root / "minirl-results.json").write_text(json.dumps({"schema": 1, "cells": ids}))
    _write_run(root, "grpo", "grpo", 0, 1.0, 0.5, 0.2, (0.3, 0.5), (0.8, 0.6), 10.0)
    _write_run(root, "grpo", "grpo", 1, 1.0, 0.3, 0.2, (0.3, 0.7), (0.8, 0.4), 12.0)
    _write_run(root, "clip_cov 2%", "clip_cov", 0, 1.0, 0.9, 0.3, (0.3, 0.4), (0.8, 0.8), 15.0, a=0.1, b=0.9)
    _write_run(root, "clip_cov 2%", "clip_cov", 1, 1.0, 0.7, 0.3, (0.3, 0.6), (0.8, 0.6), 15.0, a=0.1, b=0.9)
    return root


def test_report_numbers_match_the_hand_computation(hand_results, capsys):
    assert main(["report", str(hand_results)]) == 0
    report = (hand_results / "report.md").read_text()
    # grpo: entropy kept 0.5 and 0.3 → 0.40 ± 0.14 (sample std of two values d apart is d/√2);
    # final pass@1 0.5, 0.7 → 0.600 ± 0.141; pass@k 0.6, 0.4 → 0.500 ± 0.141. These hand-made rows log
    # no tokens_sampled, so the budget columns say "—"; grid cells' wall times are not in the table (they
    # ran side by side and do not compare).
    assert ("| grpo | 2 | 0.600 ± 0.141 | 0.600 ± 0.141 | 0.500 ± 0.141 | 0.400 ± 0.141 | 0.40 ± 0.14 | — "
            "| — |") in report
    # clip_cov: kept 0.9, 0.7 → 0.80 ± 0.14
    assert ("| clip_cov 2% | 2 | 0.500 ± 0.141 | 0.500 ± 0.141 | 0.700 ± 0.141 | 0.800 ± 0.141 | 0.80 ± 0.14 | "
            "— | — |") in report
    assert "step time vs" not in report
    assert report.index("| grpo |") < report.index("| clip_cov 2% |")      # the grid's order, not the folders'
    # every reward lies on R = −a·exp(H) + b: the fit gives a and b back, R at H = 0 = b − a, R² = 1
    assert "| grpo | 0.200 | 1.000 | 0.800 | 1.00 | 20 |" in report
    assert "| clip_cov 2% | 0.100 | 0.900 | 0.800 | 1.00 | 20 |" in report
    assert "4 runs of metrics schema 1, 2.0 min of cells" in report
    columns, table = tidy_table(collect(hand_results))
    assert len(table) == 4 * 11 and "clip_cov/extra" not in columns      # nested fields stay in metrics.jsonl
    row = next(r for r in table if r["run_id"] == "00_quickstart/smoke/clip_cov_2/seed1" and r["step"] == 10)
    assert (row["variant"], row["method"], row["seed"], row["entropy"], row["pass_at_1"]) == (
        "clip_cov 2%", "clip_cov", 1, 0.7, 0.6)


def test_a_results_folder_of_another_schema_is_refused(hand_results, tmp_path, capsys):
    (hand_results / "minirl-results.json").write_text(json.dumps({"schema": 0}))
    with pytest.raises(SchemaError, match="holds metrics of schema 0, but this minirl writes and reads schema 1"):
        collect(hand_results)
    assert main(["report", str(hand_results)]) == 2
    assert main(["reproduce", str(SMOKE_GRID), "--out", str(hand_results)]) == 2     # nothing is added to it
    assert "schema 0" in capsys.readouterr().err
    assert sorted(p.name for p in (hand_results / "00_quickstart" / "smoke").iterdir()) == ["clip_cov_2", "grpo"]


def test_a_cell_of_another_schema_is_named_not_mixed_in(hand_results):
    _write_run(hand_results, "kl_cov", "kl_cov", 0, 1.0, 0.8, 0.2, (0.3, 0.5), (0.8, 0.6), 10.0, schema=2)
    with pytest.raises(SchemaError, match=r"kl_cov/seed0 holds metrics of schema 2"):
        collect(hand_results)


def test_a_folder_that_is_not_a_results_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SchemaError, match="holds files but no minirl-results.json"):
        from minirl.results import open_results
        open_results(tmp_path, create=True)
