"""minirl.profiles is the one table of sizes: the run profiles, their policies and warm starts, and what each
notebook trains in each of its profiles. Every entry makes a valid config, the notebooks read it instead of
a SIZES dict of their own, and the run profiles keep the values the shipped runs were trained with."""
import json
import re
from pathlib import Path

import pytest

from minirl.config import make_config
from minirl.profiles import COURSE, PROFILES, SIZES, TinySize, course_sizes, describe, policy_size, tiny_profiles

ROOT = Path(__file__).resolve().parents[1]


def course_entries():
    return [(notebook, profile) for notebook, profiles in COURSE.items() for profile in profiles]


@pytest.mark.parametrize("notebook, profile", course_entries(), ids=lambda value: value)
def test_every_course_entry_makes_a_valid_config(notebook, profile):
    sizes = course_sizes(notebook, profile)
    config = make_config(sizes["profile"], **sizes["train"])
    assert config.profile == sizes["profile"]
    assert all(getattr(config, name) == value for name, value in sizes["train"].items())


def test_every_notebook_has_the_three_profiles():
    assert {notebook: sorted(profiles) for notebook, profiles in COURSE.items()} == {
        notebook: ["cpu", "gpu", "smoke"] for notebook in COURSE}


def test_the_course_names_the_run_profile_each_notebook_trains():
    assert course_sizes("03_loss_interventions", "cpu")["profile"] == "smoke"      # the shipped runs' policy
    assert course_sizes("03_loss_interventions", "cpu")["train"]["steps"] == 120
    assert course_sizes("00_quickstart", "cpu")["profile"] == "cpu"
    assert course_sizes("04_steps_and_tools", "gpu")["profile"] == "smoke"         # GSM8K has no steps or tool
    assert describe("smoke") == "run profile 'smoke' (policy h64x2)"
    assert describe("gpu") == "run profile 'gpu' (Qwen/Qwen2.5-0.5B-Instruct)"


def test_course_sizes_is_a_copy():
    course_sizes("03_loss_interventions", "cpu")["train"]["steps"] = 1
    assert COURSE["03_loss_interventions"]["cpu"]["train"]["steps"] == 120


@pytest.mark.parametrize("notebook", COURSE)
def test_notebooks_read_the_course_table_instead_of_a_sizes_dict(notebook):
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert not re.search(r"^\s*SIZES\b", code, re.M), f"{notebook} still has a SIZES dict of its own"
    assert f'course_sizes("{notebook}", profile)' in code


def test_every_run_profile_names_a_policy_in_sizes():
    assert {name: p.policy for name, p in PROFILES.items()} == {"smoke": "h64x2", "cpu": "h128x4", "gpu": None}
    assert all(p.policy in SIZES for p in PROFILES.values() if p.policy is not None)
    assert SIZES == {"h64x2": TinySize(64, 2, 192), "h128x4": TinySize(128, 4, 384)}
    assert policy_size("smoke") is SIZES["h64x2"] and policy_size("cpu") is SIZES["h128x4"]
    assert tiny_profiles() == ["smoke", "cpu"]


def test_the_run_profiles_keep_their_values():
    assert PROFILES["smoke"].train == dict(prompts_per_step=16, group_size=8, lr=3e-4, eval_prompts=64, eval_every=10)
    assert PROFILES["cpu"].train == dict(prompts_per_step=32, group_size=8, lr=2e-4, eval_prompts=128, eval_every=20)
    assert PROFILES["gpu"].train["init"] == "Qwen/Qwen2.5-0.5B-Instruct" and PROFILES["gpu"].train["backend"] == "hf"
    assert PROFILES["smoke"].warmstart == dict(steps=600, lr=3e-3)
    assert PROFILES["cpu"].warmstart == dict(steps=600, lr=1e-3)
    assert PROFILES["gpu"].warmstart is None


@pytest.mark.parametrize("call, message", [
    (lambda: course_sizes("09_nowhere", "cpu"), "unknown notebook '09_nowhere'; choose one of: 00_quickstart, "),
    (lambda: course_sizes("03_loss_interventions", "laptop"),
     "unknown profile 'laptop'; choose one of: smoke, cpu, gpu"),
    (lambda: make_config("laptop"), "unknown profile 'laptop'; choose one of: smoke, cpu, gpu"),
    (lambda: policy_size("gpu"), "profile 'gpu' has no tiny policy; choose one of: smoke, cpu"),
], ids=["notebook", "profile", "make_config", "policy_size"])
def test_an_unknown_name_is_refused_with_the_choices(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)
