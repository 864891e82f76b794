"""The built-in synthetic text-classification task (hwnas.supernets.bert.sentiment)."""

import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.supernets.bert.sentiment import (
    NEGATION_WINDOW,
    VOCAB,
    TextSplit,
    TextTask,
    label_of,
    make_task,
    score_of,
)


@pytest.fixture(scope="module")
def task() -> TextTask:
    return make_task(seed=0)


@pytest.fixture(scope="module")
def small() -> TextTask:
    return make_task(seed=3, n_train=1001, n_val=300, n_test=201)


def _splits(t: TextTask) -> list[TextSplit]:
    return [t.train, t.validation, t.test]


def test_vocab_and_metadata(task):
    assert task.vocab[:4] == ("[PAD]", "[CLS]", "[SEP]", "[UNK]")
    assert task.vocab == VOCAB
    assert 100 <= task.vocab_size <= 300
    assert len(set(task.vocab)) == task.vocab_size
    assert (task.name, task.seq_len, task.num_labels, task.seed) == (
        "sentiment-synth",
        32,
        2,
        0,
    )


def test_shapes_and_dtypes(task, small):
    for t, sizes in ((task, (16000, 2000, 2000)), (small, (1001, 300, 201))):
        for split, n in zip(_splits(t), sizes):
            assert split.input_ids.shape == (n, t.seq_len)
            assert split.attention_mask.shape == (n, t.seq_len)
            assert split.labels.shape == (n,)
            assert len(split) == n
            for a in (split.input_ids, split.attention_mask, split.labels):
                assert a.dtype == np.int64
            assert split.input_ids.min() >= 0 and split.input_ids.max() < t.vocab_size
            assert set(np.unique(split.labels)) <= {0, 1}


def test_cls_first_and_mask_matches_padding(task):
    for split in _splits(task):
        ids, mask = split.input_ids, split.attention_mask
        assert (ids[:, 0] == 1).all()
        assert ((mask == 1) == (ids != 0)).all()
        # real tokens form a prefix ending with [SEP]; no [CLS]/[SEP] inside
        lengths = mask.sum(axis=1)
        assert (np.diff(mask, axis=1) <= 0).all()
        assert (ids[np.arange(len(ids)), lengths - 1] == 2).all()
        assert ((ids == 1).sum(axis=1) == 1).all() and (
            (ids == 2).sum(axis=1) == 1
        ).all()
        assert (ids != 3).all()  # the generator never needs [UNK]
        assert lengths.min() >= 3


def test_label_balance(task, small):
    for t in (task, small):
        for split in _splits(t):
            frac = split.labels.mean()
            assert 0.45 <= frac <= 0.55
    assert task.train.labels.sum() == 8000  # exact for even sizes


def test_labels_follow_rule(task):
    for split in _splits(task):
        for row in range(0, len(split), 97):
            words = task.decode(split.input_ids[row]).split()
            assert score_of(words) != 0
            assert label_of(words) == split.labels[row]


def test_deterministic_and_seed_dependent(small):
    again = make_task(seed=3, n_train=1001, n_val=300, n_test=201)
    other = make_task(seed=4, n_train=1001, n_val=300, n_test=201)
    for a, b, c in zip(_splits(small), _splits(again), _splits(other)):
        np.testing.assert_array_equal(a.input_ids, b.input_ids)
        np.testing.assert_array_equal(a.attention_mask, b.attention_mask)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert not np.array_equal(a.input_ids, c.input_ids)


def test_splits_disjoint(task):
    seen: set[bytes] = set()
    total = 0
    for split in _splits(task):
        rows = {r.tobytes() for r in split.input_ids}
        assert len(rows) == len(split)  # no duplicates inside a split either
        assert not (rows & seen)
        seen |= rows
        total += len(split)
    assert len(seen) == total


def test_encode_decode_round_trip(task):
    for row in (0, 1, 2, 500):
        ids = task.train.input_ids[row]
        text = task.decode(ids)
        enc, mask = task.encode(text)
        np.testing.assert_array_equal(enc, ids)
        np.testing.assert_array_equal(mask, task.train.attention_mask[row])
    ids, mask = task.encode("The movie was NOT good")
    assert task.decode(ids) == "the movie was not good"
    assert ids[0] == 1 and ids[6] == 2 and mask.sum() == 7
    ids, _ = task.encode("zebra good")
    assert ids[1] == 3 and task.decode(ids) == "[UNK] good"
    with pytest.raises(InputError, match="seq_len=32"):
        task.encode(" ".join(["the"] * 31))


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("good", 1),
        ("bad", -1),
        ("the movie was good", 1),
        ("not good", -1),
        ("never bad", 1),
        ("not a good", -1),  # negator at distance 2, filler in between
        ("not the old good", 1),  # distance 3: outside the window
        ("good not", 1),  # a negator after the word does nothing
        ("very good", 2),
        ("not very good", -2),
        ("very not good", -1),  # intensifier not immediately before the word
        ("not not good", -1),  # one flip however many negators
        ("very good but bad", 1),  # "but" is just filler here
        ("good and bad and awful", -1),
        ("hardly tasty and very boring", -3),
        ("it was not the food that was good but the staff were not rude", 2),
        ("[CLS] not good [SEP] [PAD]", -1),
    ],
)
def test_label_rule(text, score):
    words = text.split()
    assert score_of(words) == score
    assert label_of(words) == (1 if score > 0 else 0)


def test_label_rule_edges():
    assert NEGATION_WINDOW == 2
    assert (
        score_of([]) == 0 and label_of([]) == 0
    )  # ties are negative (never generated)
    assert label_of(["good", "bad"]) == 0
    assert label_of(("Not", "GOOD")) == 0  # case-insensitive, tuples accepted


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"name": "sst2"}, "'sst2'"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seq_len": 8}, "seq_len"),
        ({"seq_len": True}, "seq_len"),
        ({"n_train": 0}, "n_train"),
        ({"n_val": "10"}, "n_val"),
        ({"n_test": 1}, "n_test"),
    ],
)
def test_bad_arguments(kwargs, bad):
    with pytest.raises(InputError, match=bad):
        make_task(**kwargs)


def test_short_seq_len():
    t = make_task(seq_len=16, n_train=200, n_val=50, n_test=50)
    assert t.train.input_ids.shape == (200, 16)
    assert (t.train.attention_mask.sum(axis=1) <= 16).all()
