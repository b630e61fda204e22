"""The course's shipped results (minirl/assets/results): they are the runs the current grid files make,
they round-trip through pack, load and unpack into a results folder that the report reads, and
notebooks 03, 04 and 08 read them by default."""
import gzip
import json
from pathlib import Path

import pytest
import yaml

from minirl import shipped, shipping
from minirl.grid import expand, load_grid
from minirl.results import collect, open_results, record_cells
from minirl.metrics import METRICS_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
COURSE_GRIDS = ["cpu_all_methods", "cpu_steps_methods", "cpu_tool_methods"]
TINY_GRID = {"notebook": "00_quickstart", "profile": "smoke", "seeds": [0, 1], "parameters": {"steps": 2},
             "methods": {"grpo": "grpo", "clip_cov 2%": {"method": "clip_cov", "settings": {"clip_cov_ratio": "0.02"}}}}


@pytest.fixture(autouse=True)
def _needs_papermill():
    pytest.importorskip("papermill")                     # the grid reads the notebook's parameters with it


@pytest.mark.parametrize("name", COURSE_GRIDS)
def test_the_shipped_runs_are_the_ones_the_grid_file_makes_now(name):
    grid_file = ROOT / "grids" / f"{name}.yaml"
    path = shipped.path_of(name)
    assert path.parent == ROOT / "minirl" / "assets" / "results" and path.stat().st_size < 3 * 2**20
    shipping.check(name, grid_file)                       # same cells, settings and TrainConfigs; steps 0..120
    course, cells = shipped.load(name), expand(load_grid(grid_file))
    assert list(course.runs) == list(dict.fromkeys(c.label for c in cells))          # variants in grid order
    seeds = sorted(load_grid(grid_file)["seeds"])
    assert len(seeds) >= 5, f"{name}: the README's intervals are stated over at least 5 seeds"
    for label, by_seed in course.runs.items():
        assert sorted(by_seed) == seeds, label
        for rows in by_seed.values():
            assert [r["step"] for r in rows] == list(range(121))
            assert rows[-1]["pass_at_k"] is not None and all(r["tokens_sampled"] > 0 for r in rows[1:])


def _tiny_results(tmp_path) -> tuple[Path, Path]:
    """A results folder of TINY_GRID written by hand (no training): what `reproduce` leaves behind."""
    grid_file = tmp_path / "tiny_grid.yaml"
    grid_file.write_text(yaml.safe_dump(TINY_GRID, sort_keys=False))
    root = open_results(tmp_path / "results" / "tiny_grid", create=True)
    cells = expand(load_grid(grid_file))
    record_cells(root, [c.id for c in cells])
    for i, cell in enumerate(cells):
        folder = root / cell.id
        folder.mkdir(parents=True)
        (folder / "cell.json").write_text(json.dumps({"schema": METRICS_SCHEMA, **cell.to_dict()}))
        (folder / "config.json").write_text(json.dumps(shipping.config_of(cell)))
        rows = [{"step": 0, "pass_at_1": 0.3, "pass_at_k": 0.8, "entropy": None, "reward": None}] + [
            {"step": s, "entropy": 0.5 - 0.1 * s - 0.01 * i, "reward": 0.4 + 0.1 * s, "tokens_sampled": 700 + i,
             "step_s": 0.1, "wall_s": 0.1 * s} for s in (1, 2)]
        rows[-1].update(pass_at_1=0.5 + 0.01 * i, pass_at_k=0.7)
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "done.json").write_text(json.dumps({"seconds": 10.0 + i}))
        (folder / "checkpoint.pt").write_bytes(b"not shipped")
    return root, grid_file


def test_pack_load_and_unpack_round_trip_a_results_folder(tmp_path):
    from minirl.report import write_report

    root, grid_file = _tiny_results(tmp_path)
    path = shipping.pack(root, grid_file, out=tmp_path / "assets")
    assert path == tmp_path / "assets" / "tiny_grid.json.gz"
    assert b"not shipped" not in gzip.decompress(path.read_bytes())                   # metrics only
    course = shipped.load(path)
    written = {run.cell["label"]: {} for run in collect(root)}
    for run in collect(root):
        written[run.cell["label"]][run.cell["seed"]] = run.rows
    assert course.runs == written and list(course.runs) == ["grpo", "clip_cov 2%"]
    assert course.grid == TINY_GRID and course.config("clip_cov 2%")["method_settings"] == {"clip_cov_ratio": "0.02"}
    shipping.check(path, grid_file)
    again = shipped.unpack(path, tmp_path / "unpacked")
    runs = collect(again)
    assert [(r.id, r.rows) for r in runs] == [(r.id, r.rows) for r in collect(root)]
    assert not list(again.rglob("checkpoint.pt")) and not list(again.rglob("*.ipynb"))
    report = write_report(again).read_text()                                           # the report reads it unchanged
    assert "| grpo | 2 |" in report and "0.8 min of cells" in report                   # (10 + 11 + 12 + 13) s
    assert "wall s" not in report and "step time" not in report                        # cells ran two at a time
    assert shipped.unpack(path, again) == again                                        # a second unpack keeps it


def test_pack_refuses_a_grid_with_a_missing_or_failed_cell(tmp_path):
    root, grid_file = _tiny_results(tmp_path)
    failed = root / "00_quickstart/smoke/clip_cov_2/seed1"
    (failed / "done.json").unlink()
    (failed / "error.txt").write_text("ValueError: boom\n")
    with pytest.raises(shipped.ShippedError, match=r"lacks 1 of the grid's 4 cells \(1 failed; first: "
                                                   r"00_quickstart/smoke/clip_cov_2/seed1\); run `python -m minirl "
                                                   r"reproduce"):
        shipping.pack(root, grid_file, out=tmp_path / "assets")
    assert not (tmp_path / "assets" / "tiny_grid.json.gz").exists()


@pytest.mark.parametrize("change, expected", [
    (lambda g: g["methods"]["clip_cov 2%"]["settings"].update(clip_cov_ratio="0.05"), "method_settings"),
    (lambda g: g.update(seeds=[0, 1, 2]), "cells only in the grid: ['00_quickstart/smoke/clip_cov_2/seed2'"),
    (lambda g: g["parameters"].update(lr=1e-3), "train_settings, config lr"),
    (lambda g: g["parameters"].update(steps=3), "notebook_parameters, config steps"),
])
def test_check_fails_when_the_grid_file_changed(tmp_path, change, expected):
    root, grid_file = _tiny_results(tmp_path)
    path = shipping.pack(root, grid_file, out=tmp_path / "assets")
    grid = yaml.safe_load(grid_file.read_text())
    change(grid)
    grid_file.write_text(yaml.safe_dump(grid, sort_keys=False))
    with pytest.raises(shipped.ShippedError, match="is not what .* makes now") as err:
        shipping.check(path, grid_file)
    assert expected in str(err.value)


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(shipped.ShippedError, match="no shipped results named 'cpu_all'; choose one of: cpu_all_methods"):
        shipped.load("cpu_all")


@pytest.mark.parametrize("notebook, calls", [
    ("03_loss_interventions", ['shipped.load("cpu_all_methods")']),
    ("04_branching_rollouts", ['shipped.load("cpu_all_methods")']),
    ("04_rewards_and_advantages", ['shipped.load("cpu_all_methods")']),
    ("04_steps_and_tools", ['shipped.load("cpu_steps_methods")', 'shipped.load("cpu_tool_methods")']),
    ("08_results_dashboard", ['shipped.unpack("cpu_all_methods"'])])
def test_the_comparison_notebooks_read_the_shipped_results_by_default(notebook, calls):
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    parameters = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    namespace = {}
    exec("".join(parameters["source"]), namespace)
    assert namespace["retrain"] is False                                                 # training is opt-in
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert all(call in code for call in calls), [call for call in calls if call not in code]
    assert "minirl.__file__" not in code and '"docs"' not in code                        # nothing into the package


def test_the_ship_command_packs_into_the_package_assets_and_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    from minirl.cli import main

    root, grid_file = _tiny_results(tmp_path)
    monkeypatch.setattr(shipped, "ASSETS", tmp_path / "assets")                      # not the real package folder
    assert main(["ship", str(root), str(grid_file)]) == 0
    assert f"{tmp_path / 'assets' / 'tiny_grid.json.gz'} (" in capsys.readouterr().out
    assert shipped.available() == ["tiny_grid"] and list(shipped.load("tiny_grid").runs) == ["grpo", "clip_cov 2%"]
    (root / "00_quickstart/smoke/grpo/seed0/done.json").unlink()
    assert main(["ship", str(root), str(grid_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minirl: error: ") and "lacks 1 of the grid's 4 cells" in err and err.count("\n") == 1


def test_a_field_added_after_the_runs_counts_at_the_value_earlier_runs_ran_with():
    from dataclasses import MISSING, fields

    from minirl.config import BEFORE_THE_FIELD, TrainConfig, value_before_field

    field = next(f for f in fields(TrainConfig) if f.default is not MISSING and f.name not in BEFORE_THE_FIELD)
    assert value_before_field(field.name) == field.default    # a run without the field ran at its default
    for key in ("share_prompt_update", "fused_adamw"):       # ... except where the default changed the runs:
        assert getattr(TrainConfig(), key) is True and value_before_field(key) is False
    assert value_before_field("no_such_field") == "<missing>"   # anything else is a difference
