"""Issue 18, tried as an adversary would: every bad input is one line naming the field, the value and
what is allowed; a run folder is never lost or mixed; nothing in a checkpoint runs; a diverging run
stops at its step keeping the last good checkpoint; a reward cannot hang the process from a thread;
and a batch without signal leaves the policy exactly as it was, for every registered method."""
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from minirl import METHODS
from minirl.checkpoints import load_checkpoint_file, load_plain
from minirl.cli import main
from minirl.config import TrainConfig, make_config, max_seed
from minirl.grid import GridError, expand
from minirl.run_folder import KILLED_ROWS
from minirl.tasks import get_task
from minirl.metrics import read_metrics
from minirl.trainer import Diverged, Trainer, train

TINY = dict(prompts_per_step=4, eval_prompts=8, eval_samples=4, eval_k=2, eval_every=100)


def tiny(**overrides):
    """A run of a few seconds: 4 prompts × 8 samples a step, 8 eval prompts × 4 samples."""
    return make_config("smoke", **{**TINY, "steps": 2, "checkpoint_every": 1, **overrides})


def steps_of(folder):
    return [row["step"] for row in read_metrics(folder)]


def one_line_error(argv, capsys) -> str:
    """Run the CLI; it must exit 2 with one line and no traceback. Returns the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- 1. validation in one place
@pytest.mark.parametrize("bad, expected", [
    ({"steps": 0}, "steps=0 is not allowed: give a whole number ≥ 1"),
    ({"steps": -3}, "steps=-3 is not allowed"),
    ({"eval_every": 0}, "eval_every=0 is not allowed: give a whole number ≥ 1"),
    ({"checkpoint_every": 0}, "checkpoint_every=0 is not allowed"),
    ({"prompts_per_step": 0}, "prompts_per_step=0 is not allowed"),
    ({"eval_samples": 0}, "eval_samples=0 is not allowed"),
    ({"eval_prompts": 0}, "eval_prompts=0 is not allowed"),
    ({"group_size": 1}, "group_size=1 is not allowed: give a whole number ≥ 2"),
    ({"group_size": None}, "group_size=None is not allowed"),
    ({"eval_k": 5, "eval_samples": 4}, "eval_k=5 is not allowed: give a whole number from 1 to eval_samples=4"),
    ({"lr": float("inf")}, "lr=inf is not allowed: give a finite number > 0"),
    ({"lr": 0.0}, "lr=0.0 is not allowed"),
    ({"max_grad_norm": float("nan")}, "max_grad_norm=nan is not allowed: give a finite number > 0"),
    ({"kl_coef": float("nan")}, "kl_coef=nan is not allowed: give a finite number ≥ 0"),
    ({"top_p": 1.5}, "top_p=1.5 is not allowed: give a finite number > 0 and ≤ 1"),
    ({"seed": -1}, "seed=-1 is not allowed: give a whole number ≥ 0"),
    ({"seed": 100_000_000_000_000}, f"seed=100000000000000 is not allowed: give a whole number from 0 to {max_seed(200)}"),
    ({"task": "nope"}, "unknown task 'nope'; choose one of: countdown, arithmetic"),
    ({"steps": "abc"}, "steps='abc' is not allowed: give a whole number ≥ 1"),
    ({"dynamic_sampling": "yes"}, "dynamic_sampling='yes' is not allowed: give true or false"),
    ({"method_settings": {"clip_ratio_low": "nan"}}, "method setting clip_ratio_low=nan is not allowed: give a finite"),
    ({"method": "kl_ref", "kl_coef": 0.1}, "method 'kl_ref' has its own KL term"),
])
def test_every_bad_value_is_one_line_naming_field_value_and_what_is_allowed(bad, expected):
    with pytest.raises(ValueError) as err:
        make_config("smoke", **bad)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_method_with_a_kl_term_of_its_own_refuses_the_runs_kl_by_its_declaration_not_its_name():
    from minirl.methods import METHODS, register_method
    from minirl.methods.grpo import grpo_loss

    register_method("own_kl_probe", own_kl_setting="clip_ratio_c")(grpo_loss)   # any name: what it declares counts
    assert METHODS["own_kl_probe"].summary == ""                  # grpo_loss has no docstring of its own
    try:
        with pytest.raises(ValueError, match=r"method 'own_kl_probe' has its own KL term \(--set own_kl_probe.clip_ratio_c"):
            make_config("smoke", method="own_kl_probe", kl_coef=0.1)
        assert make_config("smoke", method="own_kl_probe").kl_coef == 0.0
        assert METHODS["kl_ref"].own_kl_setting == "kl_loss_coef" and METHODS["grpo"].own_kl_setting is None
    finally:
        del METHODS["own_kl_probe"]


def test_the_largest_allowed_seed_fits_every_seed_the_run_draws():
    seed = max_seed(200)
    make_config("smoke", seed=seed)
    torch.manual_seed(seed * 1_000_003 + 10**6 + 200)              # the last evaluation's seed: no overflow
    with pytest.raises(ValueError, match="seed="):
        make_config("smoke", seed=seed + 1)


def test_a_config_built_directly_is_checked_before_any_model_loads():
    with pytest.raises(ValueError, match="steps=0 is not allowed"):
        Trainer(TrainConfig(profile="smoke", steps=0))


@pytest.mark.parametrize("flags, expected", [
    (["--set", "method=dapo"], "--set 'method=dapo': method is not set with --set; use --method"),
    (["--set", "seed=3"], "use --seed"),
    (["--set", "profile=cpu"], "use --profile"),
    (["--set", "group_size=none"], "group_size=None is not allowed: give a whole number ≥ 2"),
    (["--set", "eval_every=0"], "eval_every=0 is not allowed"),
    (["--set", "checkpoint_every=0"], "checkpoint_every=0 is not allowed"),
    (["--set", "prompts_per_step=0"], "prompts_per_step=0 is not allowed"),
    (["--set", "eval_samples=0"], "eval_samples=0 is not allowed"),
    (["--set", "eval_prompts=0"], "eval_prompts=0 is not allowed"),
    (["--set", "steps=0"], "steps=0 is not allowed"),
    (["--set", "steps=-3"], "steps=-3 is not allowed"),
    (["--set", "clip_ratio_low=nan"], "method setting clip_ratio_low=nan is not allowed"),
    (["--set", "kl_coef=nan"], "kl_coef=nan is not allowed"),
    (["--set", "lr=inf"], "lr=inf is not allowed"),
    (["--seed", "100000000000000"], "seed=100000000000000 is not allowed"),
    (["--set", "task=nope"], "unknown task 'nope'; choose one of: countdown"),
])
def test_the_cli_refuses_bad_settings_in_one_line_before_the_model_loads(flags, expected, tmp_path, capsys):
    err = one_line_error(["train", "--profile", "smoke", "--out", str(tmp_path / "run"), *flags], capsys)
    assert expected in err
    assert not (tmp_path / "run").exists()                           # nothing was started


@pytest.mark.parametrize("grid, expected", [
    ({"methods": 5}, "grid key 'methods' must be a list of method names or a mapping"),
    ({"methods": ["grpo"], "parameters": [1, 2]}, "grid key 'parameters' must be a mapping"),
    ({"methods": {"g": ["grpo"]}}, "variant 'g': give a method name or a mapping"),
    ({"methods": ["grpo"], "parameters": {"group_size": 1}}, "variant 'grpo': group_size=1 is not allowed"),
    ({"methods": ["grpo"], "parameters": {"steps": "abc"}}, "variant 'grpo': setting steps='abc' is not a number"),
    ({"methods": ["grpo"], "parameters": {"steps": 0}}, "variant 'grpo': steps=0 is not allowed"),
    ({"methods": ["grpo"], "seeds": [0, -2]}, "variant 'grpo': seed=-2 is not allowed"),
])
def test_a_grid_that_would_fail_in_every_cell_is_refused_before_the_first(grid, expected, tmp_path, capsys):
    with pytest.raises(GridError) as err:
        expand(grid)
    assert expected in str(err.value)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    assert expected in one_line_error(["reproduce", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_and_set_values_are_one_line(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text("methods: [grpo\nseeds: [0]\n")
    err = one_line_error(["reproduce", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "out")], capsys)
    assert "grid.yaml line" in err and "is not valid YAML" in err
    err = one_line_error(["reproduce", "--method", "grpo", "--profile", "smoke", "--set", "steps=abc",
                          "--out", str(tmp_path / "out")], capsys)
    assert "setting steps='abc' is not a number" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 2. run folders: nothing lost or mixed
@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A 4-step run (checkpoints every 2) killed during step 4: rows 0..3, checkpoint at step 2."""
    folder = tmp_path_factory.mktemp("killed") / "run"
    trainer = Trainer(tiny(steps=4, checkpoint_every=2), out=folder)
    real_step = trainer.train_step

    def dies_in_step_4():
        if trainer.step == 3:
            raise KeyboardInterrupt
        return real_step()
    trainer.train_step = dies_in_step_4
    with pytest.raises(KeyboardInterrupt):
        trainer.run(progress=False)
    assert steps_of(folder) == [0, 1, 2, 3]
    return folder


@pytest.fixture
def killed(killed_run, tmp_path):
    return shutil.copytree(killed_run, tmp_path / "run")


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_starts_again(resume, tmp_path, capsys):
    folder = tmp_path / "run"
    trainer = Trainer(tiny(steps=3, checkpoint_every=3), out=folder)

    def killed_in_step_1():
        raise KeyboardInterrupt
    trainer.train_step = killed_in_step_1
    with pytest.raises(KeyboardInterrupt):
        trainer.run(progress=False)
    assert steps_of(folder) == [0] and not (folder / "checkpoint.pt").exists()
    rows = train(tiny(steps=3, checkpoint_every=3), folder, resume=resume, progress=False)
    assert [r["step"] for r in rows] == [0, 1, 2, 3] == steps_of(folder)
    assert steps_of(folder / KILLED_ROWS) == [0]                     # the old rows, moved aside
    assert "starting it again from step 0" in capsys.readouterr().err


def test_resume_drops_a_line_cut_by_a_kill_with_a_warning(killed, capsys):
    with open(killed / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "entropy": 0.3')                         # what a kill while writing leaves
    assert steps_of(killed) == [0, 1, 2, 3]                            # readers leave the cut line out
    rows = train(tiny(steps=4, checkpoint_every=2), killed, resume=True, progress=False)
    assert [r["step"] for r in rows] == [3, 4] and steps_of(killed) == [0, 1, 2, 3, 4]
    assert "dropped its last line, cut off at 26 characters (a kill while writing it)" in capsys.readouterr().err


@pytest.mark.parametrize("damage, expected", [
    (lambda lines: [], "metrics.jsonl is empty, but the checkpoint is at step 2"),
    (lambda lines: lines[:2], "metrics.jsonl ends at step 1, but the checkpoint is at step 2"),
    (lambda lines: [lines[0], lines[2], lines[3]], "metrics.jsonl line 2 holds step 2 where step 1 was due: "
                                                   "steps 1..1 are missing"),
    (lambda lines: lines + lines[:2], "metrics.jsonl line 5 holds step 0 where step 4 was due: a second history"),
    (lambda lines: [lines[0], lines[1][:30], *lines[2:]], "metrics.jsonl line 2 is not a JSON row"),
])
def test_resume_refuses_a_history_that_lost_or_mixed_rows_naming_the_file_and_line(damage, expected, killed, capsys):
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    (killed / "metrics.jsonl").write_text("".join(line + "\n" for line in damage(lines)))
    before = (killed / "metrics.jsonl").read_text()
    err = one_line_error(["train", "--profile", "smoke", "--out", str(killed), "--resume", "--quiet",
                          *[f"--set={k}={v}" for k, v in {**TINY, "checkpoint_every": 2}.items()], "--steps", "4"],
                         capsys)
    assert expected in err and str(killed) in err
    assert (killed / "metrics.jsonl").read_text() == before           # refused: nothing rewritten


def test_reading_a_damaged_history_names_the_file_and_line(killed):
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    (killed / "metrics.jsonl").write_text("".join(line + "\n" for line in [lines[0], lines[1][:30], *lines[2:]]))
    with pytest.raises(ValueError, match=f"{killed / 'metrics.jsonl'} line 2 is not a JSON row"):
        read_metrics(killed)


def test_the_resume_rewrite_of_metrics_is_atomic(killed, monkeypatch):
    """Killed while dropping the rows after the checkpoint, the history stays whole (it was
    write_text, which empties the file first)."""
    before = (killed / "metrics.jsonl").read_text()

    def killed_here(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr("minirl.run_folder.os.replace", killed_here)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny(steps=4, checkpoint_every=2), out=killed).load_checkpoint()
    assert (killed / "metrics.jsonl").read_text() == before
    assert sorted(p.name for p in killed.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]   # no temporary left


def test_a_trainer_refuses_a_folder_that_holds_a_run(killed):
    """Notebook 00 with `out` = a run folder used to append a second history to it."""
    before = (killed / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        Trainer(tiny(steps=4, checkpoint_every=2), out=killed).run(progress=False)
    assert (killed / "metrics.jsonl").read_text() == before


def test_resume_never_rewrites_config_json_to_contradict_the_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "run")
    flags = ["--profile", "smoke", "--out", out, "--quiet", *[f"--set={k}={v}" for k, v in TINY.items()]]
    assert main(["train", *flags, "--steps", "2", "--set", "checkpoint_every=1"]) == 0
    config = (tmp_path / "run" / "config.json").read_text()
    capsys.readouterr()
    err = one_line_error(["train", *flags, "--set", "checkpoint_every=1", "--resume", "--steps", "1"], capsys)
    assert "with steps=1: its checkpoint is already at step 2; give steps ≥ 2" in err
    assert (tmp_path / "run" / "config.json").read_text() == config
    assert main(["train", *flags, "--set", "checkpoint_every=1", "--resume"]) == 0   # no --steps: the saved run's
    assert (tmp_path / "run" / "config.json").read_text() == config and steps_of(out) == [0, 1, 2]


def test_reproduce_locks_its_results_folder_and_takes_over_a_stale_lock(tmp_path, capsys):
    from minirl.reproduce import LOCK, results_lock

    with results_lock(tmp_path):
        holder = json.loads((tmp_path / LOCK).read_text())
        with pytest.raises(GridError) as err, results_lock(tmp_path):
            pass
        assert f"pid {os.getpid()} on {socket.gethostname()}, started {holder['started']}" in str(err.value)
    assert not (tmp_path / LOCK).exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / LOCK).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": "earlier"}))
    with results_lock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert "was left by a process that no longer runs; taking it over" in capsys.readouterr().err


def test_a_second_reproduce_into_the_same_folder_is_refused_naming_the_first(tmp_path, capsys):
    from minirl.reproduce import LOCK

    args = ["reproduce", "--method", "grpo", "--profile", "smoke", "--out", str(tmp_path / "out"), "--no-report"]
    assert main([*args, "--dry-run"]) == 0                            # a dry run takes no lock
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "minirl-results.json").write_text(json.dumps({"schema": 1}))
    (tmp_path / "out" / LOCK).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                     "started": "2026-01-01 10:00:00"}))
    capsys.readouterr()
    err = one_line_error(args, capsys)
    assert f"being written by another `python -m minirl reproduce` (pid {os.getpid()}" in err
    assert "started 2026-01-01 10:00:00" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([LOCK, "minirl-results.json"])   # untouched


def test_a_finished_cell_never_keeps_an_error_txt(tmp_path, monkeypatch):
    import papermill

    from minirl.grid import Cell, find_notebook
    from minirl.reproduce import run_cell

    def notebook_that_trains(notebook, output, parameters, **kwargs):
        out = parameters["out"]
        (tmp_path / out / "metrics.jsonl").write_text('{"step": 0}\n')
        (tmp_path / out / "error.txt").write_text("a failure another process recorded meanwhile\n")
    monkeypatch.setattr(papermill, "execute_notebook", notebook_that_trains)
    cell = Cell(str(find_notebook("00_quickstart")), "smoke", "grpo", "grpo", 0)
    assert run_cell(cell, tmp_path)[2] is None
    assert (tmp_path / cell.id / "done.json").exists() and not (tmp_path / cell.id / "error.txt").exists()


# ---------------------------------------------------------------- 3. no code from files
class RunsCode:
    """Unpickling this calls exec: what a crafted checkpoint.pt would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_a_crafted_checkpoint_runs_nothing_wherever_it_is_opened(killed, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    crafted = {"schema": 1, "step": 2, "config": tiny(steps=4, checkpoint_every=2).to_dict(), "x": RunsCode(marker)}
    torch.save(crafted, killed / "checkpoint.pt")
    torch.load(killed / "checkpoint.pt", weights_only=False)          # the file really runs code when unpickled
    assert marker.exists()
    marker.unlink()

    err = one_line_error(["train", "--profile", "smoke", "--out", str(killed), "--resume", "--quiet", "--steps", "4",
                          *[f"--set={k}={v}" for k, v in {**TINY, "checkpoint_every": 2}.items()]], capsys)
    assert f"cannot read {killed / 'checkpoint.pt'}" in err and "nothing in it ran" in err
    from minirl.reproduce import _write_config
    from minirl.saved_policy import policy_at
    for opens in (lambda: policy_at(killed, 2), lambda: _write_config(killed), lambda: load_plain(killed / "checkpoint.pt")):
        with pytest.raises(ValueError, match="cannot read"):
            opens()
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "not a checkpoint"])
def test_a_damaged_checkpoint_is_one_line(damage, killed, capsys):
    path = killed / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "random bytes": os.urandom(4096), "empty": b""}.get(damage, b""))
    if damage == "not a checkpoint":
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError) as err:
        load_checkpoint_file(path)
    assert str(err.value).startswith(f"cannot read {path}: not a") and "\n" not in str(err.value)
    err = one_line_error(["train", "--profile", "smoke", "--out", str(killed), "--resume", "--quiet", "--steps", "4",
                          *[f"--set={k}={v}" for k, v in {**TINY, "checkpoint_every": 2}.items()]], capsys)
    assert f"cannot read {path}" in err


def test_spear_replay_buffer_survives_a_weights_only_checkpoint(tmp_path):
    from minirl.methods.spear import SPEARState
    from minirl.rollout import Rollout

    rows = Rollout(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long),
                   torch.ones(2, 4, dtype=torch.long), torch.full((2, 4), -0.5), torch.full((2, 4), 0.7), ["a", "b"],
                   torch.zeros(2, dtype=torch.long))
    state = SPEARState()
    state.buffer, state.mean_history = [(3, rows, torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5]))], [(3, [0.5])]
    torch.save({"method_state": state.state_dict()}, tmp_path / "s.pt")
    again = SPEARState()
    again.load_state_dict(load_plain(tmp_path / "s.pt")["method_state"])
    step, back, R, A = again.buffer[0]
    assert step == 3 and back.completions == ["a", "b"] and torch.equal(back.old_log_prob, rows.old_log_prob)
    assert torch.equal(A, torch.tensor([0.5, 0.5])) and again.mean_history == [(3, [0.5])]


# ---------------------------------------------------------------- 4. divergence detected
def test_a_nan_reward_stops_the_run_at_its_step_keeping_the_last_good_checkpoint(tmp_path):
    poisoned = {"on": False}
    countdown = get_task("countdown")
    task = dataclasses.replace(countdown, reward=lambda text, ex: float("nan") if poisoned["on"] else
                               countdown.reward(text, ex))
    trainer = Trainer(tiny(steps=3), out=tmp_path / "run", task=task)
    real_step = trainer.train_step

    def step():
        poisoned["on"] = trainer.step >= 1                           # step 2 onwards
        return real_step()
    trainer.train_step = step
    with pytest.raises(Diverged) as err:
        trainer.run(progress=False)
    message = str(err.value)
    assert message.startswith("training diverged at step 2: 32 reward value(s) are nan")      # 4 prompts × 8
    assert "a reward must be a finite number" in message and "(step 1) is kept" in message
    assert steps_of(tmp_path / "run") == [0, 1] and load_checkpoint_file(tmp_path / "run" / "checkpoint.pt")["step"] == 1
    resumed = Trainer(tiny(steps=3), out=tmp_path / "run")            # the folder is not stuck
    assert resumed.load_checkpoint() == 1


@pytest.mark.parametrize("lr", [1e20, 1e38])
def test_a_learning_rate_that_blows_up_stops_the_run_naming_it(lr, tmp_path):
    with pytest.raises(Diverged) as err:
        train(tiny(steps=2, lr=lr), tmp_path / "run", progress=False)
    assert str(err.value).startswith("training diverged at step 1:") and f"lr={lr:g} is likely too high" in str(err.value)
    assert "no checkpoint of this run was written" in str(err.value)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ---------------------------------------------------------------- 5. rewards cannot hang the process
def test_math_reward_returns_within_its_limit_from_a_thread():
    """The tower used to freeze the whole process from a thread (sympy holds the GIL). The check
    runs in a subprocess, so that this test fails rather than hangs if it ever freezes again."""
    script = textwrap.dedent("""
        import threading, time
        from minirl.math_data import GoldAnswer, math_reward
        from minirl.tasks import Example
        results, start = [], time.time()
        worker = threading.Thread(target=lambda: results.extend([
            math_reward("\\\\boxed{9^{9^{9^{9}}}}", Example("q", GoldAnswer("3"))),
            math_reward("so \\\\boxed{\\\\frac{1}{2}}", Example("q", GoldAnswer("0.5")))]))
        worker.start()
        worker.join(timeout=60)
        print(worker.is_alive(), results, round(time.time() - start))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=150)
    alive, results, seconds = done.stdout.strip().split(" ", 1)[0], done.stdout.split(" ", 1)[-1], None
    assert (alive, results.rsplit(" ", 1)[0]) == ("False", "[0.0, 1.0]"), done.stdout + done.stderr[-2000:]


# ---------------------------------------------------------------- 6. no signal, no update
ZERO_TERMS = {"entropy_bonus": {"entropy_coeff": "0"}, "epo": {"entropy_coeff": "0"},
              "evol_rl": {"entropy_coeff": "0"}, "tea_rl": {"cov_alpha": "0"}, "siren": {"entropy_coeff": "0"},
              "kl_ref": {"kl_loss_coef": "0"}}
"""The terms that act without advantages, switched off: with them the policy must not move either."""
TASKS = {"aepo_agentic": "countdown_tool", "empg": "countdown_steps", "pear": "countdown_steps"}   # their own tasks


def trainer_without_signal(method: str, settings: dict, **overrides) -> Trainer:
    """A trainer whose every trained advantage is exactly zero: the task rewards 0, and a method
    that makes its own advantages (label-free votes, replay, reshaping) has them zeroed after."""
    from minirl.warmstart import default_path

    task_name = TASKS.get(method, "countdown")
    config = tiny(method=method, steps=1, prompts_per_step=2, task=task_name, method_settings=settings,
                  init=str(default_path(task_name, "smoke")), **overrides)
    trainer = Trainer(config, task=dataclasses.replace(get_task(task_name), reward=lambda text, ex: 0.0))
    transform = trainer.method.transform_batch
    if transform is not None:
        def zeroed(*args):
            rollout, advantages, metrics = transform(*args)
            return rollout, advantages * 0, metrics
        trainer.method = dataclasses.replace(trainer.method, transform_batch=zeroed)
    return trainer


@pytest.mark.parametrize("method", list(METHODS))
def test_a_batch_without_signal_leaves_the_policy_unchanged(method, tmp_path):
    trainer = trainer_without_signal(method, ZERO_TERMS.get(method, {}), kl_coef=0.0)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.train_step()
    assert metrics["skipped_update"] == 1 and not trainer.optimizer.state
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    trainer.out = tmp_path                                             # and its state is a weights_only checkpoint
    trainer.save_checkpoint()
    assert load_checkpoint_file(tmp_path / "checkpoint.pt")["step"] == 1


@pytest.mark.parametrize("method", ["entropy_bonus", "epo", "evol_rl", "tea_rl", "siren", "kl_ref", "ttrl"])
def test_terms_that_act_without_advantages_still_act(method):
    """The exceptions, by their math: −c·H (entropy_bonus, epo, evol_rl), TEA-RL's bonus whose weights
    are α_cov/|o_i| when Cov = 0, SIREN's c·(Ĥ − H_anchor)², and a KL to the reference (kl_ref's
    own, and kl_coef, on by default for ttrl and evol_rl) all have a gradient where A = 0."""
    trainer = trainer_without_signal(method, {})
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert "skipped_update" not in trainer.train_step() and trainer.optimizer.state
    if method == "entropy_bonus":
        assert not all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert {m for m, spec in METHODS.items()
            if spec.acts_without_advantages and spec.acts_without_advantages(spec.make_config())} == set(ZERO_TERMS)
