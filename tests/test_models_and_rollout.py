"""The tiny policy is a real Qwen2 that LoRA wraps; rollouts return consistent log-probs."""
import math

import pytest
import torch
from transformers import Qwen2ForCausalLM

from minirl.diagnostics import token_entropy
from minirl.models import LORA_TARGETS, add_lora, build_tiny_model, build_tokenizer, load_policy
from minirl.profiles import policy_size
from minirl.rollout import gather_log_prob, policy_forward, sample
from minirl.warmstart import default_path


@pytest.fixture(scope="module")
def policy():
    return load_policy(default_path("countdown", "smoke"))


def test_tokenizer_round_trip(tmp_path):
    tok = build_tokenizer()
    text = "3,5,7>22=3*5+7"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    again = type(tok).from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_shipped_warm_starts_are_small_qwen2_models(profile):
    path = default_path("countdown", profile)
    assert (path / "model.safetensors").stat().st_size < 5_000_000
    model, tok = load_policy(path)
    assert type(model) is Qwen2ForCausalLM
    assert model.config.hidden_size == policy_size(profile).hidden_size


def test_lora_wraps_every_projection():
    tok = build_tokenizer()
    peft_model = add_lora(build_tiny_model(policy_size("smoke"), tok))
    wrapped = {name.split(".")[-1] for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == set(LORA_TARGETS)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_rollout_log_probs_match_a_training_forward(policy):
    model, tok = policy
    torch.manual_seed(0)
    r = sample(model, tok, ["3,5,7>22=", "1,2,3>6="], group_size=4, max_new_tokens=8)
    logits = policy_forward(model, r.prompt_ids, r.prompt_mask, r.response_ids)
    logp = gather_log_prob(logits, r.response_ids) * r.response_mask
    assert torch.allclose(logp, r.old_log_prob, atol=1e-5)
    assert torch.allclose(token_entropy(logits) * r.response_mask, r.entropy, atol=1e-5)
    assert r.entropy.max() <= math.log(len(tok)) + 1e-5


def test_rollout_masks_end_at_eos(policy):
    model, tok = policy
    torch.manual_seed(1)
    r = sample(model, tok, ["3,5,7>22="], group_size=8, max_new_tokens=8)
    for ids, mask, text in zip(r.response_ids, r.response_mask, r.completions):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()
        if tok.eos_token_id in ids[:n].tolist():
            assert ids[n - 1] == tok.eos_token_id
        assert tok.eos_token not in text


def test_sampling_continues_from_prefixes(policy):
    model, tok = policy
    prefix = tok("3*", add_special_tokens=False)["input_ids"]
    torch.manual_seed(2)
    r = sample(model, tok, ["3,5,7>22="], group_size=3, max_new_tokens=6, prefix_ids=[prefix] * 3)
    assert all(text.startswith("3*") for text in r.completions)
    assert r.prefix_len.tolist() == [2, 2, 2]
    logits = policy_forward(model, r.prompt_ids, r.prompt_mask, r.response_ids)
    assert torch.allclose(gather_log_prob(logits, r.response_ids) * r.response_mask, r.old_log_prob, atol=1e-5)


def test_greedy_and_top_p_validation(policy):
    model, tok = policy
    a = sample(model, tok, ["3,5,7>22="], group_size=2, temperature=0.0)
    assert a.completions[0] == a.completions[1]
    with pytest.raises(ValueError, match="top_p"):
        sample(model, tok, ["1"], top_p=0.0)


def test_token_stats_equal_the_stored_logits_of_generate(policy):
    """TokenStats records, step by step, exactly what `output_logits=True` would give after the
    fact (raw logits, before top-p), without keeping every step's (B, V) logits."""
    from transformers import LogitsProcessorList

    from minirl.diagnostics import token_entropy
    from minirl.rollout import TokenStats

    model, tok = policy
    x = tok(["3,5,7>22=", "1,2,3>9="] * 4, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    stats = TokenStats(0.9)
    out = model.generate(**x, do_sample=True, temperature=0.9, top_p=0.8, top_k=None, max_new_tokens=8,
                         return_dict_in_generate=True, output_logits=True,
                         logits_processor=LogitsProcessorList([stats]), pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    new = out.sequences[:, x["input_ids"].shape[1]:]
    log_prob, entropy = stats.finish(new[:, -1])
    logits = torch.stack(out.logits, dim=1).float() / 0.9
    assert log_prob.shape == new.shape
    torch.testing.assert_close(log_prob, torch.log_softmax(logits, -1).gather(-1, new[..., None]).squeeze(-1),
                               rtol=0, atol=0)
    torch.testing.assert_close(entropy, token_entropy(logits), rtol=0, atol=0)
