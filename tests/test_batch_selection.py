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


def test_population_plus_hypervolume_keeps_the_population_then_fills_the_gaps():
    """The paper's batch (final population minus validated) first, then greedy hypervolume picks."""
    from test_search_algorithms import synth_problem

    from hwnas.search.algorithms.linas import LINAS
    from hwnas.search.algorithms.vectorized import InnerResult

    problem = synth_problem()
    genes = np.array([[i, 0, 0, 0, 0, 0] for i in range(6)] + [[0, j, 0, 0, 0, 0] for j in range(1, 6)])
    F = np.column_stack([-np.linspace(0.5, 0.9, 11), np.linspace(1.0, 2.0, 11)])  # all on one front
    F[8] = [-0.2, 3.0]  # predicted dominated: never a hypervolume pick
    inner = InnerResult(X=genes[:3], F=F[:3], cv=np.zeros(3), all_X=genes, all_F=F, all_cv=np.zeros(11),
                        evaluations=11, generations=1)
    seen = {genes[0].tobytes()}  # validated already
    validated = np.array([[-0.5, 1.0]])
    algo = LINAS(batch="population+hypervolume", population=6, min_batch=1)
    batch = algo._next_batch(problem, inner, seen, np.random.default_rng(0), 6, validated)
    rows = [tuple(r) for r in batch]
    assert rows[:2] == [tuple(genes[1]), tuple(genes[2])]  # the population minus the validated row
    assert len(rows) == 6 == len(set(rows)) and tuple(genes[0]) not in rows and tuple(genes[8]) not in rows
    only_population = LINAS(batch="population", population=6, min_batch=1)._next_batch(
        problem, inner, seen, np.random.default_rng(0), 6, validated)
    assert [tuple(r) for r in only_population] == rows[:2]


def test_a_linas_run_made_before_the_batch_setting_existed_resumes(tmp_path):
    """Its run.json lacks ``batch``: the default (the paper's rule) is what it ran with."""
    import json

    first = run(tmp_path, "linas", evals=40, name="old")
    header = json.loads((first.out / "run.json").read_text())
    del header["settings"]["batch"]
    header["status"] = "running"
    (first.out / "run.json").write_text(json.dumps(header))
    lines = (first.out / "evaluations.jsonl").read_text().splitlines(keepends=True)
    (first.out / "evaluations.jsonl").write_text("".join(lines[:30]))
    again = run(tmp_path, "linas", evals=40, name="old")
    assert again.status == "complete" and [r["key"] for r in rows_of(again)] == [r["key"] for r in rows_of(first)]
    with pytest.raises(Exception, match="holds a different search"):
        run(tmp_path, "linas", evals=40, name="old", settings={"batch": "hypervolume"})
