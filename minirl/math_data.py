"""Real math tasks: GSM8K and MATH-500, with answers checked by math-verify.

The toy tasks in `minirl.tasks` let a tiny model collapse its entropy in minutes on a CPU;
these let a real instruct model (e.g. Qwen2.5-0.5B-Instruct) do the same on the problems the
papers report. A prompt asks for the final answer in `\\boxed{}`; the reward is 1 when
math-verify finds that answer mathematically equal to the gold one (`\\frac{1}{2}` = `0.5`),
else 0. Model text is never executed: math-verify reads LaTeX with an ANTLR grammar, and
only digits and `+-*/^()` ever reach sympy's expression parser. Its work is bounded by TIMEOUT_S
from any thread: in other threads than the main one the check runs in a worker process
(`minirl.math_worker`), so that a `\boxed{9^{9^{9^{9}}}}` cannot freeze the process.

Without internet (or the Hub), point the loaders at a local copy, made once elsewhere:

    import datasets
    datasets.load_dataset("openai/gsm8k", "main", split="train").to_json("gsm8k_train.jsonl")
    datasets.load_dataset("HuggingFaceH4/MATH-500", split="test").to_json("math500.jsonl")

then `make_gsm8k(path="gsm8k_train.jsonl")` or `export MINIRL_GSM8K_PATH=gsm8k_train.jsonl`
(`MINIRL_MATH500_PATH` for MATH-500). A .jsonl/.json/.parquet file or a `save_to_disk`
folder works.
"""
from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import datasets

from .math_worker import BOXED_FIRST, MAX_COMPLETION_CHARS, PLAIN_NUMBER_TOO, check_in_worker, score  # noqa: F401
from .task_types import Example, Task

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
TIMEOUT_S = 2
"""Seconds math-verify may spend parsing or comparing (`9^{9^{9^9}}` would otherwise hang)."""
HUB = {"gsm8k": ("openai/gsm8k", "main", "MINIRL_GSM8K_PATH", ("train", "test")),
       "math500": ("HuggingFaceH4/MATH-500", None, "MINIRL_MATH500_PATH", ("test",))}


@dataclass(frozen=True)
class GoldAnswer:
    """What `math_reward` needs: the gold answer (LaTeX) and whether a bare number may answer."""

    latex: str
    accept_plain_number: bool = False  # GSM8K: "... so she has 18 eggs." counts; MATH needs \boxed{}


# ---------------------------------------------------------------- loading
def _load(name: str, split: str, path: str | os.PathLike | None, limit: int | None) -> list[dict]:
    repo, config, env_var, splits = HUB[name]
    if split not in splits:
        raise ValueError(f"{repo} has no split {split!r}; choose one of: {', '.join(splits)}")
    path = path or os.environ.get(env_var)
    if path:
        ds = _load_local(Path(path), split)
    else:
        try:
            ds = datasets.load_dataset(repo, config, split=split)
        except OSError as err:  # ConnectionError, OfflineModeIsEnabled, LocalEntryNotFoundError, ...
            copy = f"datasets.load_dataset({repo!r}{f', {config!r}' if config else ''}, split={split!r})"
            raise ConnectionError(
                f"could not load {repo} from the Hugging Face Hub ({type(err).__name__}: {err}). "
                f"Point minirl at a local copy instead: pass path='{name}_{split}.jsonl' or set "
                f"{env_var}=/path/to/{name}_{split}.jsonl. Make the copy on a machine with internet: "
                f"python -c \"import datasets; {copy}.to_json('{name}_{split}.jsonl')\"") from err
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.to_list()


def _load_local(path: Path, split: str) -> datasets.Dataset:
    """One local copy: a data file (its only split) or a `save_to_disk` folder (the named split)."""
    builders = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
    if not path.exists():
        raise FileNotFoundError(f"no dataset copy at {str(path)!r}; give a .jsonl/.json/.parquet file "
                                "or a save_to_disk folder")
    if path.is_file():
        if path.suffix not in builders:
            raise ValueError(f"cannot read {path.name!r}; use one of: {', '.join(builders)} or a folder")
        return datasets.load_dataset(builders[path.suffix], data_files=str(path), split="train")
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"{str(path)!r} has no split {split!r}; it has: {', '.join(loaded)}")
        return loaded[split]
    return loaded


def load_gsm8k(split: str = "train", path: str | os.PathLike | None = None,
               limit: int | None = None) -> list[dict]:
    """GSM8K records `{"question", "answer"}` (answer: worked solution ending `#### 42`)."""
    return _load("gsm8k", split, path, limit)


def load_math500(split: str = "test", path: str | os.PathLike | None = None,
                 limit: int | None = None) -> list[dict]:
    """MATH-500 records `{"problem", "solution", "answer", "subject", "level", "unique_id"}`."""
    return _load("math500", split, path, limit)


# ---------------------------------------------------------------- prompts and examples
def format_prompt(question: str, tokenizer=None, system: str | None = BOXED_INSTRUCTION) -> str:
    """The question as the model should see it.

    With a chat template (any instruct model): system + user messages and the assistant's turn
    opened. Without one (a base model, or minirl's tiny character tokenizer, whose vocabulary
    has no newline): plain `"{system}\\n\\nQuestion: {question}\\nAnswer:"` text.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + \
                   [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return (f"{system}\n\n" if system else "") + f"Question: {question}\nAnswer:"


def gsm8k_gold(answer_field: str) -> str:
    """The number after GSM8K's `####`, without thousands commas: `'...#### 1,234'` → `'1234'`."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '#### <number>' line: {answer_field[-80:]!r}")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")


def _field(record: dict, key: str, dataset: str):
    if key not in record:
        raise ValueError(f"{dataset} record has no {key!r} field (it has: {', '.join(record)}); wrong file?")
    return record[key]


def gsm8k_example(record: dict, tokenizer=None, system: str | None = BOXED_INSTRUCTION) -> Example:
    gold = gsm8k_gold(_field(record, "answer", "GSM8K"))
    prompt = format_prompt(_field(record, "question", "GSM8K"), tokenizer, system)
    return Example(prompt, GoldAnswer(gold, accept_plain_number=True))


def math500_example(record: dict, tokenizer=None, system: str | None = BOXED_INSTRUCTION) -> Example:
    prompt = format_prompt(_field(record, "problem", "MATH-500"), tokenizer, system)
    return Example(prompt, GoldAnswer(_field(record, "answer", "MATH-500")))


# ---------------------------------------------------------------- reward
def math_reward(completion: str, example: Example) -> float:
    """1.0 if the completion's final answer equals the gold one (checked by math-verify), else 0.0.

    `example.answer` is a GoldAnswer (or a bare LaTeX string). The answer read is the last
    `\\boxed{...}`; for GSM8K (`accept_plain_number`) a bare final number also counts. Two
    boxed answers are read as a set, so hedging scores 0. math-verify bounds its work with
    `signal.alarm` (TIMEOUT_S for parsing, and again for comparing), which only a main thread may
    set: from the main thread the check runs here; from any other thread it runs in that thread's
    worker process (`math_worker.check_in_worker`), which is killed after 3·TIMEOUT_S + 2 s (a
    hostile `9^{9^{9^9}}` would otherwise freeze every thread: sympy's big-integer arithmetic
    holds the GIL). Any failure scores 0.0; it never raises.
    """
    gold = example.answer if isinstance(example.answer, GoldAnswer) else GoldAnswer(str(example.answer))
    if not isinstance(completion, str) or not completion.strip():
        return 0.0
    if threading.current_thread() is threading.main_thread():
        return score(completion, gold.latex, gold.accept_plain_number, TIMEOUT_S)
    return check_in_worker(completion, gold.latex, gold.accept_plain_number, TIMEOUT_S, 3 * TIMEOUT_S + 2)


# ---------------------------------------------------------------- tasks
def _shuffled(records: list[dict], seed: int) -> list[dict]:
    return random.Random(seed).sample(records, len(records))


def make_gsm8k(seed: int = 0, tokenizer=None, path=None, n_train: int | None = None,
               n_eval: int = 256, max_new_tokens: int = 512) -> Task:
    """GSM8K: grade-school word problems, integer answers.

    Train comes from the train split and eval from the test split, each shuffled with `seed`
    and cut to n_train (None: all 7,473) and n_eval (of 1,319). A local copy of one split (a
    file, or a saved Dataset rather than DatasetDict) is shuffled and its first n_eval (at most half)
    held out. 512 new tokens fit the
    step-by-step solutions of a 0.5-1.5B instruct model with room to spare.
    """
    path = path or os.environ.get("MINIRL_GSM8K_PATH")
    if path and not (Path(path) / "dataset_dict.json").exists():  # a file or a one-split folder
        records = _shuffled(load_gsm8k(path=path), seed)
        n_eval = min(n_eval, len(records) // 2)                  # a small copy keeps half to train on
        train, test = records[n_eval:], records[:n_eval]
    else:
        train = _shuffled(load_gsm8k("train", path), seed)
        test = _shuffled(load_gsm8k("test", path), seed)[:n_eval]
    return Task(name="gsm8k", train=[gsm8k_example(r, tokenizer) for r in train[:n_train]],
                eval=[gsm8k_example(r, tokenizer) for r in test], reward=math_reward,
                max_new_tokens=max_new_tokens,
                info={"dataset": "openai/gsm8k", "config": "main", "source": str(path or "hub")})


def make_math500(seed: int = 0, tokenizer=None, path=None, n_train: int | None = None,
                 n_eval: int = 100, max_new_tokens: int = 1024) -> Task:
    """MATH-500: competition problems with LaTeX answers (fractions, radicals, tuples, intervals).

    MATH-500 is a single 500-problem test split, so it is shuffled with `seed` and its first
    n_eval problems (at most half) held out for eval; the rest (400 by default, or n_train of them) train.
    Competition solutions run longer than GSM8K's, hence 1024 new tokens.
    """
    path = path or os.environ.get("MINIRL_MATH500_PATH")
    records = _shuffled(load_math500("test", path), seed)
    n_eval = min(n_eval, len(records) // 2)                      # a small copy keeps half to train on
    train, test = records[n_eval:][:n_train], records[:n_eval]
    return Task(name="math500", train=[math500_example(r, tokenizer) for r in train],
                eval=[math500_example(r, tokenizer) for r in test], reward=math_reward,
                max_new_tokens=max_new_tokens,
                info={"dataset": "HuggingFaceH4/MATH-500", "source": str(path or "hub")})
