"""EMPG (Wang et al., arXiv 2509.09265): step advantages rescaled by a self-normalised function of the
step entropy, plus a future-clarity bonus, then centred; worked by hand on three steps, the invariants
of the paper's pseudocode (mean g = 1, zero-mean advantages), the
token-to-step mapping for the character tokenizer and for multi-character tokens, and 2 smoke steps."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.methods import BatchContext, get_method
from minirl.methods.empg import EMPGConfig, empg_batch, token_steps
from minirl.models import build_tiny_model, build_tokenizer
from minirl.profiles import policy_size
from minirl.rollout import Rollout
from minirl.tasks import get_task
from minirl.trainer import train


def rollout(texts, entropy, ids=None):
    """One row per text; one token per character plus EOS (or the given ids); (B, T) entropies."""
    entropy = torch.tensor(entropy)
    lengths = [len(t) + 1 for t in texts] if ids is None else [len(r) for r in ids]
    mask = (torch.arange(entropy.shape[1])[None, :] < torch.tensor(lengths)[:, None]).float()
    response_ids = torch.ones_like(mask, dtype=torch.long)
    for i, r in enumerate(ids or []):
        response_ids[i, :len(r)] = torch.tensor(r)
    n = len(texts)
    return Rollout(torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 1), response_ids, mask, torch.zeros_like(mask),
                   entropy * mask, list(texts), torch.zeros(n, dtype=torch.long))


def context(group_size=2, segment=None, tokenizer=None, examples=()):
    ctx = BatchContext(None, group_size, True, 0, step=1, state=None, examples=list(examples), tokenizer=tokenizer)
    ctx.segment = segment                     # the task's info["segment"], once the trainer hands it over
    return ctx


def test_hand_worked_three_steps():
    # row 0 "x;y"+EOS: steps [x ;] (H = .2) and [y EOS] (H = 1.0); row 1 "z"+EOS: one step, H = .6.
    # Ĥ = (0, 1, .5); e = exp(−Ĥ) = (1, e⁻¹, e^−½), g = e / mean(e); f = e (k_f = 1).
    # A(τ) = (+1, −1): A^mod = (g₁ + .1·f₂, g₂, −g₃) — only row 0's first step has a successor.
    ro = rollout(["x;y", "z"], [[.2, .2, 1., 1.], [.6, .6, 0, 0]])
    _, A, metrics = empg_batch(ro, None, torch.tensor([1., -1.]), EMPGConfig(step_separator=";"), context())
    e = [1, math.exp(-1), math.exp(-0.5)]
    g = [x / (sum(e) / 3) for x in e]
    A_mod = [g[0] + 0.1 * e[1], g[1], -g[2]]
    mean = sum(A_mod) / 3
    a1, a2, a3 = (x - mean for x in A_mod)
    torch.testing.assert_close(A, torch.tensor([[a1, a1, a2, a2], [a3, a3, 0, 0]]))
    assert metrics["g_min"] == pytest.approx(g[1]) and metrics["g_max"] == pytest.approx(g[0])
    assert metrics["bonus_mean"] == pytest.approx(0.1 * e[1]) and metrics["adv_mean_removed"] == pytest.approx(mean)
    assert metrics["steps_per_response"] == 1.5 and metrics["frac_confident"] == pytest.approx(1 / 3)


def test_invariants_mean_g_is_one_and_step_advantages_are_centred():
    torch.manual_seed(0)
    texts = ["ab;cd;e", "f;g", "hij", "k;l;m;n"]
    ro = rollout(texts, torch.rand(4, 8).tolist())
    A_seq = torch.tensor([1.0, -0.5, 0.0, 2.0])
    config = EMPGConfig(step_separator=";")
    _, A, _ = empg_batch(ro, None, A_seq, config, context())
    sid, row = token_steps(ro, context(), config)
    step_A = torch.stack([A[sid == s][0] for s in range(len(row))])
    assert all((A[sid == s] == step_A[s]).all() for s in range(len(row)))       # one value per step
    assert step_A.mean().item() == pytest.approx(0.0, abs=1e-6)                  # zero mean over steps
    # ζ = 0 and a constant entropy: g ≡ 1, so EMPG is the centred GRPO advantage
    flat = rollout(texts, torch.full((4, 8), 0.3).tolist())
    _, A, metrics = empg_batch(flat, None, A_seq, EMPGConfig(step_separator=";", zeta=0.0), context())
    step_mean = A_seq[row].mean()
    torch.testing.assert_close(A, (A_seq[:, None] - step_mean) * flat.response_mask)
    assert metrics["g_min"] == pytest.approx(1.0) and metrics["g_max"] == pytest.approx(1.0)


def test_without_segments_each_response_is_one_step():
    ro = rollout(["x;y", "z"], [[.2, .2, 1., 1.], [.6, .6, 0, 0]])
    with pytest.warns(UserWarning, match="every response is one step"):
        _, A, metrics = empg_batch(ro, None, torch.tensor([1., -1.]), EMPGConfig(), context())
    assert metrics["steps_per_response"] == 1.0 and metrics["bonus_mean"] == 0.0
    # H = (.6, .6): Ĥ = (0, 0), g = (1, 1); A − mean A = A
    torch.testing.assert_close(A, torch.tensor([[1., 1, 1, 1], [-1, -1, 0, 0]]))


def test_task_segments_with_the_character_tokenizer():
    task, tokenizer = get_task("countdown_steps"), build_tokenizer()
    text = "3*5=15;15+7=22;#22"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ro = rollout([text], [[0.1] * len(ids)], ids=[ids])
    ctx = context(1, task.info["segment"], tokenizer, [task.train[0]])
    sid, row = token_steps(ro, ctx, EMPGConfig())
    assert sid[0].tolist() == [0] * 7 + [1] * 8 + [2] * 4          # two equations, then "#22" and EOS
    assert torch.equal(sid, token_steps(ro, ctx, EMPGConfig(step_separator=";"))[0])


class WordTokenizer:
    """Multi-character tokens: '3*5' '=15;' '15+' '7=22' ';#' '22' and EOS."""
    vocab = {2: "3*5", 3: "=15;", 4: "15+", 5: "7=22", 6: ";#", 7: "22", 1: "<eos>"}

    def batch_decode(self, rows, skip_special_tokens=False):
        return ["".join("" if (t == 1 and skip_special_tokens) else self.vocab[t] for t in r) for r in rows]


def test_a_token_belongs_to_the_step_of_its_first_character():
    task, text = get_task("countdown_steps"), "3*5=15;15+7=22;#22"
    ro = rollout([text], [[0.1] * 7], ids=[[2, 3, 4, 5, 6, 7, 1]])
    sid, _ = token_steps(ro, context(1, task.info["segment"], WordTokenizer(), [task.train[0]]), EMPGConfig())
    # starts 0, 3, 7, 10, 14, 16, 18: ';#' starts on step 2's ';', EOS joins the answer
    assert sid[0].tolist() == [0, 0, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("settings", [{"k": -1.0}, {"k_f": -0.5}, {"zeta": -0.1}])
def test_bad_settings_are_named(settings):
    key = next(iter(settings))
    with pytest.raises(ValueError, match=f"{key}={settings[key]}"):
        empg_batch(rollout(["x"], [[.1, .1]]), None, torch.zeros(1), EMPGConfig(**settings), context(1))


def test_runs_by_name_on_the_stepwise_task(tmp_path):
    # an untrained tiny policy is enough to run the pipeline (no shipped warm start is needed)
    tokenizer = build_tokenizer()
    build_tiny_model(policy_size("smoke"), tokenizer).save_pretrained(tmp_path / "init")
    tokenizer.save_pretrained(tmp_path / "init")
    assert get_method("empg").make_config({"zeta": "0.05"}).zeta == 0.05
    config = make_config("smoke", method="empg", task="countdown_steps", init=str(tmp_path / "init"), steps=2,
                         prompts_per_step=8, eval_every=100, eval_prompts=8, method_settings={"step_separator": ";"})
    rows = train(config, tmp_path / "run", progress=False)
    for key in ("g_min", "g_max", "frac_confident", "bonus_mean", "adv_mean_removed", "steps_per_response"):
        assert all(row[f"empg/{key}"] is not None for row in rows[1:]), key
    assert rows[-1]["empg/g_min"] <= 1.0 <= rows[-1]["empg/g_max"]
