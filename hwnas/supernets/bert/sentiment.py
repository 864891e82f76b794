"""A synthetic benchmark task: scoped-negation sentiment classification ("sentiment-synth").

The task is built in, deterministic and needs no download. It gives a small weight-sharing
BERT-style supernet a real accuracy trade-off: the label depends on which negator sits close enough
before which sentiment word, among several of each at varying positions, so a bag of words - or a
one-layer, one-head model, which is little more than a weighted bag of (word, position) pairs -
cannot solve it, while a deeper multi-head model can.

Vocabulary (158 tokens)
    ``[PAD]`` = 0, ``[CLS]`` = 1, ``[SEP]`` = 2, ``[UNK]`` = 3, then 20 positive sentiment words
    (``good``, ``great`` ...), 20 negative ones (``bad``, ``awful`` ...), 6 negators (``not``,
    ``never``, ``hardly``, ``barely``, ``scarcely``, ``rarely``), 6 intensifiers (``very``,
    ``extremely``, ``really``, ``truly``, ``incredibly``, ``remarkably``) and 102 neutral filler
    words (``the``, ``movie``, ``was`` ...).

Label rule (:func:`label_of`, the single source of truth; the generator uses it too)
    Every sentiment word contributes its polarity (+1 positive, -1 negative), multiplied by -1 if a
    negator is among the 2 tokens immediately before it (``not good``, ``not a good``,
    ``not very good``; one flip however many negators are there), and by 2 if the token
    immediately before it is an intensifier (``very good`` = +2, ``not very good`` = -2). The
    label is 1 (positive) if the sum of the contributions is > 0 and 0 (negative) otherwise; a
    negator 3 or more tokens before a sentiment word (``not the old movie good``), or after it,
    has no effect.

Grammar (all choices drawn from a seeded ``numpy.random.Generator``)
    sentence := FILLER{0..2} phrase (FILLER{1..3} phrase){0..2} FILLER{0..2}
    phrase   := [NEG FILLER{g}] [INT] SENT
    A sentence has 1, 2 or 3 phrases (probabilities 0.3, 0.4, 0.3). It aims at a polarity t = +1
    or -1 (equally likely); its first phrase aims at t, each later one at t with probability 0.65
    and at -t otherwise. A phrase carries an intensifier with probability 0.25. With probability
    0.35 it is negated: a negator sits inside the window (distance 1 or 2 from SENT, counting the
    intensifier and g <= 1 filler words in between) and SENT has the opposite of the phrase's
    aimed polarity. Otherwise, with probability 0.4, a distractor negator sits just outside the
    window (distance 3 to 5, filler in between). The label is then computed from the tokens by the
    rule; sentences with score 0, and repeats of an earlier sentence, are discarded. Encoded, a
    sentence reads ``[CLS] w1 ... wn [SEP] [PAD] ...`` padded to ``seq_len`` tokens (at most
    ``seq_len - 2`` words; with the default 32 every sentence fits).

Splits are drawn from one stream of unique sentences, so no sentence appears in two splits, and
each split is class-balanced exactly (an odd size gets the extra example in class 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hwnas.checks import check_int
from hwnas.errors import InputError
from hwnas.task import Feeds, Split, Task

__all__ = [
    "FILLER",
    "INTENSIFIERS",
    "NEGATION_WINDOW",
    "NEGATIVE",
    "NEGATORS",
    "POSITIVE",
    "SPECIAL_TOKENS",
    "TASK_NAMES",
    "VOCAB",
    "TextSplit",
    "TextTask",
    "default_task",
    "label_of",
    "make_task",
    "score_of",
    "trimmed",
]

TASK_NAMES = ("sentiment-synth",)
SPLIT_NAMES = ("train", "validation", "test")

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]")
PAD_ID, CLS_ID, SEP_ID, UNK_ID = 0, 1, 2, 3

# fmt: off
POSITIVE = (
    "good", "great", "excellent", "wonderful", "pleasant", "superb", "brilliant", "lovely",
    "delightful", "enjoyable", "charming", "clever", "beautiful", "perfect", "amazing",
    "impressive", "satisfying", "friendly", "tasty", "fantastic",
)
NEGATIVE = (
    "bad", "awful", "terrible", "poor", "boring", "dull", "horrible", "weak", "bland", "messy",
    "annoying", "painful", "ugly", "rude", "stale", "clumsy", "dreadful", "lousy", "tedious",
    "disappointing",
)
NEGATORS = ("not", "never", "hardly", "barely", "scarcely", "rarely")
INTENSIFIERS = ("very", "extremely", "really", "truly", "incredibly", "remarkably")
FILLER = (
    "the", "a", "an", "this", "that", "these", "it", "its", "we", "they", "i", "he", "she", "you",
    "our", "their", "my", "his", "her", "some", "movie", "film", "food", "service", "place", "plot",
    "story", "actor", "cast", "music", "room", "staff", "meal", "book", "show", "game", "hotel",
    "car", "phone", "album", "song", "ending", "scene", "dinner", "menu", "price", "view", "trip",
    "was", "is", "were", "are", "be", "been", "seemed", "felt", "looked", "sounded", "tasted",
    "became", "stayed", "and", "of", "in", "with", "at", "for", "on", "to", "from", "about",
    "after", "before", "during", "overall", "today", "yesterday", "again", "also", "still",
    "honestly", "frankly", "mostly", "then", "there", "here", "which", "as", "one", "two", "first",
    "last", "new", "old", "big", "small", "long", "short", "red", "blue", "local", "whole",
)
# fmt: on

NEGATION_WINDOW = 2
"""A negator flips a sentiment word when it is at most this many tokens before it."""

_POS = frozenset(POSITIVE)
_NEG = frozenset(NEGATIVE)
_NEGATORS = frozenset(NEGATORS)
_INTENS = frozenset(INTENSIFIERS)

VOCAB: tuple[str, ...] = (
    SPECIAL_TOKENS + POSITIVE + NEGATIVE + NEGATORS + INTENSIFIERS + FILLER
)
assert len(set(VOCAB)) == len(VOCAB), "duplicate vocabulary entry"

# Generator knobs (see the module doc); changing them changes the task.
_PHRASE_WEIGHTS = (0.3, 0.4, 0.3)  # P(a sentence has 1, 2, 3 phrases)
_P_ALIGNED = 0.65  # a later phrase aims at the sentence's polarity
_P_INTENSIFIED = 0.25  # a phrase carries an intensifier
_P_NEGATED = 0.35  # a phrase carries a negator inside the window
_P_DISTRACTOR = 0.4  # otherwise, a phrase carries a negator just outside the window
# at most this many filler words between an in-window negator and its phrase's core
_MAX_NEG_GAP = 1
# distances of a distractor negator from its sentiment word (inclusive range)
_DISTRACTOR_DIST = (NEGATION_WINDOW + 1, NEGATION_WINDOW + 3)


# --------------------------------------------------------------------------------------------
# label rule


def score_of(tokens: list[str] | tuple[str, ...]) -> int:
    """Sentiment score of a tokenised sentence under the task's label rule (see module doc).

    Words are compared lower-cased; special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``) and
    unknown words count as neutral filler.
    """
    words = [str(t).lower() for t in tokens]
    score = 0
    for i, w in enumerate(words):
        if w in _POS:
            value = 1
        elif w in _NEG:
            value = -1
        else:
            continue
        if any(words[j] in _NEGATORS for j in range(max(0, i - NEGATION_WINDOW), i)):
            value = -value
        if i >= 1 and words[i - 1] in _INTENS:
            value *= 2
        score += value
    return score


def label_of(tokens: list[str] | tuple[str, ...]) -> int:
    """Class of a tokenised sentence: 1 (positive) if :func:`score_of` is > 0, else 0 (negative)."""
    return 1 if score_of(tokens) > 0 else 0


# --------------------------------------------------------------------------------------------
# data containers


def trimmed(input_ids: np.ndarray, attention_mask: np.ndarray) -> Feeds:
    """The model's inputs (input_ids, attention_mask, token_type_ids), int64 [B, L], cut to the
    longest row L (padding beyond it is masked out, so no output changes)."""
    length = max(1, int(attention_mask.sum(axis=1).max()))
    ids = np.ascontiguousarray(input_ids[:, :length], dtype=np.int64)
    mask = np.ascontiguousarray(attention_mask[:, :length], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


@dataclass(frozen=True)
class TextSplit(Split):
    """One split: ``input_ids`` and ``attention_mask`` are int64 ``[N, S]``, ``labels`` int64 ``[N]``."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray
    name: str = "split"

    def feeds(self, rows: np.ndarray, *, trim: bool = False) -> Feeds:
        """The encoder's three inputs for ``rows``; ``trim`` cuts them to the batch's longest
        sentence (its padding is masked out anyway)."""
        ids, mask = self.input_ids[rows], self.attention_mask[rows]
        if trim:
            return trimmed(ids, mask)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ascontiguousarray(mask, dtype=np.int64),
                "token_type_ids": np.zeros_like(ids)}

    def order(self) -> np.ndarray:
        """By sentence length (stable), so trimmed batches pad least."""
        return np.argsort(self.attention_mask.sum(axis=1), kind="stable").astype(np.int64)


@dataclass(frozen=True)
class TextTask(Task):
    """A tokenised, split, binary text-classification task (a :class:`hwnas.task.Task` whose
    splits are :class:`TextSplit` s)."""

    vocab: tuple[str, ...] = ()
    seq_len: int = 32

    @property
    def num_labels(self) -> int:
        return self.num_classes

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Whitespace-tokenise ``text`` (lower-cased) into ``([CLS] words [SEP] [PAD]...)`` ids and mask.

        Unknown words map to ``[UNK]``; ``[CLS]``/``[SEP]`` in ``text`` are not added twice.
        Raises :class:`InputError` if the sentence does not fit in ``seq_len``.
        """
        index = {tok: i for i, tok in enumerate(self.vocab)}
        words = [w for w in text.split() if w not in ("[CLS]", "[SEP]", "[PAD]")]
        ids = (
            [CLS_ID]
            + [index.get(w if w in index else w.lower(), UNK_ID) for w in words]
            + [SEP_ID]
        )
        if len(ids) > self.seq_len:
            raise InputError(
                f"text has {len(words)} words; at most {self.seq_len - 2} fit in seq_len={self.seq_len}"
            )
        out = np.zeros(self.seq_len, dtype=np.int64)
        out[: len(ids)] = ids
        mask = np.zeros(self.seq_len, dtype=np.int64)
        mask[: len(ids)] = 1
        return out, mask

    def decode(self, ids) -> str:
        """Words of ``ids`` joined by spaces, without ``[CLS]``, ``[SEP]`` and ``[PAD]``."""
        skip = (PAD_ID, CLS_ID, SEP_ID)
        words = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i in skip:
                continue
            words.append(self.vocab[i] if 0 <= i < len(self.vocab) else "[UNK]")
        return " ".join(words)


# --------------------------------------------------------------------------------------------
# generator


class _Draws:
    """Fast consumer of a numpy Generator: uniform floats drawn in blocks."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16) -> None:
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._pos = 0

    def u(self) -> float:
        if self._pos >= len(self._buf):
            self._buf = self._rng.random(self._block).tolist()
            self._pos = 0
        x = self._buf[self._pos]
        self._pos += 1
        return x

    def int(self, lo: int, hi: int) -> int:
        """Uniform integer in ``[lo, hi]`` (inclusive)."""
        return lo + int(self.u() * (hi - lo + 1))

    def pick(self, seq):
        return seq[int(self.u() * len(seq))]


def _phrase(d: _Draws, polarity: int) -> list[str]:
    """Tokens of one phrase aimed at ``polarity`` (+1 / -1), i.e. after any in-window negation."""
    negated = d.u() < _P_NEGATED
    distractor = not negated and d.u() < _P_DISTRACTOR
    intens = d.u() < _P_INTENSIFIED
    word_pol = -polarity if negated else polarity
    out: list[str] = []
    core = ([d.pick(INTENSIFIERS)] if intens else []) + [
        d.pick(POSITIVE if word_pol > 0 else NEGATIVE)
    ]
    if negated or distractor:
        if negated:
            dist = d.int(len(core), min(NEGATION_WINDOW, len(core) + _MAX_NEG_GAP))
        else:
            dist = d.int(*_DISTRACTOR_DIST)
        gap = dist - len(core)  # filler words between the negator and the core
        out.append(d.pick(NEGATORS))
        out.extend(d.pick(FILLER) for _ in range(gap))
    out.extend(core)
    return out


def _sentence(d: _Draws) -> list[str]:
    target = 1 if d.u() < 0.5 else -1
    x, n = d.u(), 1
    for w in _PHRASE_WEIGHTS[:-1]:
        if x < w:
            break
        x -= w
        n += 1
    out = [d.pick(FILLER) for _ in range(d.int(0, 2))]
    for k in range(n):
        if k:
            out.extend(d.pick(FILLER) for _ in range(d.int(1, 3)))
        # later phrases may oppose the sentence's polarity, so that the sum matters
        pol = target if (k == 0 or d.u() < _P_ALIGNED) else -target
        out.extend(_phrase(d, pol))
    out.extend(d.pick(FILLER) for _ in range(d.int(0, 2)))
    return out


def make_task(
    name: str = "sentiment-synth",
    seed: int = 0,
    seq_len: int = 32,
    n_train: int = 16000,
    n_val: int = 2000,
    n_test: int = 2000,
) -> TextTask:
    """Generate the built-in synthetic task deterministically from ``seed`` (see module doc)."""
    if name not in TASK_NAMES:
        raise InputError(
            f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}"
        )
    seed = check_int("seed", seed, 0)
    seq_len = check_int("seq_len", seq_len, 16)
    n_train = check_int("n_train", n_train, 2)
    n_val = check_int("n_val", n_val, 2)
    n_test = check_int("n_test", n_test, 2)
    max_words = seq_len - 2

    sizes = (n_train, n_val, n_test)
    # per split and class, how many examples are wanted (odd sizes: class 0 gets one more)
    wanted = [[(n + 1) // 2, n // 2] for n in sizes]
    need = [sum(w[c] for w in wanted) for c in (0, 1)]
    pools: list[list[tuple[str, ...]]] = [[], []]
    seen: set[tuple[str, ...]] = set()
    rng = np.random.default_rng(seed)
    d = _Draws(rng)
    budget = 50 * (sum(sizes) + 100)
    tries = 0
    while len(pools[0]) < need[0] or len(pools[1]) < need[1]:
        tries += 1
        if tries > budget:
            raise InputError(
                f"could not generate {sum(sizes)} distinct sentences with seq_len={seq_len}"
            )
        words = _sentence(d)
        if len(words) > max_words:
            continue
        score = score_of(words)
        if score == 0:
            continue
        key = tuple(words)
        if key in seen:
            continue
        seen.add(key)
        c = 1 if score > 0 else 0
        if len(pools[c]) < need[c]:
            pools[c].append(key)

    index = {tok: i for i, tok in enumerate(VOCAB)}
    splits = []
    offset = [0, 0]
    for s, n in enumerate(sizes):
        rows: list[tuple[tuple[str, ...], int]] = []
        for c in (0, 1):
            take = wanted[s][c]
            rows.extend((w, c) for w in pools[c][offset[c] : offset[c] + take])
            offset[c] += take
        order = rng.permutation(len(rows))
        ids = np.zeros((n, seq_len), dtype=np.int64)
        mask = np.zeros((n, seq_len), dtype=np.int64)
        labels = np.zeros(n, dtype=np.int64)
        for r, j in enumerate(order.tolist()):
            words, c = rows[j]
            seq = [CLS_ID] + [index[w] for w in words] + [SEP_ID]
            ids[r, : len(seq)] = seq
            mask[r, : len(seq)] = 1
            labels[r] = c
        splits.append(TextSplit(input_ids=ids, attention_mask=mask, labels=labels, name=SPLIT_NAMES[s]))

    return TextTask(
        name=name,
        vocab=VOCAB,
        seq_len=seq_len,
        num_classes=2,
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        seed=seed,
    )


@lru_cache(maxsize=4)
def default_task(name: str = "sentiment-synth", seed: int = 0) -> TextTask:
    """The task the shipped bert-mini checkpoint was trained on (generated once per process)."""
    return make_task(name, seed=seed)
