"""A synthetic character language for training tiny language models from scratch (no downloads).

Each example is a random word of `length` letters drawn uniformly from the first `letters` letters
of the alphabet, a separator, and then a deterministic function of the word:

    copy      "dbhae>dbhae."       the word again
    reverse   "dbhae<eahbd."       the word backwards

The second half can only be predicted by attending back to the first: at ">" the model must find
the first letter of the word, then the next, and so on, which is what attention heads are for. A
sequence packs `seq_len // (2·length + 2)` examples end to end. Every random letter costs log(letters)
nats, and everything else is predictable, so the best possible mean loss over the T − 1 predicted
positions of a sequence is (`loss_floor`)

    floor = (n_examples · length − 1) · log(letters) / (T − 1)

(the first letter of a sequence is input only, never predicted). A model at the floor has learned
the language; a loss above log(letters) has not even learned the letter frequencies.
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Language:
    name: str
    separator: str
    reverse: bool
    summary: str


LANGUAGES = {
    "copy": Language("copy", ">", False, "a random word, '>', the same word, '.'"),
    "reverse": Language("reverse", "<", True, "a random word, '<', the word backwards, '.'"),
}


def get_language(name: str) -> Language:
    if name not in LANGUAGES:
        raise ValueError(f"unknown language {name!r}; choose one of: {', '.join(LANGUAGES)}")
    return LANGUAGES[name]


def example_length(length: int) -> int:
    """Characters in one example: word, separator, answer, '.'."""
    return 2 * length + 2


def _examples_per_sequence(seq_len: int, length: int) -> int:
    n = seq_len // example_length(length)
    if n < 1:
        raise ValueError(f"seq_len={seq_len} is shorter than one example ({example_length(length)} characters "
                         f"for words of length {length}); use seq_len ≥ {example_length(length)}")
    return n


def sample_text(language: str, n_sequences: int, seq_len: int, length: int = 6, letters: int = 8,
                seed: int = 0) -> list[str]:
    """`n_sequences` strings, each `n_examples · example_length(length)` ≤ seq_len characters long."""
    lang = get_language(language)
    if not 2 <= letters <= 26:
        raise ValueError(f"letters={letters}; choose 2 to 26")
    n_examples = _examples_per_sequence(seq_len, length)
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(letters, (n_sequences, n_examples, length), generator=g)   # (N, E, length)
    alphabet = string.ascii_lowercase[:letters]
    texts = []
    for row in words.tolist():
        parts = []
        for word in row:
            w = "".join(alphabet[i] for i in word)
            parts.append(f"{w}{lang.separator}{w[::-1] if lang.reverse else w}.")
        texts.append("".join(parts))
    return texts


def make_token_batches(tokenizer, language: str, n_sequences: int, seq_len: int, length: int = 6,
                       letters: int = 8, seed: int = 0) -> torch.Tensor:
    """The sampled sequences as token ids (N, T') of the character tokenizer, T' ≤ seq_len (no padding)."""
    texts = sample_text(language, n_sequences, seq_len, length, letters, seed)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def loss_floor(seq_len: int, length: int = 6, letters: int = 8) -> float:
    """Lowest achievable mean cross-entropy (nats per predicted character) of a packed sequence."""
    n_examples = _examples_per_sequence(seq_len, length)
    T = n_examples * example_length(length)
    return (n_examples * length - 1) * math.log(letters) / (T - 1)
