"""GSM8K / MATH-500: local copies load offline, prompts are exact, and math-verify grades answers.

The records in tests/data/ are written for these tests in the datasets' own formats (they
are not dataset text); every gold answer there was worked out by hand.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import huggingface_hub.constants  # noqa: E402
import pytest  # noqa: E402

from minirl import math_data  # noqa: E402
from minirl.math_data import (BOXED_INSTRUCTION, GoldAnswer, format_prompt, gsm8k_example,  # noqa: E402
                              gsm8k_gold, load_gsm8k, load_math500, make_gsm8k, make_math500,
                              math500_example, math_reward)
from minirl.models import build_tokenizer  # noqa: E402
from minirl.tasks import Example  # noqa: E402

DATA = Path(__file__).parent / "data"
GSM8K_FILE, MATH500_FILE = DATA / "gsm8k_sample.jsonl", DATA / "math500_sample.jsonl"
GSM = Example("q", GoldAnswer("1234", accept_plain_number=True))
HALF = Example("q", GoldAnswer("\\frac{1}{2}"))
POLAR = Example("q", GoldAnswer("(3, \\frac{\\pi}{2})"))


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch):
    """datasets read the env at import (maybe before this file), so force offline mode here too."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("MINIRL_GSM8K_PATH", raising=False)
    monkeypatch.delenv("MINIRL_MATH500_PATH", raising=False)


# ---------------------------------------------------------------- loading
def test_local_jsonl_loads_every_record_with_its_fields():
    gsm, math = load_gsm8k(path=GSM8K_FILE), load_math500(path=MATH500_FILE)
    assert len(gsm) == 10 and set(gsm[0]) == {"question", "answer"}
    assert gsm[0]["question"].startswith("A baker makes 24 muffins")
    assert len(math) == 11
    assert set(math[0]) == {"problem", "solution", "answer", "subject", "level", "unique_id"}
    assert math[0]["answer"] == "\\frac{14}{3}" and math[0]["level"] == 1
    assert len(load_gsm8k(path=GSM8K_FILE, limit=3)) == 3


@pytest.mark.parametrize("kind", ["parquet", "save_to_disk", "save_to_disk_dict"])
def test_other_local_formats_give_the_same_records(tmp_path, kind):
    ds = datasets.load_dataset("json", data_files=str(GSM8K_FILE), split="train")
    target = tmp_path / ("gsm8k.parquet" if kind == "parquet" else "gsm8k")
    if kind == "parquet":
        ds.to_parquet(str(target))
    elif kind == "save_to_disk":
        ds.save_to_disk(str(target))
    else:
        datasets.DatasetDict({"train": ds.select(range(7)), "test": ds.select(range(7, 10))}).save_to_disk(str(target))
    expected = ds.to_list()[7:] if kind == "save_to_disk_dict" else ds.to_list()
    assert load_gsm8k("test", path=target) == expected


def test_env_var_points_at_the_local_copy(monkeypatch):
    monkeypatch.setenv("MINIRL_MATH500_PATH", str(MATH500_FILE))
    assert [r["unique_id"] for r in load_math500(limit=2)] == ["test/algebra/1.json", "test/precalculus/1.json"]


@pytest.mark.parametrize("loader, repo, env_var", [(load_gsm8k, "openai/gsm8k", "MINIRL_GSM8K_PATH"),
                                                   (load_math500, "HuggingFaceH4/MATH-500", "MINIRL_MATH500_PATH")])
def test_unreachable_hub_names_the_dataset_and_the_local_remedy(loader, repo, env_var):
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        loader()
    message = str(info.value)
    assert repo in message and "path=" in message and env_var in message and ".to_json(" in message
    assert isinstance(info.value.__cause__, OSError)  # the original error is chained, not lost
    assert time.perf_counter() - start < 5  # offline mode fails at once, no retries


def test_bad_split_and_bad_paths_say_what_is_valid(tmp_path):
    with pytest.raises(ValueError, match="no split 'train'; choose one of: test"):
        load_math500("train", path=MATH500_FILE)
    with pytest.raises(FileNotFoundError, match="no dataset copy at"):
        load_gsm8k(path=tmp_path / "missing.jsonl")
    (tmp_path / "gsm8k.csv").write_text("question,answer\n")
    with pytest.raises(ValueError, match="cannot read 'gsm8k.csv'; use one of: .jsonl, .json, .parquet"):
        load_gsm8k(path=tmp_path / "gsm8k.csv")
    with pytest.raises(ValueError, match="no 'problem' field"):
        math500_example(load_gsm8k(path=GSM8K_FILE)[0])  # a GSM8K copy given as MATH-500


# ---------------------------------------------------------------- records → examples
def test_gsm8k_gold_is_the_number_after_the_hashes_without_commas():
    assert gsm8k_gold("25 * 50 = <<25*50=1250>>1250\n#### 1,250") == "1250"
    assert gsm8k_gold("#### 7") == "7"
    with pytest.raises(ValueError, match="no '#### <number>' line"):
        gsm8k_gold("the answer is 7")


def test_records_become_examples_with_plain_prompts_and_gold_answers():
    gsm = gsm8k_example(load_gsm8k(path=GSM8K_FILE)[2])
    assert gsm.prompt == (f"{BOXED_INSTRUCTION}\n\nQuestion: A school buys 25 boxes of pencils. Each box "
                          "holds 50 pencils. How many pencils does the school buy?\nAnswer:")
    assert gsm.answer == GoldAnswer("1250", accept_plain_number=True)
    math = math500_example(load_math500(path=MATH500_FILE)[0])
    assert math.prompt == f"{BOXED_INSTRUCTION}\n\nQuestion: Solve for $x$: $3x + 7 = 21$.\nAnswer:"
    assert math.answer == GoldAnswer("\\frac{14}{3}", accept_plain_number=False)


# ---------------------------------------------------------------- prompts
def test_chat_template_is_applied_exactly():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    assert format_prompt("What is 2+3?", tokenizer, system="Box it.") == \
        "<|system|>Box it.\n<|user|>What is 2+3?\n<|assistant|>"
    assert format_prompt("What is 2+3?", tokenizer, system=None) == "<|user|>What is 2+3?\n<|assistant|>"


def test_without_a_chat_template_the_prompt_is_plain_text():
    tokenizer = build_tokenizer()  # minirl's character tokenizer has no chat template
    assert format_prompt("What is 2+3?", tokenizer, system="Box it.") == "Box it.\n\nQuestion: What is 2+3?\nAnswer:"
    assert format_prompt("What is 2+3?", None, system=None) == "Question: What is 2+3?\nAnswer:"


# ---------------------------------------------------------------- reward
@pytest.mark.parametrize("completion", ["So she pays $\\boxed{1234}$.", "\\boxed{1,234}", "The total is 1,234 dollars.",
                                        "5 boxes ... so 1234", "The answer is 1234.00", "\\boxed{1234} dollars, not 7"])
def test_gsm8k_accepts_the_right_number_boxed_or_plain(completion):
    assert math_reward(completion, GSM) == 1.0


@pytest.mark.parametrize("completion", ["\\boxed{1243}", "1,234 apples cost 7 dollars",  # the last number is 7
                                        "\\boxed{1234} or \\boxed{1243}", "no number here"])
def test_gsm8k_rejects_wrong_hedged_or_missing_answers(completion):
    assert math_reward(completion, GSM) == 0.0


@pytest.mark.parametrize("completion", ["$\\boxed{\\frac{1}{2}}$", "\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{\\dfrac12}",
                                        "\\boxed{\\frac{2}{4}}", "The final answer is $\\frac{1}{2}$."])
def test_math_accepts_equivalent_forms(completion):
    assert math_reward(completion, HALF) == 1.0


@pytest.mark.parametrize("completion", ["\\boxed{\\frac{1}{3}}", "\\boxed{0.51}", "x = 1/2",  # MATH needs \boxed
                                        "we get $\\frac{1}{2}$ halfway, then \\boxed{2}"])
def test_math_rejects_wrong_or_unboxed_answers(completion):
    assert math_reward(completion, HALF) == 0.0


def test_math_compares_tuples_in_order():
    assert math_reward("\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}", POLAR) == 1.0
    assert math_reward("\\boxed{(3, \\pi/2)}", POLAR) == 1.0
    assert math_reward("\\boxed{(\\frac{\\pi}{2}, 3)}", POLAR) == 0.0


def test_every_sample_solution_scores_one_under_its_own_gold():
    for record in load_gsm8k(path=GSM8K_FILE):  # ends "#### 7": the plain final number
        assert math_reward(record["answer"], gsm8k_example(record)) == 1.0, record
    for record in load_math500(path=MATH500_FILE):
        assert math_reward(record["solution"], math500_example(record)) == 1.0, record


HOSTILE = ["", "   ", None, 42, "}{" * 5_000, "$" * 50_000, "\\boxed{" * 10_000, "1" * 100_000,
           "\\boxed{__import__('os').system('touch PWNED')}", "__import__('os').system('touch PWNED')",
           "\\boxed{\\input{/etc/passwd}}", "\\boxed{eval('1233+1')}", "\x00\\boxed{\x00}"]


@pytest.mark.parametrize("completion", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_completions_score_zero_quickly_and_run_nothing(completion, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    assert math_reward(completion, GSM) == 0.0
    assert math_reward(completion, HALF) == 0.0
    assert time.perf_counter() - start < 3
    assert not (tmp_path / "PWNED").exists()


def test_the_answer_at_the_end_of_a_huge_completion_still_counts():
    assert math_reward("blah " * 200_000 + "\\boxed{\\frac{1}{2}}", HALF) == 1.0


def test_a_power_tower_is_cut_off_by_the_timeout(monkeypatch):
    monkeypatch.setattr(math_data, "TIMEOUT_S", 1)
    start = time.perf_counter()
    assert math_reward("\\boxed{9^{9^{9^{9}}}}", Example("q", GoldAnswer("3"))) == 0.0
    assert time.perf_counter() - start < 4  # without the alarm sympy would not return


def test_reward_works_outside_the_main_thread():
    """signal.alarm is main-thread only; math-verify would raise ValueError in a worker."""
    results = []
    worker = threading.Thread(target=lambda: results.extend(
        [math_reward("\\boxed{0.5}", HALF), math_reward("\\boxed{3}", HALF)]))
    worker.start()
    worker.join(timeout=30)
    assert results == [1.0, 0.0]


# ---------------------------------------------------------------- tasks
def test_make_gsm8k_from_one_file_holds_out_a_seeded_eval_set():
    task = make_gsm8k(seed=0, path=GSM8K_FILE, n_eval=3)
    again, other = make_gsm8k(seed=0, path=GSM8K_FILE, n_eval=3), make_gsm8k(seed=1, path=GSM8K_FILE, n_eval=3)
    assert (len(task.train), len(task.eval)) == (7, 3)
    assert not {e.prompt for e in task.train} & {e.prompt for e in task.eval}
    assert task.eval == again.eval and task.eval != other.eval
    assert task.reward is math_reward and task.max_new_tokens == 512
    assert task.info["dataset"] == "openai/gsm8k" and task.name == "gsm8k"
    assert len(make_gsm8k(path=GSM8K_FILE, n_eval=3, n_train=2).train) == 2


def test_make_math500_splits_its_single_split_and_uses_the_tokenizer():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}[assistant]"
    task = make_math500(seed=0, tokenizer=tokenizer, path=MATH500_FILE, n_eval=4)
    assert (len(task.train), len(task.eval)) == (7, 4) and task.max_new_tokens == 1024
    assert task.info["dataset"] == "HuggingFaceH4/MATH-500"
    assert all(e.prompt.startswith(f"[system]{BOXED_INSTRUCTION}[user]") and e.prompt.endswith("[assistant]")
               for e in task.train + task.eval)
    golds = sorted(e.answer.latex for e in task.train + task.eval)
    assert golds == sorted(r["answer"] for r in load_math500(path=MATH500_FILE))


def test_make_gsm8k_from_a_saved_dataset_dict_uses_its_train_and_test_splits(tmp_path):
    ds = datasets.load_dataset("json", data_files=str(GSM8K_FILE), split="train")
    datasets.DatasetDict({"train": ds.select(range(6)), "test": ds.select(range(6, 10))}).save_to_disk(str(tmp_path))
    task = make_gsm8k(path=tmp_path, n_eval=3)
    assert (len(task.train), len(task.eval)) == (6, 3)
    test_golds = {gsm8k_gold(r["answer"]) for r in ds.to_list()[6:]}
    assert {e.answer.latex for e in task.eval} <= test_golds
