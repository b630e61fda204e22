"""The verl tests where verl is installed: a second virtual environment, outside the checkout, with
verl 0.9.1 (`--no-deps`, as minirl/integrations/verl.py says) and the few packages importing its
policy losses needs, minirl installed into it, and tests/test_parity_verl.py and
tests/test_integration_verl.py run there. In the course's own environment those two files skip
(verl pins transformers < 5.11, the TRL extra needs a newer one); here they must pass, none
skipped, so a minirl change that verl would disagree with fails `python -m pytest -q`.

One fixture builds the environment once per session (a few minutes: ray and torch are large wheels;
torch is the course environment's version, whose CPU wheel the package index serves) and runs the
two files; the test reads what it left. The environment holds torch, VERL_PINS (found by importing
`verl.trainer.ppo.core_algos` and `verl.workers.config` until nothing was missing, each at verl's
own pin), verl, minirl (`--no-deps`: its methods need only torch) and pytest.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from package_sources import copy_sources

ROOT = Path(__file__).resolve().parents[1]
VERL = "verl==0.9.1"
VERL_PINS = [r.split(";")[0].strip() for r in metadata.requires("minirl") if 'extra == "verl"' in r]
"""pyproject's `verl` extra: verl 0.9.1's own pins for what `import verl.trainer.ppo.core_algos,
verl.workers.config` imports (the README's install line uses the same extra)."""
VERL_TESTS = ["test_parity_verl.py", "test_integration_verl.py"]


def _run(command, what, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (f"{what} failed ({' '.join(map(str, command))}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def verl_run(tmp_path_factory):
    """Build the environment, run the verl tests in it: {output, seconds to build, seconds to test}."""
    import torch

    base = tmp_path_factory.mktemp("verl_env")
    source = copy_sources(base / "source")        # the build writes nothing into the checkout
    tests = base / "tests"                        # the test files alone: nothing puts the checkout on sys.path
    tests.mkdir()
    for name in VERL_TESTS:
        shutil.copy(ROOT / "tests" / name, tests / name)
    start = time.time()
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], "creating the verl environment")
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q"]
    _run(pip + [f"torch=={torch.__version__.split('+')[0]}", *VERL_PINS, "pytest"], "installing verl's pins")
    _run(pip + ["--no-deps", VERL, str(source)], "installing verl (--no-deps) and minirl")
    built = time.time()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MINIRL_PROFILE")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    where = _run([python, "-c", "import minirl, verl; print(minirl.__file__, verl.__version__)"],
                 "importing minirl and verl", cwd=base, env=env).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == VERL.split("==")[1], where
    result = subprocess.run([python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *VERL_TESTS],
                            cwd=tests, env=env, capture_output=True, text=True, timeout=600)
    print(f"verl environment: {built - start:.0f} s to build, {time.time() - built:.0f} s to test")
    return dict(returncode=result.returncode, output=result.stdout + result.stderr,
                build_s=built - start, test_s=time.time() - built)


def test_the_verl_tests_pass_with_verl_installed(verl_run):
    output = verl_run["output"]
    assert verl_run["returncode"] == 0, f"the verl tests failed in the verl environment:\n{output[-6000:]}"
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"=*\s*\d+ passed in .*", summary), f"some verl tests did not run: {summary}\n{output[-3000:]}"
    assert int(re.search(r"(\d+) passed", summary).group(1)) >= 70      # every mode, every plug-in
