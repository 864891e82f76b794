"""Pareto dominance, sorting, crowding and hypervolume against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.search import pareto
from hwnas.search.pareto import (
    crowding_distance,
    hypervolume,
    hypervolume_natural,
    non_dominated_mask,
    non_dominated_sort,
    to_minimization,
)


def test_to_minimization_negates_maximised_columns_only():
    F = np.array([[0.9, 5.0], [0.8, 3.0]])
    assert np.array_equal(to_minimization(F, [True, False]), [[-0.9, 5.0], [-0.8, 3.0]])
    assert np.array_equal(to_minimization(np.array([0.9, 5.0]), [True, False]), [-0.9, 5.0])
    with pytest.raises(ValueError):
        to_minimization(F, [True])


def test_non_dominated_mask_hand_case():
    # (1,4) (2,2) (4,1) are the front; (3,3) is dominated by (2,2); (2,5) by (1,4);
    # the duplicate of (2,2) stays; a NaN row is never on the front.
    F = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [2, 5], [2, 2], [np.nan, 0]], dtype=float)
    assert non_dominated_mask(F).tolist() == [True, True, True, False, False, True, False]


def test_weak_dominance_counts():
    # Equal in one objective and better in the other dominates.
    F = np.array([[1.0, 2.0], [1.0, 3.0]])
    assert non_dominated_mask(F).tolist() == [True, False]
    assert pareto.dominates([1, 2], [1, 3]) and not pareto.dominates([1, 2], [1, 2])


def test_non_dominated_sort_ranks_fronts():
    F = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [2, 5], [5, 5], [4, 4]], dtype=float)
    # front 0: (1,4) (2,2) (4,1); front 1: (3,3) (2,5); front 2: (4,4); front 3: (5,5)
    assert non_dominated_sort(F).tolist() == [0, 0, 0, 1, 1, 3, 2]
    assert [f.tolist() for f in pareto.fronts(F)] == [[0, 1, 2], [3, 4], [6], [5]]


def test_numpy_fallback_agrees_with_moocore(monkeypatch):
    rng = np.random.default_rng(3)
    F = rng.integers(0, 6, size=(200, 3)).astype(float)
    fast_mask, fast_rank = non_dominated_mask(F), non_dominated_sort(F)
    monkeypatch.setattr(pareto, "_moocore", None)
    assert np.array_equal(non_dominated_mask(F), fast_mask)
    assert np.array_equal(non_dominated_sort(F), fast_rank)
    # and against a brute-force definition
    brute = [not any(pareto.dominates(F[j], F[i]) for j in range(len(F))) for i in range(len(F))]
    assert fast_mask.tolist() == brute


def test_crowding_distance_hand_case():
    F = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(F)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # point 1: x gap (3-0)/4, y gap (4-1)/4 -> 1.5; point 2: (4-1)/4 + (2-0)/4 -> 1.25
    assert d[1] == pytest.approx(1.5) and d[2] == pytest.approx(1.25)
    assert np.isinf(crowding_distance(F[:2])).all()


def test_hypervolume_two_objectives_by_hand():
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    # staircase against (4, 4): 3·1 + 2·1 + 1·1 = 6
    assert hypervolume(F, [4.0, 4.0]) == pytest.approx(6.0)
    # dominated and duplicate points add nothing
    assert hypervolume(np.vstack([F, [[3.0, 3.0], [2.0, 2.0]]]), [4.0, 4.0]) == pytest.approx(6.0)
    # a point outside the reference box is ignored, not counted negatively
    assert hypervolume(np.vstack([F, [[0.5, 5.0]]]), [4.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(np.zeros((0, 2)), [4.0, 4.0]) == 0.0
    assert hypervolume(np.array([[5.0, 5.0]]), [4.0, 4.0]) == 0.0


def test_hypervolume_three_objectives_by_hand():
    # two boxes against (2,2,2): [0,2]x[0,2]x[1,2] volume 4 and [1,2]x[1,2]x[0,2] volume 2;
    # overlap [1,2]x[1,2]x[1,2] volume 1 -> union 5
    F = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert hypervolume(F, [2.0, 2.0, 2.0]) == pytest.approx(5.0)


def test_hypervolume_natural_with_a_maximised_objective():
    # accuracy (max) vs latency (min), reference accuracy 0 and latency 10 ms
    F = np.array([[0.9, 5.0], [0.5, 1.0]])
    # minimisation form: (-0.9, 5), (-0.5, 1) vs (0, 10): 0.9·5 + 0.5·4 = 6.5
    assert hypervolume_natural(F, [True, False], [0.0, 10.0]) == pytest.approx(6.5)
