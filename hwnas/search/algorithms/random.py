"""Random search: seeded uniform sampling, the floor every method must beat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hwnas.checks import Check, Int
from hwnas.search.algorithms.base import Algorithm, Proposal
from hwnas.search.problem import Problem


class RandomSearch(Algorithm):
    """Proposes batches of ``population`` distinct feasible configurations drawn uniformly over
    genes (rejecting invalid, infeasible and already-drawn ones) until the budget is spent or
    no unseen feasible configuration can be drawn."""

    name: ClassVar[str] = "random"
    defaults: ClassVar[Mapping[str, Any]] = {"population": 50}
    schema: ClassVar[Mapping[str, Check]] = {"population": Int(1)}

    def setup(self, problem: Problem, budget: int, rng: np.random.Generator) -> None:
        self._problem, self._rng = problem, rng
        self._seen: set[bytes] = set()

    def ask(self) -> Proposal | None:
        genes = self._problem.sample(int(self.settings["population"]), self._rng, exclude=self._seen)
        if genes.shape[0] == 0:
            return None
        self._seen.update(self._problem.keys(genes))
        return Proposal(genes)

    def tell(self, genes: np.ndarray, F: np.ndarray) -> None:
        pass  # uniform sampling learns nothing
