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
    unique = BERT_OSE.sample(300, seed=0, unique=True)  # every configuration of bert-ose
    assert len({BERT_OSE.key(c) for c in unique}) == 300
    # One more than a space has is refused after sample()'s attempt limit (~1000 per configuration
    # asked: half a minute for bert-ose's 301, so a 3-configuration space shows it).
    three = SearchSpace("three", "x", (Dimension("a", (1, 2, 3)),))
    assert len(three.sample(3, seed=0, unique=True)) == 3
    with pytest.raises(InputError, match="could not draw 4 distinct valid configurations from 'three'"):
        three.sample(4, seed=0, unique=True)


def test_parse_config_reports_bad_json():
    with pytest.raises(InputError, match="not valid JSON"):
        parse_config("{A: 8}", BERT_OSE)
    assert parse_config('{"A":8,"D":4,"H":1024,"I":768}', BERT_OSE) == {"A": 8, "D": 4, "H": 1024, "I": 768}


def test_custom_constraint_space():
    space = SearchSpace("c", "x", (Dimension("a", (1, 2, 3)), Dimension("b", (1, 2, 3))),
                        constraints=(Constraint("a < b", lambda c: c["a"] < c["b"]),))
    assert [tuple(c.values()) for c in space.enumerate()] == [(1, 2), (1, 3), (2, 3)]


# -- depth groups (Once-for-All style) ---------------------------------------------------------
from hwnas.search.genes import canonical_genes, row_keys  # noqa: E402
from hwnas.space import DepthGroup, stages  # noqa: E402

# 2 stages × 2 blocks: kernel per block, expand ratio per block, depth per stage ∈ {1, 2}.
OFA_TINY = SearchSpace(
    "ofa-tiny", "x",
    (Dimension("ks", (3, 5, 7), per_layer=4), Dimension("e", (3, 4, 6), per_layer=4),
     Dimension("d", (1, 2), per_layer=2)),
    groups=stages("d", ("ks", "e"), (2, 2)),
)


def test_stages_builds_one_group_per_stage_segment():
    assert stages("d", ("ks", "e"), (2, 2)) == (
        DepthGroup("d", ("ks", "e"), start=0, size=2, gene=0),
        DepthGroup("d", ("ks", "e"), start=2, size=2, gene=1),
    )


def test_grouped_canonical_genes_zero_inactive_genes():
    # stage 0 depth 1 (block 1 inactive), stage 1 depth 2 (all active); all genes 2 elsewhere
    raw = np.array([[2, 2, 2, 2, 2, 2, 2, 2, 0, 1]])
    want = np.array([[2, 0, 2, 2, 2, 0, 2, 2, 0, 1]])
    assert (canonical_genes(OFA_TINY, raw) == want).all()
    config = OFA_TINY.from_genes(raw[0])
    assert config == {"ks": [7, 3, 7, 7], "e": [6, 3, 6, 6], "d": [1, 2]}
    assert (OFA_TINY.to_genes(config) == want[0]).all()


def test_grouped_configs_differing_only_in_inactive_blocks_are_equal():
    a = {"ks": [5, 7, 3, 3], "e": [4, 6, 3, 3], "d": [1, 1]}
    b = {"ks": [5, 3, 3, 5], "e": [4, 4, 3, 6], "d": [1, 1]}
    c = {"ks": [5, 3, 3, 5], "e": [4, 4, 3, 6], "d": [1, 2]}  # block 3 active: different net
    assert OFA_TINY.key(a) == OFA_TINY.key(b) != OFA_TINY.key(c)
    assert OFA_TINY.canonical(a) == OFA_TINY.canonical(b) == {"ks": [5, 3, 3, 3], "e": [4, 3, 3, 3], "d": [1, 1]}
    assert (OFA_TINY.to_genes(a) == OFA_TINY.to_genes(b)).all()
    rows = canonical_genes(OFA_TINY, np.stack([OFA_TINY.to_genes(a), OFA_TINY.to_genes(b)]))
    assert len(set(row_keys(rows))) == 1


def test_grouped_lists_are_full_length_and_values_checked_everywhere():
    with pytest.raises(InputError, match="'ks' has 2 values; needs 4"):
        OFA_TINY.validate({"ks": [3, 3], "e": [3] * 4, "d": [1, 1]})
    with pytest.raises(InputError, match=r"invalid value 4 for 'ks\[1\]'"):  # inactive, still a choice
        OFA_TINY.validate({"ks": [3, 4, 3, 3], "e": [3] * 4, "d": [1, 1]})
    with pytest.raises(InputError, match=r"invalid value 3 for 'd\[0\]'"):
        OFA_TINY.validate({"ks": [3] * 4, "e": [3] * 4, "d": [3, 1]})


def test_grouped_round_trip_sampling_and_enumeration():
    samples = OFA_TINY.sample(100, seed=1)
    for config in samples:
        assert OFA_TINY.canonical(config) == config
        assert OFA_TINY.from_genes(OFA_TINY.to_genes(config)) == config
    # per stage Σ_d 3^(2d) = 9 + 81; two stages
    assert OFA_TINY.count_valid() == 90 ** 2 == len(list(OFA_TINY.enumerate()))
    configs = list(OFA_TINY.enumerate())
    assert len({OFA_TINY.key(c) for c in configs}) == len(configs)
    genes = np.stack([OFA_TINY.to_genes(c) for c in configs])
    assert (genes == canonical_genes(OFA_TINY, genes)).all()
    assert [tuple(g) for g in genes] == sorted(tuple(g) for g in genes)  # gene order


def test_global_depth_group_with_full_lists_and_ungated_dimensions():
    space = SearchSpace("g", "x", (Dimension("D", (1, 2)), Dimension("W", (1, 2, 3), per_layer=2),
                                   Dimension("k", (0, 1), per_layer=2)),
                        groups=(DepthGroup("D", ("W",)),))
    assert space.canonical({"D": 1, "W": [2, 3], "k": [1, 1]}) == {"D": 1, "W": [2, 1], "k": [1, 1]}
    assert space.count_valid() == (3 + 9) * 4 == len(list(space.enumerate()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"groups": (DepthGroup("d", ("ks",), size=2, gene=2),)}, "out of range"),
        ({"groups": (DepthGroup("d", ("ks",), size=2), DepthGroup("d", ("ks",), start=1, size=2, gene=1))},
         "gated twice"),
        ({"groups": (DepthGroup("d", ("ks",), start=3, size=2),)}, "segment outside"),
        ({"groups": (DepthGroup("d", ("ks",), size=1),)}, "exceeds the segment"),
        ({"groups": (DepthGroup("d", ("d",), size=2),)}, "not a per-layer, non-depth"),
        ({"groups": (DepthGroup("d", ("ks",), size=2),), "depth": "d"}, "not both"),
    ],
)
def test_bad_depth_groups_are_refused(kwargs, message):
    dims = (Dimension("ks", (3, 5), per_layer=4), Dimension("d", (1, 2), per_layer=2))
    with pytest.raises(ValueError, match=message):
        SearchSpace("bad", "x", dims, **kwargs)


def test_single_depth_spaces_keep_truncated_lists_and_one_implicit_group():
    assert BERT_MINI.depth_groups == (DepthGroup("D", ("A", "I")),)
    assert BERT_MINI.canonical({"D": 2, "A": [4, 1, 2], "I": [512, 128, 256]}) == {"D": 2, "A": [4, 1], "I": [512, 128]}
    assert BERT_MINI.describe()["lists"] == "truncated"
    genes = BERT_MINI.to_genes({"D": 2, "A": [4, 1], "I": [512, 128]})
    assert genes.tolist() == [1, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0]


# -- count_valid ------------------------------------------------------------------------------
def test_count_valid_respects_constraints_on_per_layer_spaces():
    # regression: counted 12 (1·3 + 3·3, constraint ignored) where enumeration yields 8
    small = SearchSpace("c", "x", (Dimension("D", (1, 2)), Dimension("A", (1, 2, 3), per_layer=2)), depth="D",
                        constraints=(Constraint("A[0] < 3", lambda c: c["A"][0] < 3),))
    assert len(list(small.enumerate())) == 8
    assert small.count_valid() == 8


def test_count_valid_closed_form_for_large_spaces_and_none_when_unknown():
    assert BERT_LINAS.count_valid() == sum(12 ** d for d in range(6, 13))
    assert BERT_MINI.count_valid() == sum(9 ** d for d in range(1, 7))
    ofa = SearchSpace("ofa", "x", (Dimension("ks", (3, 5, 7), per_layer=20), Dimension("e", (3, 4, 6), per_layer=20),
                                   Dimension("d", (2, 3, 4), per_layer=5)), groups=stages("d", ("ks", "e"), (4,) * 5))
    assert ofa.count_valid() == (9 ** 2 + 9 ** 3 + 9 ** 4) ** 5
    constrained = SearchSpace("big", "x", BERT_MINI.dimensions, depth="D",
                              constraints=(Constraint("A[0] > 1", lambda c: c["A"][0] > 1),))
    assert constrained.count_valid() is None
    assert constrained.describe()["valid_configurations"] is None
    assert BERT_OSE.count_valid() == 300


def test_spaces_command_shows_depth_groups_and_unknown_counts(monkeypatch):
    import json

    from click.testing import CliRunner

    from hwnas import api
    from hwnas.commands.spaces import spaces

    big = SearchSpace("big", "x", BERT_MINI.dimensions, depth="D",
                      constraints=(Constraint("A[0] > 1", lambda c: c["A"][0] > 1),))
    monkeypatch.setattr(api, "spaces", lambda plugin=None: {"ofa-tiny": OFA_TINY, "big": big})
    described = {s["name"]: s for s in json.loads(CliRunner().invoke(spaces, ["--json"]).output)["spaces"]}
    assert described["big"]["valid_configurations"] is None
    assert described["ofa-tiny"]["valid_configurations"] == 8100
    assert described["ofa-tiny"]["lists"] == "full"
    assert [g["start"] for g in described["ofa-tiny"]["depth_groups"]] == [0, 2]
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps cells to the terminal width
    table = CliRunner().invoke(spaces, []).output
    assert "unknown" in table and "d[1] → ks,e[2:4]" in table


@pytest.mark.parametrize("space", [*ALL, OFA_TINY], ids=lambda s: s.name)
def test_vectorised_canonical_genes_match_the_config_round_trip(space):
    raw = np.random.default_rng(5).integers(0, space.gene_upper_bounds + 1, size=(300, space.n_genes))
    want = np.stack([space.to_genes(space.from_genes(row, validate=False)) for row in raw
                     if space.is_valid(space.from_genes(row, validate=False))])
    got = canonical_genes(space, raw)[[space.is_valid(space.from_genes(row, validate=False)) for row in raw]]
    assert (got == want).all()


def test_sample_holds_the_genes_it_is_told_to_and_keeps_the_stream():
    hold = np.full(BERT_MINI.n_genes, -1)
    hold[0] = BERT_MINI.gene_upper_bounds[0]  # the depth gene at its largest choice
    held = BERT_MINI.sample(20, seed=3, hold=hold)
    free = BERT_MINI.sample(20, seed=3)
    depth = BERT_MINI.dimensions[0]
    assert all(c[depth.name] == depth.choices[-1] for c in held)
    assert any(c[depth.name] != depth.choices[-1] for c in free)
    # every gene is still drawn, so a hold that holds nothing changes nothing
    assert BERT_MINI.sample(20, seed=3, hold=np.full(BERT_MINI.n_genes, -1)) == free
