"""The course as a student meets it: minirl built into a wheel, installed into a fresh virtual
environment outside the checkout, the notebooks copied to a folder of their own, and every
notebook run there with papermill in the fast profile (`smoke`). Then the story each run tells
is checked against what its text says: entropy falls by at least half, pass@1 rises, pass@k
falls; the comparisons are read from the shipped results; nothing was written into the
installed package.

One fixture does the slow part once (~1-2 min to install, then the eleven notebooks two at a time,
each kernel on one thread); the tests below read what it left.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from package_sources import copy_sources

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILE = "smoke"                                 # the fast profile: CI and workshops run it


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _site_files(venv: Path) -> dict[str, float]:
    site = next(venv.glob("lib/python*/site-packages"))
    return {str(p.relative_to(site)): p.stat().st_mtime for p in site.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed_course(tmp_path_factory):
    """Build, install, copy, run: {notebook: (executed notebook or None, error text, seconds)}."""
    pytest.importorskip("papermill")
    base = tmp_path_factory.mktemp("installed")
    source = copy_sources(base / "source")        # the build writes nothing into the checkout
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(source)])
    wheel = next((base / "dist").glob("minirl-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    import torch
    _run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements.txt"),
          f"torch=={torch.__version__.split('+')[0]}", str(wheel), "papermill", "ipykernel"])
    where = _run([str(python), "-c", "import minirl, sys; print(minirl.__file__)"], cwd=base).stdout.strip()
    assert str(venv) in where, f"the fresh environment imports minirl from {where}"
    course = base / "course"                      # the student's copy of notebooks/
    shutil.copytree(ROOT / "notebooks", course)
    before = _site_files(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINIRL_PROFILE", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def run(path):
        out = base / "executed" / path.name
        out.parent.mkdir(exist_ok=True)
        start = time.time()
        result = subprocess.run([str(python), "-m", "papermill", path.name, str(out), "-p", "profile", PROFILE,
                                 "-k", "python3", "--no-progress-bar"], cwd=course, env=env,
                                capture_output=True, text=True, timeout=1200)
        seconds = time.time() - start
        return path.stem, (out if result.returncode == 0 else None, result.stderr[-4000:], seconds)

    with ThreadPoolExecutor(max_workers=2) as pool:
        ran = dict(pool.map(run, [course / p.name for p in NOTEBOOKS]))
    after = _site_files(venv)
    for stem, (_, _, seconds) in ran.items():
        print(f"{stem}: {seconds:.0f} s")
    return dict(ran=ran, course=course, changed=sorted(k for k in after if before.get(k) != after[k]))


def _outputs(executed: Path) -> tuple[str, list[dict]]:
    outputs = [o for c in json.loads(executed.read_text())["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    return "".join("".join(o.get("text", "")) for o in outputs), outputs


def _outcomes(installed_course, stem) -> dict:
    path = installed_course["course"] / "outcomes" / f"{stem}.json"
    assert path.exists(), f"{stem} recorded no outcomes (minirl.course.record_outcomes)"
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_from_the_installed_package(installed_course, path):
    executed, error, seconds = installed_course["ran"][path.stem]
    assert executed is not None, f"{path.name} failed in the installed environment:\n{error}"
    text, outputs = _outputs(executed)
    assert f"profile {PROFILE!r}" in text                                   # the parameter reached the sizes
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was shown"


def test_nothing_is_written_into_the_installed_package(installed_course):
    assert installed_course["changed"] == [], f"files written into site-packages: {installed_course['changed'][:10]}"


def test_figures_are_saved_under_the_working_folder(installed_course):
    figures = sorted(p.name for p in (installed_course["course"] / "figures").glob("*.png"))
    assert figures, "no notebook saved a figure under ./figures"
    assert all(name[:2].isdigit() for name in figures), figures             # each named after its notebook


@pytest.mark.parametrize("stem", ["00_quickstart", "02_entropy_collapse"])
def test_the_fast_profile_tells_the_collapse(installed_course, stem):
    """What the text of 00 and 02 says: entropy falls by at least half, pass@1 rises, pass@k falls."""
    o = _outcomes(installed_course, stem)
    assert o["entropy_last"] <= 0.5 * o["entropy_first"], o
    assert o["pass_at_1_last"] > o["pass_at_1_first"], o
    assert o["pass_at_k_last"] < o["pass_at_k_first"], o


def test_the_fast_profile_tells_the_law_on_the_network(installed_course):
    """02's text: on the clean probe step (plain SGD at a small constant η) the law's first-order predictions track
    the realised entropy change at every step (r ≥ 0.9); on the trainer's own update they track it in
    the early, small-step half at least, far better than the batch covariance; the top 0.2 % of
    tokens by Cov_t carry much more of the natural drain than of the vanilla one."""
    o = _outcomes(installed_course, "02_entropy_collapse")
    assert o["law_probe_r"] >= 0.9 and o["law_probe_lemma_r"] >= 0.9, o
    assert o["law_prediction_r_halves"]["first"] >= 0.8 and o["law_lemma_r"] >= 0.7, o
    assert o["law_prediction_r"] > abs(o["cov_entropy_change_r"]), o
    top = o["top_shares"]["0.002"]
    assert top["natural"] > 5 * max(top["vanilla"], 0.0), o


@pytest.mark.parametrize("stem", ["03_loss_interventions", "04_branching_rollouts", "04_rewards_and_advantages",
                                  "04_steps_and_tools", "08_results_dashboard"])
def test_the_comparisons_come_from_the_shipped_results(installed_course, stem):
    o = _outcomes(installed_course, stem)
    assert o["source"] == "shipped", o


def test_the_fast_profile_tells_the_budget_story_of_04(installed_course):
    """What 04's text says about budgets: `grpo G=16` samples twice GRPO's tokens, the branching methods
    (CURE, ETTRL) and the voters (TTRL, EVOL-RL) more than GRPO, the advantage-only methods what GRPO
    samples; the label-free methods record how often their vote was right; each task of 04_steps_and_tools
    has its own grpo and five seeds."""
    rollouts, rewards = _outcomes(installed_course, "04_branching_rollouts"), _outcomes(installed_course,
                                                                                        "04_rewards_and_advantages")
    for o in (rollouts, rewards):
        assert o["tokens_vs_grpo"]["grpo G=16"] == pytest.approx(2.0, rel=0.02), o
    assert min(rollouts["tokens_vs_grpo"][m] for m in ("cure", "ettrl")) > 1.5, rollouts
    assert min(rewards["tokens_vs_grpo"][m] for m in ("ttrl", "evol_rl")) > 1.5, rewards
    for m in ("riskpo", "entropy_adv alpha 2 kappa 1", "spear T_r 30"):
        assert rewards["tokens_vs_grpo"][m] == pytest.approx(1.0, rel=0.05), rewards
    assert set(rewards["label_accuracy_last_20"]) == {"ttrl", "evol_rl"}, rewards
    assert all(0 <= v <= 1 for v in rewards["label_accuracy_last_20"].values()), rewards
    steps = _outcomes(installed_course, "04_steps_and_tools")
    for task, n in (("countdown_steps", 3), ("countdown_tool", 6)):
        o = steps[task]
        assert o["n_methods"] == n and o["seeds"] == 5 and "grpo" in o["entropy_kept"], steps


def test_the_fast_profile_tells_the_attention_story(installed_course):
    """05's text: at a high learning rate attention entropy collapses; σReparam's is higher on average (at
    two seeds its Welch interval is wide, and the notebook prints the verdict it gives); the entropy lower
    bound holds on every query."""
    o = _outcomes(installed_course, "05_attention_entropy")
    assert o["high_lr_entropy_lower"] and o["high_lr_attn_entropy"] < o["low_lr_attn_entropy"], o
    assert o["sigma_reparam_attn_entropy"] > o["high_lr_attn_entropy"], o
    assert o["bound_violations"] == 0 and o["bound_rows"] > 0, o


def test_the_fast_profile_tells_the_test_time_story(installed_course):
    """06's text: Tent collapses on the wild streams (most predictions in one class, accuracy below
    the unadapted model's); SAR's reliable-sample filter and reset keep it from collapsing."""
    o = _outcomes(installed_course, "06_test_time_adaptation")
    assert o["tent_collapsed_label_shift"] and o["tent_accuracy_label_shift"] < o["source_accuracy_label_shift"], o
    assert o["tent_top_class_fraction_label_shift"] > 0.5, o
    assert not o["sar_collapsed_label_shift"], o


def test_the_fast_profile_tells_the_search_story(installed_course):
    """07's text: plain particle filtering loses its ancestors early (impoverishment); the entropic
    one keeps more of them; perplexity detects the prompts GRPO trained on better than before RL."""
    o = _outcomes(installed_course, "07_search_and_detection")
    n = o["impoverishment_n"]
    assert o["epf_final_ancestors"] > o["pf_final_ancestors"], o
    assert o["pf_final_ancestors"] < n, o
    assert o["auc_after_perplexity"] > o["auc_before_perplexity"], o
