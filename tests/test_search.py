"""Search at inference (minirl/search): ESS, ePF's temperature rules and systematic resampling on
weights worked out by hand, the process reward on hand-written chains (malformed ones included),
and the particle filter end to end on the shipped tiny policy."""
import math

import numpy as np
import pytest

from minirl.search import make_search_config, run_search
from minirl.search.process_reward import arithmetic_credit, countdown_steps_credit, overconfident
from minirl.search.resampling import (annealing_temperature, effective_sample_size, logit, resample,
                                      systematic_resample, weight_entropy)
from minirl.tasks import Example

P = np.array([0.7, 0.1, 0.1, 0.1])   # Σp² = 0.52: ESS = 1/0.52 = 1.923, ρ = ESS/4 = 0.4808 < 0.5


def test_ess_and_normalised_entropy_by_hand():
    assert effective_sample_size(P) == pytest.approx(1 / 0.52)
    assert effective_sample_size(np.full(5, 0.2)) == pytest.approx(5.0)
    # H = −(0.7 ln 0.7 + 3 · 0.1 ln 0.1) = 0.940448 nats; / ln 4
    assert weight_entropy(P) == pytest.approx(0.940448 / math.log(4), abs=1e-5)
    assert weight_entropy([0.5, 0.5]) == pytest.approx(math.log(2))   # N ≤ 2: the raw entropy, as released


def test_annealing_temperature_rules_by_hand():
    # t = 1 of T_max = 4: u = 0.25; ρ = 0.4808 < 0.5 and u < 0.5, so annealing is on
    assert annealing_temperature(P, 1, 4, "ess") == pytest.approx(4 * 0.52 * 0.75)          # (N/ESS)(1 − u) = 1.56
    beta = 0.940448 / math.log(4) + (1 - 0.940448 / math.log(4)) * 0.25                       # 0.758793
    assert annealing_temperature(P, 1, 4, "entropy") == pytest.approx(1 / beta, abs=1e-5)   # 1.31788
    assert annealing_temperature(P, 1, 4, "base") == pytest.approx(1.75)                    # 2 − u
    assert annealing_temperature(P, 2, 4, "ess") == 1.0                                     # u = 0.5: not early
    assert annealing_temperature([0.4, 0.2, 0.2, 0.2], 1, 4, "ess") == 1.0                  # ρ = 0.714 ≥ 0.5
    assert annealing_temperature(P, 1, 4, "ess", ess_threshold=0.4) == 1.0
    with pytest.raises(ValueError, match="unknown temperature_method 'esss'; choose one of: ess, entropy, base"):
        annealing_temperature(P, 1, 4, "esss")


def test_logit_of_scores_and_softmax_weights():
    assert logit([0.5, 0.75])[1] == pytest.approx(math.log(3))
    assert logit([1.0])[0] == pytest.approx(math.log((1 - 1e-7) / 1e-7))                    # clipped: ≈ 16.1


@pytest.mark.parametrize("u, expected", [(0.5, [1, 2, 3, 3]), (0.0, [0, 1, 2, 3]), (0.99, [1, 2, 3, 3])])
def test_systematic_resampling_by_hand(u, expected):
    # cumulative weights 0.1, 0.3, 0.6, 1.0; positions (k + u)/4, each takes the first cumsum above it
    # u = 0.5: 0.125 → 1, 0.375 → 2, 0.625 → 3, 0.875 → 3;  u = 0: 0 → 0, 0.25 → 1, 0.5 → 2, 0.75 → 3
    # u = 0.99: 0.2475 → 1, 0.4975 → 2, 0.7475 → 3, 0.9975 → 3
    assert systematic_resample([0.1, 0.2, 0.3, 0.4], u).tolist() == expected


def test_systematic_resampling_keeps_every_particle_of_weight_one_over_n():
    assert systematic_resample([0.25] * 4, 0.0).tolist() == [0, 1, 2, 3]
    counts = np.bincount(systematic_resample([0.55, 0.3, 0.15], 0.3), minlength=3)
    assert counts.tolist() == [2, 1, 0]                      # ⌊N p⌋ or ⌈N p⌉ copies of each: 1.65, 0.9, 0.45


def test_resample_anneals_only_for_epf():
    rng = np.random.default_rng(0)
    log_weights = np.log(P)
    plain = resample(log_weights, 1, 4, rng)
    annealed = resample(log_weights, 1, 4, rng, annealing=True, resampling="systematic")
    assert plain.temperature == 1.0 and plain.ess_ratio == pytest.approx(1 / 0.52 / 4)
    assert annealed.temperature == pytest.approx(1.56)
    flat = np.exp(log_weights / 1.56) / np.exp(log_weights / 1.56).sum()                  # softmax(ℓ / τ)
    assert annealed.ess_ratio_after == pytest.approx(1 / (flat ** 2).sum() / 4)
    assert annealed.ess_ratio_after > annealed.ess_ratio
    with pytest.raises(ValueError, match="unknown resampling 'stratified'; choose one of: systematic, multinomial"):
        resample(log_weights, 1, 4, rng, resampling="stratified")


EXAMPLE = Example("3,5,7>22:", ((3, 5, 7), 22))


@pytest.mark.parametrize("text, expected", [
    ("3*5=15;", 0.5 + 0.5 * (1 - 7 / 22)),           # valid; pool {15, 7}: nearest 15, h = 1 − 7/22
    ("3*7=21;", 0.5 + 0.5 * (1 - 1 / 22)),           # valid; pool {21, 5}: h = 1 − 1/22 (a dead end, scored high)
    ("3*5=15;15+7=22;", 1.0),                        # the target is reached
    ("3*5=15;15+7=22;#22", 1.0),                     # a correct solution
    ("3*5=15;15+7=22;#21", 2 / 3),                   # the answer is not the number left: 2 of 3 steps valid
    ("3*5=15;15+7=2", 0.5 * (0.5 + 0.5 * (1 - 7 / 22))),   # a truncated second step: 1 of 2 valid
    ("3*5=15;#15", 0.5 * (0.5 + 0.5 * (1 - 7 / 22))),      # the answer comes too early
    ("3*5=16;", 0.0),                                # wrong arithmetic
    ("3*3=9;", 0.0),                                 # 3 is available once
    ("5-7=0;", 0.0),                                 # negative differences are not allowed (and 5−7 ≠ 0)
    ("garbage", 0.0), ("", 0.0), ("#22", 0.0), ("9" * 70, 0.0), ("3*5=15;;", 0.5 * (0.5 + 0.5 * (1 - 7 / 22))),
])
def test_countdown_steps_credit_by_hand(text, expected):
    assert countdown_steps_credit(text, EXAMPLE) == pytest.approx(expected)


def test_oracle_heuristic_knows_dead_ends():
    assert countdown_steps_credit("3*7=21;", EXAMPLE, heuristic="reachable") == 0.5       # 21, 5 cannot make 22
    assert countdown_steps_credit("3*5=15;", EXAMPLE, heuristic="reachable") == 1.0       # 15 + 7
    with pytest.raises(ValueError, match="unknown heuristic 'oracle'"):
        countdown_steps_credit("3*5=15;", EXAMPLE, heuristic="oracle")


def test_overconfident_calibration_and_arithmetic_credit():
    # κ = 1 + 2·(1 − 0) = 3: σ(3 ln 3) = 27/28; at u = 1 the score is unchanged
    assert overconfident(0.75, 0.0, 2.0) == pytest.approx(27 / 28)
    assert overconfident(0.75, 1.0, 2.0) == pytest.approx(0.75)
    assert overconfident(0.3, 0.0, 0.0) == 0.3
    assert arithmetic_credit("2+3=5 and 4*5=21, 10/2=5") == pytest.approx(3 / 5)        # (1 + 2 right)/(2 + 3)
    assert arithmetic_credit("no equations") == 0.5


def test_unknown_search_method_says_what_to_choose():
    with pytest.raises(ValueError, match="unknown search method 'epff'; choose one of: best_of_n, pf, epf"):
        make_search_config("epff")
    config = make_search_config("epf", n_particles=4)
    assert (config.annealing, config.resampling, config.temperature_method, config.n_particles) == (
        True, "systematic", "ess", 4)


def test_particle_filters_and_best_of_n_run_on_the_tiny_policy():
    from minirl.models import load_policy
    from minirl.tasks import get_task
    from minirl.warmstart import default_path

    task = get_task("countdown_steps")
    model, tokenizer = load_policy(default_path("countdown_steps", "smoke"))
    examples = task.eval[:3]
    runs = {m: run_search(m, model, tokenizer, task, examples, seed=0, n_particles=4, overconfidence=3.0)
            for m in ("best_of_n", "pf", "epf")}
    again = run_search("epf", model, tokenizer, task, examples, seed=0, n_particles=4, overconfidence=3.0)
    assert again.completions == runs["epf"].completions                       # seeded
    for m, result in runs.items():
        assert len(result.completions) == 3 and set(result.rewards) <= {0.0, 1.0}
        assert all(c >= r for c, r in zip(result.covered, result.rewards))   # the chosen one is among the final N
        assert all(0 < t <= 4 * task.max_new_tokens for t in result.tokens)      # ≤ N completions of tokens
    for log in runs["pf"].steps + runs["epf"].steps:
        assert [row["t"] for row in log] == list(range(1, len(log) + 1)) and len(log) <= 3   # 2 equations, answer
        assert all(1 <= row["ancestors"] <= 4 and row["temperature"] >= 1.0 for row in log)
        assert all(a["ancestors"] >= b["ancestors"] for a, b in zip(log, log[1:]))          # lineages only die
    assert all(row["temperature"] == 1.0 for log in runs["pf"].steps for row in log)
