"""The GPU check script (tests/gpu/check_qlora.py) runs its whole path on a CPU at a tiny shape,
so that it still works the day a GPU is lent to run it at the real shape."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "gpu" / "check_qlora.py"


def test_check_script_prints_one_json_line_with_every_figure():
    out = subprocess.run([sys.executable, str(SCRIPT), "--shape", "tiny", "--steps", "2", "--prompts", "2",
                          "--group", "4", "--max-new-tokens", "12", "--prompt-len", "16"],
                         capture_output=True, text=True, timeout=300, check=True,
                         env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": ""})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["rows_per_step"] == 8
    for method in ("grpo", "clip_cov"):
        figures = result[method]
        assert figures["loss_finite"] and figures["entropy_logged"]
        assert figures["step_s"] > 0 and figures["tokens_per_s"] > 0
        assert 1 <= figures["response_len"] <= 12
    assert result["trl_grpo"]["step_s"] > 0 and result["trl_over_minirl"] > 0      # TRL ran the same batch
