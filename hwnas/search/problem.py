"""The search problem: a space, its supernet, objectives and constraints, over gene matrices.

Algorithms see configurations only as integer gene matrices (int [N, n_genes]); this module
turns them into canonical rows (:func:`~hwnas.search.genes.canonical_genes`), tells which are
feasible (valid in the space and inside every constraint), evaluates the cheap objectives in
one vectorised call, and draws distinct feasible configurations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from hwnas.search.genes import ValidityCache, canonical_genes, row_keys
from hwnas.search.objectives import Objective
from hwnas.search.pareto import to_minimization
from hwnas.space import Config, SearchSpace
from hwnas.supernets.base import Supernet

ConstraintFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Problem:
    """What a search optimises.

    Attributes:
        space: the search space.
        supernet: the supernet over it (features for predictors, analytics).
        objectives: natural values; ``Objective.maximize`` gives the sense.
        constraints: callables genes int [N, G] → bool [N] (True = feasible). Objects with a
            ``violation(genes)`` method (:class:`~hwnas.search.objectives.Constraint`) also
            say by how much a row is infeasible, which NSGA-II uses.
    """

    space: SearchSpace
    supernet: Supernet
    objectives: list[Objective]
    constraints: list[ConstraintFn] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._valid = ValidityCache(self.space)

    # -- objectives ----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def maximize(self) -> np.ndarray:
        """bool [M], True where the objective is maximised."""
        return np.array([o.maximize for o in self.objectives], dtype=bool)

    @property
    def expensive_index(self) -> list[int]:
        """Positions (in ``objectives``) of the expensive objectives."""
        return [i for i, o in enumerate(self.objectives) if o.expensive]

    @property
    def cheap_index(self) -> list[int]:
        """Positions (in ``objectives``) of the cheap objectives."""
        return [i for i, o in enumerate(self.objectives) if not o.expensive]

    @property
    def n_genes(self) -> int:
        return self.space.n_genes

    @property
    def upper(self) -> np.ndarray:
        """Largest index per gene, int64 [G] (lower bounds are 0)."""
        return self.space.gene_upper_bounds

    def cheap_objectives(self, genes: np.ndarray) -> np.ndarray:
        """Every non-expensive objective, natural values, float64 [N, M_cheap] (``cheap_index``
        order). Rows that are not valid configurations of the space get NaN."""
        g = self.canonical(genes)
        out = np.full((g.shape[0], len(self.cheap_index)), np.nan)
        valid = self.valid(g)
        if valid.any():
            for col, i in enumerate(self.cheap_index):
                out[valid, col] = self.objectives[i].evaluate(g[valid])
        return out

    def to_min(self, F: np.ndarray) -> np.ndarray:
        """Natural values [N, M] → minimisation form (maximised columns negated)."""
        return to_minimization(F, self.maximize)

    # -- configurations ------------------------------------------------------------------------
    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """Canonical gene rows (inactive-layer genes 0, clipped to range), int64 [N, G]."""
        return canonical_genes(self.space, genes)

    def keys(self, genes: np.ndarray) -> list[bytes]:
        """One hashable key per configuration (equal configurations, equal keys)."""
        return row_keys(self.canonical(genes))

    def configs(self, genes: np.ndarray) -> list[Config]:
        """Canonical configurations of valid gene rows."""
        return [self.space.from_genes(row) for row in self.canonical(genes)]

    def valid(self, genes: np.ndarray) -> np.ndarray:
        """bool [N]: valid configurations of the space (in range, the space's own constraints)."""
        return self._valid(genes)

    def violation(self, genes: np.ndarray) -> np.ndarray:
        """Constraint violation per row, float64 [N]: 0 when feasible; an invalid configuration
        counts 1 plus; each user constraint adds its relative excess (or 1 when it has none)."""
        g = self.canonical(genes)
        valid = self.valid(np.atleast_2d(genes))
        cv = np.where(valid, 0.0, 1.0)
        if self.constraints and valid.any():
            part = np.zeros(valid.sum())
            for constraint in self.constraints:
                amount = getattr(constraint, "violation", None)
                if callable(amount):
                    part += np.asarray(amount(g[valid]), dtype=np.float64)
                else:
                    part += (~np.asarray(constraint(g[valid]), dtype=bool)).astype(np.float64)
            cv[valid] += part
        return cv

    def feasible(self, genes: np.ndarray) -> np.ndarray:
        """bool [N]: valid and inside every constraint."""
        return self.violation(genes) <= 0.0

    def sample(self, n: int, rng: np.random.Generator, exclude: Iterable[bytes] = (),
               max_draws: int | None = None) -> np.ndarray:
        """Up to ``n`` distinct feasible configurations not in ``exclude``, uniform over genes.

        Draws genes uniformly (as :meth:`SearchSpace.sample` does) in vectorised rounds and
        rejects invalid, infeasible and repeated ones. Returns fewer than ``n`` rows only when
        ``max_draws`` (default ``2000·n + 20000``) draws found no more.

        Returns:
            canonical genes, int64 [k, G], k ≤ n, in the order drawn (deterministic given rng).
        """
        seen = set(exclude)
        out: list[np.ndarray] = []
        draws, limit = 0, max_draws if max_draws is not None else 2000 * n + 20_000
        upper = self.upper
        while len(out) < n and draws < limit:
            size = min(max(4 * (n - len(out)), 16), limit - draws)
            raw = rng.integers(0, upper + 1, size=(size, upper.size))
            draws += size
            g = self.canonical(raw)
            ok = self.feasible(g)
            for row, good in zip(g, ok):
                if not good:
                    continue
                key = row.tobytes()
                if key in seen:
                    continue
                seen.add(key)
                out.append(row)
                if len(out) == n:
                    break
        return np.array(out, dtype=np.int64).reshape(len(out), upper.size)
