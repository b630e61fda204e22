"""The `hf` backend's QLoRA path (4-bit NF4 + LoRA + checkpointing), run on a CPU with the tiny
Qwen2 saved to a folder: exactly the code a real Qwen checkpoint takes on a GPU, without the hub."""
import shutil

import pytest
import torch

from minirl.config import make_config
from minirl.hf import is_lora, load_hf_policy
from minirl.rollout import gather_log_prob, policy_forward, sample
from minirl.metrics import read_metrics
from minirl.trainer import Trainer, train
from minirl.warmstart import default_path

bnb = pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A local model folder, as `save_pretrained` of any Qwen checkpoint would leave it."""
    folder = tmp_path_factory.mktemp("qwen-tiny")
    shutil.copytree(default_path("countdown", "smoke"), folder, dirs_exist_ok=True)
    return folder


def hf_config(model_dir, **overrides):
    settings = dict(backend="hf", init=str(model_dir), task="countdown", steps=2, prompts_per_step=4,
                    group_size=4, eval_every=100, eval_prompts=4, eval_samples=4, eval_k=2, checkpoint_every=1)
    return make_config("smoke", **{**settings, **overrides})


def test_loads_in_4bit_with_lora_on_every_projection_and_only_the_adapter_trains(model_dir):
    model, tokenizer = load_hf_policy(model_dir)
    assert is_lora(model)
    quantised = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 2 * 7                          # 2 layers × q, k, v, o, gate, up, down
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                   "up_proj", "down_proj"}
    assert tokenizer.padding_side == "left"
    rollout = sample(model, tokenizer, ["3,5,7>22="], group_size=3, max_new_tokens=8)   # generate, then train
    model.train()
    logits = policy_forward(model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids)
    gather_log_prob(logits, rollout.response_ids).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_B" in n)


def test_the_reference_is_the_base_model_with_the_adapter_off(model_dir):
    trainer = Trainer(hf_config(model_dir, method="kl_ref", lr=1e-2, num_mini_batches=1))
    assert trainer.ref_model is None                        # no second copy in memory
    rollout = sample(trainer.model, trainer.tokenizer, ["3,5,7>22=", "2,4,6>14="], group_size=2, max_new_tokens=8)
    before = trainer._ref_log_prob(rollout)
    torch.testing.assert_close(before, rollout.old_log_prob)  # LoRA starts at B = 0: policy = reference
    base_weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.train_step()
    with torch.no_grad():
        now = gather_log_prob(policy_forward(trainer.model, rollout.prompt_ids, rollout.prompt_mask,
                                             rollout.response_ids), rollout.response_ids) * rollout.response_mask
    assert (now - before).abs().max() > 1e-3                # the policy moved ...
    torch.testing.assert_close(trainer._ref_log_prob(rollout), before)   # ... the reference did not
    assert all(torch.equal(p, base_weights[n]) for n, p in trainer.model.named_parameters() if not p.requires_grad)


def test_lora_checkpoint_holds_the_adapter_and_resumes_exactly(model_dir, tmp_path):
    full = train(hf_config(model_dir, method="clip_cov", steps=3), tmp_path / "full", progress=False)
    state = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    assert "model" not in state and state["adapter"]
    assert all("lora_" in k for k in state["adapter"])
    train(hf_config(model_dir, method="clip_cov", steps=2), tmp_path / "cut", progress=False)
    resumed = train(hf_config(model_dir, method="clip_cov", steps=3), tmp_path / "cut", resume=True, progress=False)
    assert resumed[-1]["step"] == 3
    for key in ("entropy", "reward", "pg_loss", "cov_mean"):
        assert resumed[-1][key] == pytest.approx(full[-1][key], abs=1e-6), key
    assert [r["step"] for r in read_metrics(tmp_path / "cut")] == [0, 1, 2, 3]


def test_unknown_backend_and_missing_model_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'vllm'; choose one of: tiny, hf"):
        make_config("smoke", backend="vllm")
    with pytest.raises(OSError, match="cannot load .*nowhere.*local folder"):
        load_hf_policy(tmp_path / "nowhere")


def test_without_4bit_the_base_stays_in_full_precision_and_trains(model_dir, tmp_path):
    rows = train(hf_config(model_dir, load_in_4bit=False, steps=1), tmp_path / "run", progress=False)
    assert rows[-1]["grad_norm"] > 0
    model, _ = load_hf_policy(model_dir, load_in_4bit=False)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


def test_gpu_profile_trains_gsm8k_through_the_hf_backend(model_dir, tmp_path, monkeypatch):
    """The gpu profile's whole path (hf backend, QLoRA, GSM8K with math-verify rewards), with the
    tiny model and the shipped GSM8K sample standing in for Qwen2.5-0.5B-Instruct and the hub."""
    from pathlib import Path

    from minirl.math_data import make_gsm8k

    config = make_config("gpu")
    assert (config.backend, config.init, config.task, config.load_in_4bit) == (
        "hf", "Qwen/Qwen2.5-0.5B-Instruct", "gsm8k", True)
    monkeypatch.setenv("MINIRL_GSM8K_PATH", str(Path(__file__).parent / "data" / "gsm8k_sample.jsonl"))
    small = make_config("gpu", init=str(model_dir), steps=1, prompts_per_step=2, group_size=2, eval_every=100,
                        eval_prompts=2, eval_samples=2, eval_k=2, num_mini_batches=1)
    trainer = Trainer(small)
    assert trainer.task.name == "gsm8k" and trainer.task.max_new_tokens == 512
    trainer.task = make_gsm8k(tokenizer=trainer.tokenizer, max_new_tokens=8)   # 8 tokens: seconds, not minutes
    metrics = trainer.train_step()
    assert metrics["reward"] == 0.0 and metrics["frac_all_equal_groups"] == 1.0  # a tiny model cannot do GSM8K
    assert metrics["response_len"] <= 8
