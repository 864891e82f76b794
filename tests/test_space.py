import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.space import Constraint, Dimension, SearchSpace, parse_config
from hwnas.supernets.bert import BERT_LINAS, BERT_MINI, BERT_OSE

ALL = [BERT_OSE, BERT_LINAS, BERT_MINI]


@pytest.mark.parametrize("space", ALL, ids=lambda s: s.name)
def test_genes_config_round_trip(space):
    for config in space.sample(200, seed=7):
        genes = space.to_genes(config)
        assert genes.shape == (space.n_genes,)
        assert space.from_genes(genes) == config
        assert np.all(genes <= space.gene_upper_bounds)


@pytest.mark.parametrize("space", ALL, ids=lambda s: s.name)
def test_random_genes_decode_to_valid_canonical_configs(space):
    rng = np.random.default_rng(0)
    for _ in range(200):
        genes = rng.integers(0, space.gene_upper_bounds + 1)
        config = space.from_genes(genes, validate=False)
        if space.is_valid(config):
            # decoding twice through genes is stable (inactive genes are zeroed)
            assert space.from_genes(space.to_genes(config)) == space.canonical(config)


def test_gene_counts():
    assert (BERT_OSE.n_genes, BERT_LINAS.n_genes, BERT_MINI.n_genes) == (4, 25, 13)


def test_bert_ose_has_exactly_300_valid_configurations():
    configs = list(BERT_OSE.enumerate())
    assert len(configs) == 300 == BERT_OSE.count_valid()
    assert all(c["H"] % c["A"] == 0 for c in configs)
    # H=768 admits all four head counts, 512 and 1024 exclude 12
    assert sum(1 for c in configs if c["H"] == 768) == 4 * 6 * 5


def test_per_layer_count_matches_enumeration_on_a_small_space():
    small = SearchSpace("tiny", "x", (Dimension("D", (1, 2)), Dimension("A", (1, 2, 3), per_layer=2)), depth="D")
    assert small.count_valid() == len(list(small.enumerate())) == 3 + 9


def test_inactive_layer_genes_are_ignored_and_configs_compare_equal():
    a = {"D": 6, "A": [6] * 6 + [8] * 6, "I": [1024] * 12}
    b = {"D": 6, "A": [6] * 6 + [12] * 6, "I": [1024] * 6 + [3072] * 6}
    assert BERT_LINAS.canonical(a) == BERT_LINAS.canonical(b)
    assert BERT_LINAS.key(a) == BERT_LINAS.key(b)
    assert len(BERT_LINAS.canonical(a)["A"]) == 6


def test_constraint_violation_names_the_constraint():
    with pytest.raises(InputError, match="H divisible by A"):
        BERT_OSE.validate({"A": 12, "D": 2, "H": 512, "I": 256})
    assert not BERT_OSE.is_valid({"A": 12, "D": 2, "H": 1024, "I": 256})
    assert BERT_OSE.is_valid({"A": 16, "D": 2, "H": 1024, "I": 256})


@pytest.mark.parametrize(
    "config, message",
    [
        ({"A": 8, "D": 4, "H": 1024}, "missing key 'I'"),
        ({"A": 8, "D": 4, "H": 1024, "I": 768, "Z": 1}, "unknown key 'Z'"),
        ({"A": 8, "D": 5, "H": 1024, "I": 768}, "invalid value 5 for 'D'"),
        ({"A": True, "D": 4, "H": 1024, "I": 768}, "invalid value True for 'A'"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_configs_name_the_problem(config, message):
    with pytest.raises(InputError, match=message):
        BERT_OSE.validate(config)


def test_per_layer_list_length_and_values_checked():
    with pytest.raises(InputError, match="'A' has 1 values; needs 2"):
        BERT_MINI.validate({"D": 2, "A": [1], "I": [128, 128]})
    with pytest.raises(InputError, match=r"invalid value 3 for 'A\[1\]'"):
        BERT_MINI.validate({"D": 2, "A": [1, 3], "I": [128, 128]})
    with pytest.raises(InputError, match="must be a list"):
        BERT_MINI.validate({"D": 2, "A": 1, "I": [128, 128]})


def test_from_genes_rejects_bad_vectors():
    with pytest.raises(InputError, match="expected 4 genes"):
        BERT_OSE.from_genes([0, 0, 0])
    with pytest.raises(InputError, match="gene 2 = 9 out of range 0..2"):
        BERT_OSE.from_genes([0, 0, 9, 0])


def test_sampling_is_seeded_valid_and_unique_on_request():
    assert BERT_MINI.sample(20, seed=3) == BERT_MINI.sample(20, seed=3)
    assert BERT_MINI.sample(20, seed=3) != BERT_MINI.sample(20, seed=4)
    unique = BERT_OSE.sample(300, seed=0, unique=True)
    assert len({BERT_OSE.key(c) for c in unique}) == 300
    with pytest.raises(InputError):
        BERT_OSE.sample(301, seed=0, unique=True)


def test_parse_config_reports_bad_json():
    with pytest.raises(InputError, match="not valid JSON"):
        parse_config("{A: 8}", BERT_OSE)
    assert parse_config('{"A":8,"D":4,"H":1024,"I":768}', BERT_OSE) == {"A": 8, "D": 4, "H": 1024, "I": 768}


def test_custom_constraint_space():
    space = SearchSpace("c", "x", (Dimension("a", (1, 2, 3)), Dimension("b", (1, 2, 3))),
                        constraints=(Constraint("a < b", lambda c: c["a"] < c["b"]),))
    assert [tuple(c.values()) for c in space.enumerate()] == [(1, 2), (1, 3), (2, 3)]
