"""The per-step law diagnostics (minirl/law_check.py, `law_diagnostics=True`): exact on a model whose
answer is known by hand, first order on the tiny policy, and invisible when off."""
import numpy as np
import pytest
import torch

from minirl.config import make_config
from minirl.law_check import LAW_KEYS, LawCheck
from minirl.rollout import Rollout
from minirl.trainer import TIME_KEYS, Trainer


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
        assert not set(LAW_KEYS) & set(a)
        assert set(LAW_KEYS) <= set(b)
        assert {k: v for k, v in a.items() if k not in TIME_KEYS} == \
               {k: v for k, v in b.items() if k not in TIME_KEYS + LAW_KEYS}


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
