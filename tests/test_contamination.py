"""Contamination detection (minirl/contamination.py): the Self-Critique statistic on hand-made
entropy sequences, perplexity, the truncated top-K entropy, ROC/AUC on a hand-checked example
(and against scikit-learn), and the two greedy passes on the shipped tiny policy."""
import math

import numpy as np
import pytest
import torch

from minirl.contamination import (TopKEntropy, auc, detect, greedy_pass, instruction_prompt, perplexity, roc_curve,
                                  self_critique_score)


def test_self_critique_score_by_hand():
    # [1, 0, 1] against [1, 1] padded to [1, 1, 0]: cos = 1/(√2·√2) = 1/2, length ratio 2/3 → 1/3
    assert self_critique_score([1.0, 0.0, 1.0], [1.0, 1.0]) == pytest.approx(1 / 3)
    assert self_critique_score([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24 / 25)            # cos only, equal lengths
    assert self_critique_score([0.2, 0.0, 0.5], [0.2, 0.0, 0.5]) == pytest.approx(1.0)
    assert self_critique_score([0.2, 0.0, 0.5], [0.4, 0.0, 1.0]) == pytest.approx(1.0)      # scale does not matter
    assert self_critique_score([], [1.0]) == 0.0 and self_critique_score([0.0, 0.0], [1.0, 2.0]) == 0.0


def test_perplexity_by_hand():
    assert perplexity([math.log(0.5), math.log(0.5)]) == pytest.approx(2.0)
    assert perplexity([math.log(0.5), math.log(0.125)]) == pytest.approx(4.0)              # exp((ln 2 + ln 8)/2)
    assert math.isnan(perplexity([]))


def test_top_k_entropy_is_truncated_and_not_renormalised():
    stats = TopKEntropy(top_k=2)
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    assert torch.equal(stats(torch.zeros(1, 1, dtype=torch.long), scores), scores)         # changes nothing
    assert stats.truncated[0].item() == pytest.approx(-(0.5 * math.log(0.5) + 0.3 * math.log(0.3)), abs=1e-6)
    assert stats.entropies[0].item() == pytest.approx(-sum(p * math.log(p) for p in (0.5, 0.3, 0.2)), abs=1e-6)


def test_auc_and_roc_by_hand():
    scores, labels = [0.9, 0.8, 0.4, 0.6], [1, 0, 1, 0]
    # members {0.9, 0.4} vs held-out {0.8, 0.6}: 0.9 beats both, 0.4 neither → 2 of 4 pairs
    assert auc(scores, labels) == 0.5
    fpr, tpr = roc_curve(scores, labels)
    # thresholds 0.9, 0.8, 0.6, 0.4: (0, ½), (½, ½), (1, ½), (1, 1)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0] and tpr.tolist() == [0.0, 0.5, 0.5, 0.5, 1.0]
    assert auc([1.0, 1.0, 0.0], [1, 0, 0]) == 0.75                                          # a tie counts ½
    fpr, tpr = roc_curve([1.0, 1.0, 0.0], [1, 0, 0])
    assert fpr.tolist() == [0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 1.0, 1.0]              # the tie: one diagonal step
    assert auc([3, 2, 1], [1, 1, 0]) == 1.0 and auc([1, 2, 3], [1, 1, 0]) == 0.0
    with pytest.raises(ValueError, match="need members and non-members"):
        auc([1, 2], [1, 1])


def test_auc_matches_the_area_under_its_roc_curve_and_scikit_learn():
    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 6, 40).astype(float), rng.integers(0, 2, 40)            # many ties
    fpr, tpr = roc_curve(scores, labels)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))                          # trapezoids
    assert auc(scores, labels) == pytest.approx(area)
    metrics = pytest.importorskip("sklearn.metrics")
    assert auc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))


def test_instruction_prompt_goes_inside_the_user_turn():
    from minirl.models import build_tokenizer

    tokenizer = build_tokenizer()
    assert instruction_prompt("Q:", "42", tokenizer).startswith("Q:\nHere is one possible answer")
    tokenizer.chat_template = ("{% for m in messages %}<u>{{ m['content'] }}</u>{% endfor %}"
                               "{% if add_generation_prompt %}<a>{% endif %}")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Q?"}], add_generation_prompt=True,
                                           tokenize=False)
    critique = instruction_prompt(prompt, "42", tokenizer)
    assert critique.startswith("<u>Q?\nHere is one possible answer") and critique.endswith("another solution:</u><a>")
    assert "\n42\n" in critique


def test_greedy_passes_on_the_tiny_policy():
    from minirl.models import load_policy
    from minirl.tasks import get_task
    from minirl.warmstart import default_path

    task = get_task("countdown_steps")
    model, tokenizer = load_policy(default_path("countdown_steps", "smoke"))
    prompts = [e.prompt for e in task.eval[:4]]
    first = greedy_pass(model, tokenizer, prompts, task.max_new_tokens)
    again = greedy_pass(model, tokenizer, prompts, task.max_new_tokens)
    assert [p.text for p in first] == [p.text for p in again]                                 # greedy
    for p in first:
        assert len(p.token_ids) == len(p.entropy) == len(p.log_prob) and p.token_ids[-1] == tokenizer.eos_token_id
        assert all(lp <= 1e-6 for lp in p.log_prob) and all(e >= 0 for e in p.entropy)
    scores = detect(model, tokenizer, prompts, task.max_new_tokens, mode="diverge")
    for i, p in enumerate(first):
        assert scores["first"][i] == p.text
        assert scores["second"][i][:1] != p.text[:1]                                         # pass 2 left at once
        assert scores["second_entropy"][i][0] == pytest.approx(p.entropy[0], abs=1e-5)     # same first state
        assert scores["self_critique"][i] == pytest.approx(self_critique_score(p.entropy, scores["second_entropy"][i]))
        assert scores["perplexity"][i] == pytest.approx(perplexity(p.log_prob))
    with pytest.raises(ValueError, match="unknown mode 'critique'; choose one of: diverge, instruction"):
        detect(model, tokenizer, prompts, task.max_new_tokens, mode="critique")
