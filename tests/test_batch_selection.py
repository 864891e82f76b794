"""Greedy hypervolume-improvement batches (LINAS's ``batch="hypervolume"`` rule)."""

from __future__ import annotations

import numpy as np
import pytest
from test_search_algorithms import BUDGET, run, rows_of
from search_synthetic import accuracy_of, all_values, params_of

from hwnas.search.algorithms.batch_selection import (
    contributions_2d,
    contributions_mc,
    greedy_hypervolume_batch,
    reference_from,
)
from hwnas.search.pareto import hypervolume, hypervolume_natural


def _exact_contributions(front, candidates, ref):
    base = hypervolume(front, ref) if len(front) else 0.0
    return np.array([hypervolume(np.vstack([front, c[None]]) if len(front) else c[None], ref) - base
                     for c in candidates])


@pytest.mark.parametrize("seed", range(5))
def test_two_objective_contributions_equal_pymoo_hypervolume_differences(seed):
    rng = np.random.default_rng(seed)
    front, candidates, ref = rng.random((6, 2)), rng.random((40, 2)), np.array([1.05, 1.05])
    candidates[:3] = front[:3] + 0.01  # dominated: add nothing
    got = contributions_2d(front, candidates, ref)
    assert np.allclose(got, _exact_contributions(front, candidates, ref), atol=1e-12)
    assert np.all(got[:3] == 0.0)
    assert np.all(contributions_2d(front, np.array([[1.2, 0.1]]), ref) == 0.0)  # beyond the reference


def test_three_objective_contributions_estimate_the_exact_ones():
    rng = np.random.default_rng(3)
    front, candidates, ref = rng.random((5, 3)), rng.random((10, 3)), np.full(3, 1.05)
    got = contributions_mc(front, candidates, ref, np.random.default_rng(0))
    assert np.allclose(got, _exact_contributions(front, candidates, ref), atol=0.02)


def test_greedy_batch_spreads_over_the_gaps_and_skips_dominated_rows():
    validated = np.array([[0.0, 1.0], [1.0, 0.0]])
    # Candidates: three near-copies in one gap, one in another region, one dominated.
    candidates = np.array([[0.5, 0.5], [0.5, 0.51], [0.51, 0.5], [0.2, 0.8], [1.5, 1.5]])
    picks = greedy_hypervolume_batch(validated, candidates, k=5, rng=np.random.default_rng(0),
                                     ref=np.array([2.0, 2.0]))
    assert picks[0] == 0  # the largest gain first
    assert 3 in picks[:2]  # then the other gap, not a near-copy of the first pick
    assert 4 not in picks  # predicted dominated: never chosen
    assert len(set(picks.tolist())) == len(picks)


def test_reference_lies_beyond_the_worst_value():
    front = np.array([[0.0, 4.0], [2.0, 1.0]])
    assert np.allclose(reference_from(front), [2.2, 4.3])


def test_linas_with_the_hypervolume_rule_finds_the_front(tmp_path):
    result = run(tmp_path, "linas", settings={"batch": "hypervolume"})
    rows = rows_of(result)
    keys = [r["key"] for r in rows]
    assert len(keys) == BUDGET == len(set(keys))
    assert all("predicted" in r for r in rows[20:])  # every batch after the first comes from the predictors
    X = all_values()
    true_hv = hypervolume_natural(np.column_stack([accuracy_of(X), params_of(X)]), [True, False],
                                  result.reference_point)
    assert result.hypervolume / true_hv >= 0.95  # (the population rule: >= 0.98 here; random and NSGA-II: >= 0.85)
