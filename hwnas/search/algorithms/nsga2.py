"""Plain NSGA-II over integer genes (pymoo, ask/tell): the baseline of the LINAS paper.

Every individual pymoo asks for is validated for real (through ``validate``), so the budget
counts NSGA-II's evaluations exactly as LINAS's are counted. Settings follow the LINAS paper /
Intel DyNAS-T: population 50; SBX crossover with probability 0.9 (η 15) and polynomial mutation
of an individual with probability 0.02 (η 20) on the gene indices as floats, rounded back
(``RoundingRepair``); duplicates eliminated by configuration (canonical genes, so genes of
inactive layers do not make a "new" individual). The initial population is drawn like random
search's (distinct feasible configurations). Configurations that are invalid in the space or
outside a constraint are not validated: pymoo gets their constraint violation (G > 0) and its
feasibility-first survival drops them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from hwnas.search.algorithms.base import Algorithm, Validate
from hwnas.search.genes import row_keys
from hwnas.search.problem import Problem

#: Generations in a row without any new feasible configuration after which the search stops.
STALL_GENERATIONS = 25


@contextlib.contextmanager
def isolated_global_rng(seed: int) -> Iterator[None]:
    """Run with numpy's and Python's global random state seeded, then restore the caller's.

    pymoo 0.6.2 draws from its own Generator; older pymoo (0.6.1) draws from numpy's global
    state, which an evaluator may also use — isolating it keeps replays identical.
    """
    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _canonical_duplicates(problem: Problem):
    from pymoo.core.duplicate import DuplicateElimination

    class CanonicalDuplicates(DuplicateElimination):
        """pymoo duplicate elimination by configuration (canonical genes), hash-based."""

        def _do(self, pop, other, is_duplicate):
            keys = row_keys(problem.canonical(np.rint(pop.get("X")).astype(np.int64)))
            known: set[bytes] = set()
            if other is not None and len(other):
                known = set(row_keys(problem.canonical(np.rint(other.get("X")).astype(np.int64))))
            for i, key in enumerate(keys):
                if key in known:
                    is_duplicate[i] = True
                else:
                    known.add(key)
            return is_duplicate

    return CanonicalDuplicates()


class NSGA2Search(Algorithm):
    """NSGA-II validating every individual (see module doc)."""

    name: ClassVar[str] = "nsga2"
    defaults: ClassVar[Mapping[str, Any]] = {
        "population": 50,
        "crossover_prob": 0.9,
        "crossover_eta": 15.0,
        "mutation_prob": 0.02,
        "mutation_eta": 20.0,
    }

    def run(self, problem: Problem, budget: int, rng: np.random.Generator, validate: Validate) -> None:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.evaluator import Evaluator
        from pymoo.core.problem import Problem as PymooProblem
        from pymoo.core.termination import NoTermination
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.problems.static import StaticProblem

        pop_size = self._int_setting("population", 2)
        s = self.settings
        n_obj, upper = len(problem.objectives), problem.upper
        initial = problem.sample(pop_size, rng)
        if initial.shape[0] == 0:
            return
        seed = int(rng.integers(0, 2**31 - 1))
        target = PymooProblem(n_var=upper.size, n_obj=n_obj, n_ieq_constr=1, xl=np.zeros(upper.size),
                              xu=upper.astype(np.float64), vtype=int)
        algorithm = NSGA2(
            pop_size=pop_size,
            sampling=initial.astype(np.float64),
            crossover=SBX(prob=self._prob_setting("crossover_prob"), eta=float(s["crossover_eta"]),
                          vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=self._prob_setting("mutation_prob"), eta=float(s["mutation_eta"]),
                        vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=_canonical_duplicates(problem),
        )
        seen: set[bytes] = set()
        stall = generation = 0
        with isolated_global_rng(seed):
            algorithm.setup(target, termination=NoTermination(), seed=seed, verbose=False)
        while stall < STALL_GENERATIONS:
            generation += 1
            with isolated_global_rng(seed + 2 * generation):
                pop = algorithm.ask()
            if pop is None or len(pop) == 0:
                return  # no offspring that is not a duplicate: nothing left to try
            X = problem.canonical(np.rint(pop.get("X")).astype(np.int64))
            cv = problem.violation(X)
            feasible = cv <= 0
            F = np.zeros((X.shape[0], n_obj))
            keys = row_keys(X)
            fresh = any(feasible[i] and keys[i] not in seen for i in range(len(keys)))
            if feasible.any():
                F[feasible] = problem.to_min(validate(X[feasible]))
                seen.update(k for k, ok in zip(keys, feasible) if ok)
            stall = 0 if fresh else stall + 1
            Evaluator().eval(StaticProblem(target, F=F, G=cv[:, None]), pop)
            with isolated_global_rng(seed + 2 * generation + 1):
                algorithm.tell(infills=pop)
