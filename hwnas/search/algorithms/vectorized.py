"""NSGA-II on whole populations of integer genes with numpy: LINAS's inner search on predictors.

LINAS runs NSGA-II for ~20,000 *predicted* evaluations per outer loop. Stock pymoo spends most
of that time in per-individual Python objects and in re-mating until offspring are unique
(measured here: 5.2 s for 20,000 evaluations at population 50 with duplicate elimination, 1.2 s
without it, on one core, for a trivial vectorised problem), which alone breaks LINAS's
≤ 4 s-per-loop budget. This module is the same algorithm on arrays, with pymoo's operators
re-implemented vectorised and their default parameters:

* binary tournament selection by constraint violation, then Pareto rank, then crowding
  distance (Deb's crowded-comparison operator);
* simulated binary crossover (SBX) on the gene indices as floats, applied to a mating with
  probability ``crossover_prob`` (0.9), to each gene with probability 0.5, distribution index
  ``crossover_eta`` (15), children exchanged per gene with probability 0.5 — pymoo's ``SBX``;
* polynomial mutation (PM) of an individual with probability ``mutation_prob`` (0.02, the
  LINAS/DyNAS-T setting), each gene with probability 1/n_genes, index ``mutation_eta`` (20) —
  pymoo's ``PM(prob=…)``;
* rounding to the nearest index (pymoo's ``RoundingRepair``), then canonical genes;
* offspring that repeat a configuration of the population or of each other are dropped and
  re-mated (pymoo's duplicate elimination), a bounded number of times;
* survival by non-dominated sorting and crowding distance, feasible rows first, infeasible
  ones by increasing violation (pymoo's ``RankAndCrowding``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hwnas.search.pareto import crowding_distance, non_dominated_sort

Evaluate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Operators:
    """Variation settings (the LINAS paper's: crossover 0.9, mutation 0.02)."""

    crossover_prob: float = 0.9
    crossover_eta: float = 15.0
    mutation_prob: float = 0.02
    mutation_eta: float = 20.0


@dataclass
class InnerResult:
    """The end of one inner search.

    Attributes:
        X: final population, canonical genes int64 [P, G], best first (rank, then crowding).
        F: its objectives, minimisation form, float64 [P, M].
        cv: its constraint violation, float64 [P] (0 = feasible).
        all_X, all_F, all_cv: every distinct configuration evaluated, in order of evaluation.
        evaluations: predicted evaluations spent (rows evaluated, initial population included).
        generations: generations run.
    """

    X: np.ndarray
    F: np.ndarray
    cv: np.ndarray
    all_X: np.ndarray
    all_F: np.ndarray
    all_cv: np.ndarray
    evaluations: int
    generations: int


def rank_and_crowding(F: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto rank (feasible rows; infeasible rows rank after them by violation) and crowding
    distance within each front. Returns float64 [N] rank, float64 [N] crowding."""
    n = F.shape[0]
    rank = np.zeros(n)
    crowd = np.zeros(n)
    feasible = cv <= 0
    idx = np.flatnonzero(feasible)
    last = 0
    if idx.size:
        r = non_dominated_sort(F[idx])
        rank[idx] = r
        last = int(r.max()) + 1
        for k in range(last):
            front = idx[r == k]
            crowd[front] = crowding_distance(F[front])
    bad = np.flatnonzero(~feasible)
    if bad.size:
        rank[bad] = last + 1 + cv[bad]  # ordered by violation among themselves
    return rank, crowd


def survive(F: np.ndarray, cv: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` rows NSGA-II keeps, best first."""
    return _survive(F, cv, n)[0]


def _survive(F: np.ndarray, cv: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Survivors (best first) with their rank and crowding distance, as computed on all rows
    (what the next generation's tournaments compare, as in pymoo)."""
    rank, crowd = rank_and_crowding(F, cv)
    order = np.lexsort((-crowd, rank))[:n]  # rank ascending, crowding descending
    return order, rank[order], crowd[order]


def tournament(rank: np.ndarray, crowd: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` winners of binary tournaments (lower rank wins; tie: larger crowding; then random)."""
    size = rank.shape[0]
    a = rng.integers(0, size, n)
    b = rng.integers(0, size, n)
    coin = rng.random(n) < 0.5
    a_wins = (rank[a] < rank[b]) | ((rank[a] == rank[b]) & ((crowd[a] > crowd[b]) | ((crowd[a] == crowd[b]) & coin)))
    return np.where(a_wins, a, b)


def sbx(p1: np.ndarray, p2: np.ndarray, upper: np.ndarray, prob: float, eta: float,
        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover of parent rows (float [K, G]) within [0, upper]; two children."""
    k, g = p1.shape
    do_mating = rng.random((k, 1)) < prob
    cross = (rng.random((k, g)) < 0.5) & do_mating & (np.abs(p1 - p2) > 1e-14) & (upper[None, :] > 0)
    y1, y2 = np.minimum(p1, p2), np.maximum(p1, p2)
    xl, xu = np.zeros_like(p1), np.broadcast_to(upper.astype(np.float64), p1.shape)
    rand = rng.random((k, g))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        delta = np.where(cross, y2 - y1, 1.0)

        def betaq(beta: np.ndarray) -> np.ndarray:
            alpha = 2.0 - np.power(beta, -(eta + 1.0))
            low = rand <= 1.0 / alpha
            return np.where(low, np.power(rand * alpha, 1.0 / (eta + 1.0)),
                            np.power(1.0 / (2.0 - rand * alpha), 1.0 / (eta + 1.0)))

        c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - xl) / delta) * delta)
        c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (xu - y2) / delta) * delta)
    smaller_first = p1 < p2
    child1 = np.where(smaller_first, c1, c2)
    child2 = np.where(smaller_first, c2, c1)
    swap = (rng.random((k, g)) < 0.5) ^ (p1 > p2)
    child1, child2 = np.where(swap, child2, child1), np.where(swap, child1, child2)
    o1 = np.where(cross, child1, p1)
    o2 = np.where(cross, child2, p2)
    return np.clip(o1, xl, xu), np.clip(o2, xl, xu)


def polynomial_mutation(X: np.ndarray, upper: np.ndarray, prob: float, eta: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Polynomial mutation of rows (float [K, G]) within [0, upper]: each row with probability
    ``prob``, each of its genes with probability min(0.5, 1/G)."""
    k, g = X.shape
    per_gene = min(0.5, 1.0 / g)
    rows = np.flatnonzero(rng.random(k) < prob)
    if rows.size == 0:
        return X
    x = X[rows]
    mut = (rng.random(x.shape) < per_gene) & (upper[None, :] > 0)
    xu = np.broadcast_to(upper.astype(np.float64), x.shape)
    span = np.where(xu > 0, xu, 1.0)
    d1, d2 = x / span, (xu - x) / span
    rand = rng.random(x.shape)
    power = 1.0 / (eta + 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        low = 2.0 * rand + (1.0 - 2.0 * rand) * np.power(1.0 - d1, eta + 1.0)
        high = 2.0 * (1.0 - rand) + 2.0 * (rand - 0.5) * np.power(1.0 - d2, eta + 1.0)
        deltaq = np.where(rand <= 0.5, np.power(low, power) - 1.0, 1.0 - np.power(high, power))
    out = X.copy()
    out[rows] = np.clip(np.where(mut, x + deltaq * span, x), 0.0, xu)
    return out


def nsga2(evaluate: Evaluate, violation: Evaluate, canonical: Callable[[np.ndarray], np.ndarray],
          upper: np.ndarray, rng: np.random.Generator, pop_size: int = 50, n_evals: int = 20_000,
          initial: np.ndarray | None = None, operators: Operators = Operators(),
          max_tries: int = 10) -> InnerResult:
    """Minimise ``evaluate`` over integer genes with NSGA-II, whole populations at a time.

    Args:
        evaluate: genes int [N, G] → float64 [N, M] minimisation values (NaN allowed where
            ``violation`` > 0).
        violation: genes → float64 [N] constraint violation (0 = feasible).
        canonical: genes → canonical genes (equal configurations, equal rows).
        upper: largest index per gene, int [G].
        rng: the only source of randomness.
        pop_size: population size.
        n_evals: evaluations to spend (initial population included).
        initial: rows to start from (e.g. the best validated so far); filled up with uniform
            random genes to ``pop_size``.
        operators: variation settings.
        max_tries: mating rounds per generation to find offspring that are not duplicates;
            the search stops early when a generation finds none (the population has converged).
    """
    upper = np.asarray(upper, dtype=np.int64)
    g = upper.size
    start = np.zeros((0, g), dtype=np.int64) if initial is None else canonical(np.asarray(initial))
    _, first = np.unique(start, axis=0, return_index=True)
    start = start[np.sort(first)][:pop_size]
    if start.shape[0] < pop_size:
        extra = canonical(rng.integers(0, upper + 1, size=(pop_size - start.shape[0], g)))
        start = np.vstack([start, extra])
    X = start
    F = np.asarray(evaluate(X), dtype=np.float64)
    cv = np.asarray(violation(X), dtype=np.float64)
    all_X, all_F, all_cv = [X], [F], [cv]
    evaluations, generations = X.shape[0], 0
    keep, rank, crowd = _survive(F, cv, pop_size)
    X, F, cv = X[keep], F[keep], cv[keep]
    while evaluations < n_evals:
        need = min(pop_size, n_evals - evaluations)
        known = {row.tobytes() for row in X}
        kids: list[np.ndarray] = []
        for _ in range(max_tries):
            # Four times the children still needed per round: a converged population mates
            # many duplicates, and fewer rounds cost less than the extra rows.
            pairs = max(1, 2 * (need - len(kids)))
            a = tournament(rank, crowd, pairs, rng)
            b = tournament(rank, crowd, pairs, rng)
            c1, c2 = sbx(X[a].astype(np.float64), X[b].astype(np.float64), upper,
                         operators.crossover_prob, operators.crossover_eta, rng)
            pairs_first = np.stack([c1, c2], axis=1).reshape(-1, g)  # c1[0], c2[0], c1[1], ...
            children = polynomial_mutation(pairs_first, upper, operators.mutation_prob,
                                           operators.mutation_eta, rng)
            children = canonical(np.rint(children).astype(np.int64))
            for row in children:
                key = row.tobytes()
                if key not in known:
                    known.add(key)
                    kids.append(row)
            if len(kids) >= need:
                break
        if not kids:
            break
        O = np.array(kids[:need], dtype=np.int64)
        FO = np.asarray(evaluate(O), dtype=np.float64)
        cvO = np.asarray(violation(O), dtype=np.float64)
        all_X.append(O), all_F.append(FO), all_cv.append(cvO)
        evaluations += O.shape[0]
        generations += 1
        X, F, cv = np.vstack([X, O]), np.vstack([F, FO]), np.concatenate([cv, cvO])
        keep, rank, crowd = _survive(F, cv, pop_size)
        X, F, cv = X[keep], F[keep], cv[keep]
    AX, AF, Acv = np.vstack(all_X), np.vstack(all_F), np.concatenate(all_cv)
    _, first = np.unique(AX, axis=0, return_index=True)
    first = np.sort(first)
    return InnerResult(X, F, cv, AX[first], AF[first], Acv[first], evaluations, generations)
