"""MinirlGRPOTrainer where TRL's users run it: `accelerate launch --num_processes 2`, two processes
on CPU (gloo), each generating and training on its half of the batch, DDP averaging the gradients.

The test launches this file as the script (`train_one_process` below, run by both processes) for two
optimizer steps of Clip-Cov on the tiny warm-started policy, then checks what each process left: two
processes in one gloo group, trained on different prompts, holding the same weights afterwards
(bitwise) and weights that moved, and the method's metrics in TRL's logs, the same on both processes
(the adapter gathers them over processes). About 30 s on 2 idle cores.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="TRL is optional: pip install minirl[trl]")

METHOD = "clip_cov"
LOGGED = ("entropy", "cov_mean", "cov_top", "clip_frac", "ppo_kl", "pg_loss", f"{METHOD}/n_detached")


def weights_digest(model) -> str:
    """sha256 of every parameter's bytes, in order: equal only for bitwise-equal models."""
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_one_process(out: Path) -> None:
    """What each launched process runs: two TRL steps of minirl's Clip-Cov, then its report."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig

    from minirl.integrations.trl import MinirlGRPOTrainer
    from minirl.models import load_policy
    from minirl.run_folder import write_atomic
    from minirl.tasks import get_task
    from minirl.warmstart import default_path

    task = get_task("countdown")
    prompts_seen = set()

    def countdown_reward(prompts, completions, index, **_):
        """The task's reward plus a small term that tells different completions apart (a group of
        distinct wrong answers still has a signal). Called on this process's completions only."""
        prompts_seen.update(index)
        return [task.reward(text, task.train[i]) + 0.01 * (sum(map(ord, text)) % 17)
                for text, i in zip(completions, index)]

    model, tokenizer = load_policy(default_path("countdown", "smoke"))
    before = weights_digest(model)
    data = Dataset.from_dict({"prompt": [e.prompt for e in task.train[:16]], "index": list(range(16))})
    args = GRPOConfig(output_dir=str(out / "trl"), use_cpu=True, bf16=False, report_to=[], disable_tqdm=True, seed=0,
                      per_device_train_batch_size=4, num_generations=4, gradient_accumulation_steps=1,
                      max_completion_length=8, max_steps=2, gradient_checkpointing=False, learning_rate=3e-3,
                      logging_steps=1, save_strategy="no")
    trainer = MinirlGRPOTrainer(model=model, reward_funcs=countdown_reward, args=args, train_dataset=data,
                                processing_class=tokenizer, method=METHOD,
                                method_settings={"clip_cov_ratio": "0.2", "clip_cov_lb": "-10", "clip_cov_ub": "10"})
    trainer.train()
    state = trainer.accelerator.state
    report = dict(rank=state.process_index, processes=state.num_processes, distributed=str(state.distributed_type),
                  backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
                  before=before, after=weights_digest(trainer.model), prompts=sorted(prompts_seen),
                  logs=[row for row in trainer.state.log_history if "loss" in row])
    write_atomic(out / f"rank{state.process_index}.json", json.dumps(report))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_the_same_model_and_log_the_methods_metrics(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINIRL_PROFILE")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", ACCELERATE_USE_CPU="true", HF_HUB_OFFLINE="1",
               MINIRL_TRL_ACCELERATE_OUT=str(tmp_path))
    # --multi_gpu picks torch's distributed launcher; without CUDA each process joins a gloo group on CPU
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()), __file__]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"accelerate launch failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, report in enumerate(reports):
        assert report["rank"] == rank and report["processes"] == 2
        assert report["distributed"] == "DistributedType.MULTI_CPU" and report["backend"] == "gloo", report
    assert reports[0]["before"] == reports[1]["before"]
    assert set(reports[0]["prompts"]).isdisjoint(reports[1]["prompts"]), "both processes trained on the same prompts"
    assert reports[0]["after"] == reports[1]["after"], "the two processes hold different weights after training"
    assert reports[0]["after"] != reports[0]["before"], "the weights did not move"
    for report in reports:
        assert [row["step"] for row in report["logs"]] == [1, 2]
        for row in report["logs"]:
            for key in LOGGED:
                assert key in row and row[key] == row[key], (key, row)                  # present, not NaN
    assert [[row[k] for k in LOGGED] for row in reports[0]["logs"]] == \
        [[row[k] for k in LOGGED] for row in reports[1]["logs"]]
    assert any(row[f"{METHOD}/n_detached"] > 0 for row in reports[0]["logs"])          # Clip-Cov acted
    assert any(row["grad_norm"] > 0 for row in reports[0]["logs"])


if __name__ == "__main__":                                  # run by each process that `accelerate launch` starts
    train_one_process(Path(os.environ["MINIRL_TRL_ACCELERATE_OUT"]))
