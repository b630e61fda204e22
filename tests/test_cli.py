"""The command line: bad input is one line naming the bad value and the choices, exit code 2."""
import subprocess
import sys

import pytest

from minirl.cli import main


@pytest.mark.parametrize("argv,expected", [
    (["train", "--method", "clipcov", "--out", "x"], "unknown method 'clipcov'; choose one of: grpo"),
    (["train", "--task", "addition", "--out", "x"], "unknown task 'addition'; choose one of: countdown, arithmetic"),
    (["train", "--profile", "laptop", "--out", "x"], "unknown profile 'laptop'; choose one of: smoke, cpu, gpu"),
    (["train", "--steps", "0", "--out", "x"], "--steps must be a positive integer (got 0)"),
    (["train", "--steps", "ten", "--out", "x"], "invalid int value: 'ten'"),
    (["train", "--set", "clip_ratio_hi=0.3", "--out", "x"], "has no setting 'clip_ratio_hi'; choose one of: clip_ratio_low"),
    (["train", "--set", "lr=fast", "--out", "x"], "setting lr='fast' is not a number"),
    (["train", "--set", "lr", "--out", "x"], "--set 'lr' is not NAME=VALUE"),
    (["warmstart", "--task", "sorting"], "unknown task 'sorting'"),
    (["plot", "no/such/run"], "no/such/run is not a run folder"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_entry_point_exits_2_without_traceback():
    done = subprocess.run([sys.executable, "-m", "minirl", "train", "--method", "nope", "--out", "x"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    from minirl.methods import METHODS
    assert done.stderr.strip() == f"minirl: error: unknown method 'nope'; choose one of: {', '.join(METHODS)}"


def test_methods_lists_the_registry(capsys):
    assert main(["methods"]) == 0
    assert capsys.readouterr().out.startswith("grpo ")


def test_train_compare_plot(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--profile", "smoke", "--steps", "2", "--out", str(run), "--quiet",
            "--set", "eval_every=2", "--set", "eval_prompts=8", "--set", "clip_ratio_high=0.28"]
    assert main(argv) == 0
    assert "| grpo clip_ratio_high=0.28 eval_prompts=8 (seed 0) |" in capsys.readouterr().out   # run settings named too
    assert main(argv) == 2                                    # the folder holds a run now
    assert "pass --resume" in capsys.readouterr().err
    assert main(["compare", str(run)]) == 0
    assert "pass@1" in capsys.readouterr().out
    assert main(["plot", str(run), "--out", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 10_000
    import json
    config = json.loads((run / "config.json").read_text())
    assert config["method_settings"] == {"clip_ratio_high": "0.28"} and config["eval_every"] == 2


def test_run_labels_name_changed_run_settings_and_never_merge_runs(tmp_path):
    """Runs that differ in a TrainConfig field (not just the method's settings) get different
    labels, and two folders with the same label are both kept."""
    import json

    from minirl.cli import _load_runs, run_label
    from minirl.config import make_config

    for name, config in (("a", make_config("smoke", method="grpo")),
                         ("b", make_config("smoke", method="grpo", group_size=16)),
                         ("c", make_config("smoke", method="grpo"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config.to_dict()))
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"step": 0}) + "\n")
    assert run_label(tmp_path / "a") == "grpo (seed 0)"
    assert run_label(tmp_path / "b") == "grpo group_size=16 (seed 0)"
    runs = _load_runs([str(tmp_path / n) for n in "abc"])
    assert len(runs) == 3 and f"grpo (seed 0) [{tmp_path / 'c'}]" in runs
