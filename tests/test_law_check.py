"""The per-step law diagnostics (minirl/law_check.py, `law_diagnostics=True`): exact on a model whose
answer is known by hand, first order on the tiny policy, the clean probe (one plain SGD step at
η = PROBE_LR) tracking the realised change on the network, and invisible when off."""
import numpy as np
import pytest
import torch

from minirl.config import make_config
from minirl.law_check import LAW_KEYS, PROBE_KEYS, PROBE_LR, LawCheck
from minirl.rollout import Rollout
from minirl.metrics import TIME_KEYS
from minirl.trainer import Trainer


class Bigram(torch.nn.Module):
    """Free logits per previous token: the state after token r has logits table[r] (tabular, so every
    quantity of the law has a closed form). Called like a Hugging Face causal LM."""

    def __init__(self, V: int, seed: int = 0):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(V, V, generator=torch.Generator().manual_seed(seed)))

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0, use_cache=False):
        logits = self.table[input_ids]                                   # (B, L, V)
        return type("Out", (), {"logits": logits[:, -logits_to_keep:] if logits_to_keep else logits})


def toy_batch(V=7, B=5, P=3, T=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    response_mask = torch.ones(B, T, dtype=torch.long)
    response_mask[1, 2:] = 0                                             # a short response: padding
    response_mask[3, 1:] = 0
    zeros = torch.zeros(B, T)
    return Rollout(torch.randint(V, (B, P), generator=g), torch.ones(B, P, dtype=torch.long),
                   torch.randint(V, (B, T), generator=g), response_mask, zeros, zeros, [""] * B,
                   torch.zeros(B, dtype=torch.long))


def by_hand(W0, W1, batch):
    """(predicted, lemma, realised) in numpy: each state s has logits W[prev(s)]; ∂H/∂z_a = −π_a(log π_a + H)."""
    prev = torch.cat([batch.prompt_ids[:, -1:], batch.response_ids[:, :-1]], dim=1).numpy()      # (B, T)
    states = prev[batch.response_mask.numpy().astype(bool)]

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    def H(p):
        return -(p * np.log(p)).sum()

    predicted, lemma, realised = [], [], []
    for r in states:
        p, q, dz = softmax(W0[r]), softmax(W1[r]), W1[r] - W0[r]
        grad = -p * (np.log(p) + H(p))                                   # ∂H/∂z at the state, before
        predicted.append(grad @ dz)
        lemma.append(-(p * (np.log(p) - p @ np.log(p)) * (dz - p @ dz)).sum())
        realised.append(H(q) - H(p))
    return np.mean(predicted), np.mean(lemma), np.mean(realised)


@pytest.mark.parametrize("scale", [1e-3, 0.5])
def test_the_three_numbers_match_the_closed_form_on_free_logits(scale):
    model, batch = Bigram(7), toy_batch()
    W0 = model.table.detach().double().numpy().copy()
    check = LawCheck(model, batch, temperature=1.0, chunk_rows=2)      # chunked: 3 passes of ≤ 2 rows
    assert model.table.grad is None                                      # the run's gradients are untouched
    with torch.no_grad():
        model.table.add_(scale * torch.randn(7, 7, generator=torch.Generator().manual_seed(2)))
    got = check.finish(model)
    predicted, lemma, realised = by_hand(W0, model.table.detach().double().numpy(), batch)
    assert got["law_predicted_change"] == pytest.approx(predicted, rel=1e-5, abs=1e-9)
    assert got["law_lemma_change"] == pytest.approx(lemma, rel=1e-5, abs=1e-9)
    assert got["law_realised_change"] == pytest.approx(realised, rel=1e-5, abs=1e-9)
    if scale < 0.01:        # a small step: first order holds (the error is O(scale²))
        assert abs(predicted - realised) < 0.02 * abs(realised)
    else:                   # a large one: it does not, and the diagnostics say so
        assert abs(predicted - realised) > 0.02 * abs(realised)


def sgd_step_by_hand(W0, batch, adv_tok, lr):
    """The probe's step on free logits, in numpy: L = −Σ_t A_t log π(y_t|s_t) / n, and at the state after
    token r, ∂(−log π_y)/∂z = π − e_y, so W1[r] = W0[r] − η Σ_{t: prev_t = r} A_t (π_r − e_{y_t}) / n;
    the subtraction rounded to float32 as the policy's weights are (a step of ~1e-5 on weights of ~1
    keeps only a few digits)."""
    prev = torch.cat([batch.prompt_ids[:, -1:], batch.response_ids[:, :-1]], dim=1).numpy()      # (B, T)
    valid = batch.response_mask.numpy().astype(bool)
    grad, n = np.zeros_like(W0), valid.sum()
    for r, y, a in zip(prev[valid], batch.response_ids.numpy()[valid], adv_tok.numpy()[valid]):
        p = np.exp(W0[r] - W0[r].max())
        p /= p.sum()
        grad[r] += a * (p - np.eye(len(p))[y]) / n
    return (W0.astype(np.float32) - (lr * grad).astype(np.float32)).astype(np.float64)


def test_the_probe_is_one_plain_sgd_step_as_worked_out_by_hand():
    """Given the advantages, the diagnostics also take a step the run never takes (θ − η∇L) and report
    its three numbers, which match the closed form; over many batches the prediction tracks the
    realised change (r ≥ 0.9). No gradient of the run and no random number is touched."""
    got, expected = [], []
    for seed in range(12):
        model, batch = Bigram(7, seed=seed), toy_batch(seed=seed + 1)
        adv_tok = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed)) * batch.response_mask
        W0 = model.table.detach().double().numpy().copy()
        rng = torch.get_rng_state()
        check = LawCheck(model, batch, temperature=1.0, chunk_rows=2, adv_tok=adv_tok)
        with torch.no_grad():                            # the run's own update: anything, here nothing
            metrics = check.finish(model)
        assert torch.equal(torch.get_rng_state(), rng) and model.table.grad is None
        assert np.array_equal(model.table.detach().double().numpy(), W0)          # the probe's step is not kept
        by_hand_probe = by_hand(W0, sgd_step_by_hand(W0, batch, adv_tok, PROBE_LR), batch)
        got.append([metrics[key] for key in PROBE_KEYS])
        expected.append(by_hand_probe)
        assert got[-1] == pytest.approx(by_hand_probe, rel=1e-5, abs=1e-12)
    predicted, lemma, realised = np.array(got).T
    assert np.ptp(realised) > 0
    assert np.corrcoef(predicted, realised)[0, 1] >= 0.9 and np.corrcoef(lemma, realised)[0, 1] >= 0.9
    assert np.abs(predicted - realised).max() < 0.05 * np.abs(realised).max()


def smoke(**overrides):
    settings = dict(steps=6, prompts_per_step=8, eval_every=100, eval_prompts=8)
    return make_config("smoke", **{**settings, **overrides})


def test_off_by_default_and_invisible_when_off():
    """Off: no law_* key. On: the same run (no extra random number, no gradient touched), plus the keys."""
    assert smoke().law_diagnostics is False
    with pytest.raises(ValueError, match="law_diagnostics"):
        smoke(law_diagnostics="yes")
    off, on = Trainer(smoke()), Trainer(smoke(law_diagnostics=True))
    for _ in range(3):
        a, b = off.train_step(), on.train_step()
        assert not set(LAW_KEYS + PROBE_KEYS) & set(a)
        assert set(LAW_KEYS + PROBE_KEYS) <= set(b)
        assert {k: v for k, v in a.items() if k not in TIME_KEYS} == \
               {k: v for k, v in b.items() if k not in TIME_KEYS + LAW_KEYS + PROBE_KEYS}


def test_the_prediction_tracks_the_realised_change_under_small_sgd_steps():
    """The tiny policy, one plain SGD step per rollout at a small learning rate: the first order
    through the network tracks the exact change (r ≥ 0.9 over steps), which is the entropy change
    that the trainer measures on its own (`batch_entropy_change`, from the sampler's entropies)."""
    config = smoke(steps=12, num_mini_batches=1, law_diagnostics=True, track_entropy_change=True)
    trainer = Trainer(config)
    trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.01)
    rows = [trainer.train_step() for _ in range(config.steps)]
    predicted, lemma, realised = (np.array([row[key] for row in rows]) for key in LAW_KEYS)
    assert np.allclose(realised, [row["batch_entropy_change"] for row in rows], atol=1e-5)
    assert np.ptp(realised) > 0
    assert np.corrcoef(predicted, realised)[0, 1] >= 0.9
    assert np.corrcoef(lemma, realised)[0, 1] >= 0.9
    assert np.abs(predicted - realised).mean() < 0.25 * np.abs(realised).mean()


def test_the_probe_tracks_the_realised_change_under_the_trainers_own_updates():
    """The tiny policy trained as notebook 02 trains it (AdamW, four mini-batch updates a step): the
    run's own steps may be too large for first order, the probe's step is not, so its prediction
    tracks its realised change over the steps (r ≥ 0.9) and lands close to it."""
    trainer = Trainer(smoke(steps=8, law_diagnostics=True))
    rows = [trainer.train_step() for _ in range(trainer.config.steps)]
    predicted, lemma, realised = (np.array([row[key] for row in rows]) for key in PROBE_KEYS)
    assert (realised < 0).mean() > 0.5                   # GRPO's step sharpens the policy
    assert np.corrcoef(predicted, realised)[0, 1] >= 0.9
    assert np.corrcoef(lemma, realised)[0, 1] >= 0.9
    assert np.abs(predicted - realised).mean() < 0.05 * np.abs(realised).mean()
