"""MR, the Rotten Tomatoes sentence-polarity data (Pang & Lee 2005), from vaderSentiment 3.3.2.

``movieReviewSnippets_GroundTruth.txt`` (Hutto & Gilbert, ICWSM 2014) holds the 10,605 sentences
as tab-separated ``id``, mean human rating (−4..+4) and text. The label is the sign of the
rating (1 positive, 0 negative); the 37 sentences rated exactly 0 are dropped, which leaves
5,242 positive and 5,326 negative (10,568). The ids are ordered by polarity, so the splits come
from a seeded permutation (:data:`SPLIT_SEED`): the first :data:`N_TEST` rows are ``test``, the
next :data:`N_VALIDATION` ``validation``, the rest (7,568) ``train``.

Sentences are tokenised by the checkpoint's ``tokenizer.json`` (the ``tokenizers`` library) with
its own padding and truncation switched off and ours on: ``[CLS] … [SEP]`` cut to
``max_tokens``, padded with 0 to the longest sentence of the split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hwnas.errors import InputError
from hwnas.task import Feeds, Split, Task

N_TEST = 2_000
N_VALIDATION = 1_000
SPLIT_SEED = 0
EXPECTED = {"rows": 10_605, "positive": 5_242, "negative": 5_326}
MAX_TOKENS = 64
"""Tokens per sentence kept (with [CLS] and [SEP]); 98% of MR sentences fit whole."""


@dataclass(frozen=True)
class Sentences:
    """MR as read: ``texts`` [N] and ``labels`` int64 [N] (1 positive), in file order."""

    texts: tuple[str, ...]
    labels: np.ndarray


def read_mr(path: str | os.PathLike) -> Sentences:
    """Read and check the ratings file (see the module doc).

    Raises:
        InputError: missing, a malformed line (naming its number), or counts other than MR's.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"MR file {path} does not exist")
    texts: list[str] = []
    labels: list[int] = []
    rows = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            rating = float(parts[1])
        except (IndexError, ValueError):
            raise InputError(f"{path}:{number}: not 'id<TAB>rating<TAB>text'") from None
        rows += 1
        if rating == 0.0:
            continue
        texts.append("\t".join(parts[2:]).strip())
        labels.append(1 if rating > 0 else 0)
    out = Sentences(tuple(texts), np.asarray(labels, dtype=np.int64))
    counts = {"rows": rows, "positive": int(out.labels.sum()), "negative": int((out.labels == 0).sum())}
    if counts != EXPECTED:
        raise InputError(f"{path} is not the MR file hwnas expects: {counts}, expected {EXPECTED}")
    return out


def split_rows(n: int, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Row indices of ``test``, ``validation`` and ``train`` (seeded permutation of ``n`` rows)."""
    order = np.random.default_rng(seed).permutation(n)
    return {"test": order[:N_TEST], "validation": order[N_TEST:N_TEST + N_VALIDATION],
            "train": order[N_TEST + N_VALIDATION:]}


def load_tokenizer(path: str | os.PathLike, max_tokens: int = MAX_TOKENS):
    """The ``tokenizers.Tokenizer`` of ``tokenizer.json``, its padding off and truncation at ``max_tokens``."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise InputError(f"tokenizer file {path} does not exist")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the Rust library raises its own exception type
        raise InputError(f"{path} is not a tokenizers file ({exc})") from None
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def encode(tokenizer, texts: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)``, int64 [N, L], padded with 0 to the longest text's L."""
    encodings = tokenizer.encode_batch(list(texts))
    length = max([len(e.ids) for e in encodings] + [1])
    ids = np.zeros((len(encodings), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


@dataclass(frozen=True)
class TokenSplit(Split):
    """Tokenised sentences: ``input_ids``, ``attention_mask`` int64 [N, L], ``labels`` int64 [N]."""

    name: str
    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray

    def feeds(self, rows: np.ndarray, *, trim: bool = False) -> Feeds:
        ids, mask = self.input_ids[rows], self.attention_mask[rows]
        if trim:
            length = max(1, int(mask.sum(axis=1).max())) if len(rows) else 1
            ids, mask = ids[:, :length], mask[:, :length]
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ascontiguousarray(mask, dtype=np.int64),
                "token_type_ids": np.zeros_like(ids)}

    def order(self) -> np.ndarray:
        return np.argsort(self.attention_mask.sum(axis=1), kind="stable").astype(np.int64)

    def subset(self, rows: np.ndarray, name: str | None = None) -> TokenSplit:
        """The examples ``rows`` as a split of their own."""
        mask = self.attention_mask[rows]
        length = max(1, int(mask.sum(axis=1).max())) if len(rows) else 1
        return TokenSplit(name or self.name, self.input_ids[rows, :length], mask[:, :length], self.labels[rows])


@lru_cache(maxsize=4)
def mr_task(mr_path: str, tokenizer_path: str, max_tokens: int = MAX_TOKENS, seed: int = SPLIT_SEED) -> Task:
    """MR as a :class:`~hwnas.task.Task` of :class:`TokenSplit` s (read and tokenised once per process)."""
    data = read_mr(mr_path)
    tokenizer = load_tokenizer(tokenizer_path, max_tokens)
    splits = {}
    for name, rows in split_rows(len(data.labels), seed).items():
        ids, mask = encode(tokenizer, [data.texts[r] for r in rows])
        splits[name] = TokenSplit(name, ids, mask, data.labels[rows])
    return Task("mr", 2, validation=splits["validation"], test=splits["test"], train=splits["train"], seed=seed)
