"""The sampler prefills each distinct prompt once and shares its KV cache across the group's G rows
(rollout.decode); it must draw exactly what `model.generate` on all G rows drew before, token for
token and bit for bit in the log-probs and entropies, for the same seed: with top-p, temperature,
greedy decoding, stop tokens, response prefixes and the tool loop."""
import copy

import pytest
import torch
from transformers import LogitsProcessorList

from minirl.models import load_policy
from minirl.rollout import Rollout, TokenStats, _until_stop, pad_responses, sample, score
from minirl.tasks import get_task
from minirl.tools import make_countdown_tool, sample_with_tool
from minirl.warmstart import default_path


@pytest.fixture(scope="module", params=["smoke", "cpu"])
def policy(request):
    model, tok = load_policy(default_path("countdown", request.param))
    return model.eval(), tok


@torch.no_grad()
def generate_sample(model, tokenizer, prompts, group_size=1, temperature=1.0, top_p=1.0, max_new_tokens=16,
                    prefix_ids=None, chunk_rows=None, stop_ids=None) -> Rollout:
    """The sampler as it was before the shared prefill: `model.generate` on all B·G rows."""
    rows = [p for p in prompts for _ in range(group_size)]
    prompt = tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
    prefixes = prefix_ids or [[] for _ in rows]
    inputs = prompt
    if prefix_ids is not None:
        inputs = tokenizer.pad({"input_ids": [tokenizer(r, add_special_tokens=False)["input_ids"] + list(p)
                                              for r, p in zip(rows, prefixes)]}, return_tensors="pt")
    greedy = temperature == 0
    stats = TokenStats(temperature)
    out = model.generate(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
        do_sample=not greedy, temperature=None if greedy else temperature, top_p=None if greedy else top_p,
        top_k=None, repetition_penalty=1.0, max_new_tokens=max_new_tokens, return_dict_in_generate=True,
        logits_processor=LogitsProcessorList([stats]),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=[tokenizer.eos_token_id, *(stop_ids or [])])
    new_tokens = out.sequences[:, inputs["input_ids"].shape[1]:]
    stops = {tokenizer.eos_token_id, *(stop_ids or [])}
    response_ids = [list(p) + _until_stop(t.tolist(), stops) for p, t in zip(prefixes, new_tokens)]
    ids, mask = pad_responses(response_ids, tokenizer.pad_token_id, "cpu")
    T = ids.shape[1]
    if prefix_ids is None:
        step_log_prob, step_entropy = stats.finish(new_tokens[:, -1])
        old_log_prob, entropy = step_log_prob[:, :T] * mask, step_entropy[:, :T] * mask
    else:
        old_log_prob, entropy = score(model, prompt["input_ids"], prompt["attention_mask"], ids, mask,
                                      max(temperature, 1e-6), chunk_rows)
    completions = tokenizer.batch_decode([[t for t in r if t != tokenizer.eos_token_id] for r in response_ids])
    return Rollout(prompt["input_ids"], prompt["attention_mask"], ids, mask, old_log_prob, entropy,
                   completions, torch.tensor([len(p) for p in prefixes]))


def assert_identical(a: Rollout, b: Rollout) -> None:
    for field in ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "old_log_prob", "entropy",
                  "prefix_len"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0, msg=field)
    assert a.completions == b.completions


def both(sampler_args: dict, seed: int, policy) -> tuple[Rollout, Rollout]:
    model, tok = policy
    torch.manual_seed(seed)
    shared = sample(model, tok, **sampler_args)
    torch.manual_seed(seed)
    return shared, generate_sample(model, tok, **sampler_args)


PROMPTS = [e.prompt for e in get_task("countdown").train[:16]]          # the smoke profile's batch


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("settings", [
    dict(group_size=8, temperature=1.0, top_p=1.0, max_new_tokens=8),
    dict(group_size=4, temperature=0.7, top_p=0.9, max_new_tokens=8),
    dict(group_size=3, temperature=1.3, top_p=0.5, max_new_tokens=5),
    dict(group_size=2, temperature=0.0, max_new_tokens=8),                 # greedy
], ids=["plain", "top_p", "hot", "greedy"])
def test_shared_prefill_draws_what_generate_drew(policy, settings, threads):
    for seed in range(2 if threads > 1 else 3):
        shared, reference = both(dict(prompts=PROMPTS, **settings), seed, policy)
        assert_identical(shared, reference)


def test_prompts_of_different_lengths_and_repeats(policy):
    """Left padding, and a prompt listed twice (its two groups share one prefill)."""
    prompts = ["3,5,7>22=", "12,1,40>52=", "3,5,7>22=", "9>9="]
    for seed in range(3):
        assert_identical(*both(dict(prompts=prompts, group_size=4, top_p=0.95, max_new_tokens=8), seed, policy))



def test_tiny_batches_on_one_thread(policy):
    """One or two prompts: bitwise on one thread. On two, a single prompt's prefill (9 rows of
    tokens instead of 144) may take another matrix-product path and move log-probs by ~1e-6
    (measured), which is why the course's batch shapes are checked on two threads above."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for prompts, G in ((["9>9="], 2), (["3,5,7>22="], 16), (["1>", "12,1,40>52="], 3)):
            assert_identical(*both(dict(prompts=prompts, group_size=G, max_new_tokens=8), 0, policy))
    finally:
        torch.set_num_threads(before)


def test_stop_tokens_and_prefixes(policy):
    model, tok = policy
    stop = tok.convert_tokens_to_ids("*")
    prefixes = [tok(p, add_special_tokens=False)["input_ids"] for p in ["", "3", "3*", "", "5+7", "5"]]
    settings = dict(prompts=["3,5,7>22=", "1,2,3>6="], group_size=3, max_new_tokens=6, stop_ids=[stop],
                    prefix_ids=prefixes, chunk_rows=2)
    for seed in range(3):
        shared, reference = both(settings, seed, policy)
        assert_identical(shared, reference)
    ends = [r[:int(m.sum())][-1] for r, m in zip(shared.response_ids.tolist(), shared.response_mask)]
    assert any(e == stop for e in ends)                 # a stop token ended some row, and was kept


def test_tool_rollout_unchanged(policy, monkeypatch):
    """The tool loop calls the sampler once per turn, with prefixes; same calls, same rollout."""
    import minirl.tools

    model, tok = policy
    prompts = [e.prompt for e in make_countdown_tool(seed=0).train[:3]]
    torch.manual_seed(5)
    shared = sample_with_tool(model, tok, prompts, 4, 1.0, 1.0, 16)
    monkeypatch.setattr(minirl.tools, "sample", generate_sample)
    torch.manual_seed(5)
    assert_identical(shared, sample_with_tool(model, tok, prompts, 4, 1.0, 1.0, 16))


def test_a_group_is_prefilled_once(policy, monkeypatch):
    """What makes it faster: the prefill sees each distinct prompt once, not G times."""
    model, tok = policy
    decoder, shapes = model.get_decoder(), []
    forward = decoder.forward

    def counting(*args, **kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    monkeypatch.setattr(decoder, "forward", counting)
    sample(model, tok, PROMPTS[:5], group_size=8, max_new_tokens=4)
    assert shapes[0][0] == 5 and len(shapes) > 1 and all(shape == (40, 1) for shape in shapes[1:])


def test_lora_policy(policy):
    """The hf backend's shape: a peft LoRA model (its adapter made non-zero), same draws."""
    from minirl.models import add_lora

    base, tok = policy
    model = add_lora(copy.deepcopy(base))
    torch.manual_seed(0)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.05)
    model.eval()
    for G in (1, 8):
        assert_identical(*both(dict(prompts=PROMPTS, group_size=G, temperature=0.9, top_p=0.95, max_new_tokens=8),
                               0, (model, tok)))
