"""Random search: seeded uniform sampling, the floor every method must beat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hwnas.search.algorithms.base import Algorithm, Validate
from hwnas.search.problem import Problem


class RandomSearch(Algorithm):
    """Validates batches of ``population`` distinct feasible configurations drawn uniformly over
    genes (rejecting invalid, infeasible and already-drawn ones) until the budget is spent or
    no unseen feasible configuration can be drawn."""

    name: ClassVar[str] = "random"
    defaults: ClassVar[Mapping[str, Any]] = {"population": 50}

    def run(self, problem: Problem, budget: int, rng: np.random.Generator, validate: Validate) -> None:
        batch = self._int_setting("population", 1)
        seen: set[bytes] = set()
        while True:
            genes = problem.sample(batch, rng, exclude=seen)
            if genes.shape[0] == 0:
                return
            seen.update(problem.keys(genes))
            validate(genes)
