"""Plain NSGA-II over integer genes (pymoo, ask/tell): the baseline of the LINAS paper.

Every feasible individual pymoo asks for is validated for real (proposed to the driver), so
the budget counts NSGA-II's evaluations exactly as LINAS's are counted. Settings follow the LINAS paper /
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
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwnas.checks import Check, Float, Int, Probability
from hwnas.search.algorithms.base import Algorithm, Proposal
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
    """NSGA-II validating every feasible individual (see module doc), as a state machine over
    pymoo's own ask/tell: :meth:`ask` advances pymoo to the next generation holding a feasible
    individual (infeasible-only generations are told their violation at once) and proposes its
    feasible rows; :meth:`tell` completes that generation's objective values and tells pymoo."""

    name: ClassVar[str] = "nsga2"
    defaults: ClassVar[Mapping[str, Any]] = {
        "population": 50,
        "crossover_prob": 0.9,
        "crossover_eta": 15.0,
        "mutation_prob": 0.02,
        "mutation_eta": 20.0,
    }
    schema: ClassVar[Mapping[str, Check]] = {
        "population": Int(2),
        "crossover_prob": Probability(),
        "crossover_eta": Float(0.0),
        "mutation_prob": Probability(),
        "mutation_eta": Float(0.0),
    }

    def setup(self, problem: Problem, budget: int, rng: np.random.Generator) -> None:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem as PymooProblem
        from pymoo.core.termination import NoTermination
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair

        s = self.settings
        pop_size = int(s["population"])
        self._problem = problem
        self._pending: _Generation | None = None
        self._seen: set[bytes] = set()
        self._stall = self._generation = 0
        initial = problem.sample(pop_size, rng)
        self._done = initial.shape[0] == 0
        if self._done:
            return
        self._seed = seed = int(rng.integers(0, 2**31 - 1))
        upper = problem.upper
        self._target = PymooProblem(n_var=upper.size, n_obj=len(problem.objectives), n_ieq_constr=1,
                                    xl=np.zeros(upper.size), xu=upper.astype(np.float64), vtype=int)
        self._pymoo = NSGA2(
            pop_size=pop_size,
            sampling=initial.astype(np.float64),
            crossover=SBX(prob=s["crossover_prob"], eta=s["crossover_eta"], vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=s["mutation_prob"], eta=s["mutation_eta"], vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=_canonical_duplicates(problem),
        )
        with isolated_global_rng(seed):
            self._pymoo.setup(self._target, termination=NoTermination(), seed=seed, verbose=False)

    def ask(self) -> Proposal | None:
        problem = self._problem
        while not self._done and self._stall < STALL_GENERATIONS:
            self._generation += 1
            with isolated_global_rng(self._seed + 2 * self._generation):
                pop = self._pymoo.ask()
            if pop is None or len(pop) == 0:
                break  # no offspring that is not a duplicate: nothing left to try
            X = problem.canonical(np.rint(pop.get("X")).astype(np.int64))
            cv = problem.violation(X)
            feasible = cv <= 0
            keys = row_keys(X)
            fresh = any(ok and key not in self._seen for key, ok in zip(keys, feasible))
            generation = _Generation(pop, X, cv, feasible, keys, fresh)
            if feasible.any():
                self._pending = generation
                return Proposal(X[feasible])
            self._finish(generation, np.zeros((X.shape[0], len(problem.objectives))))
        self._done = True
        return None

    def tell(self, genes: np.ndarray, F: np.ndarray) -> None:
        generation, self._pending = self._pending, None
        if generation is None:
            raise RuntimeError("nsga2: tell without a pending ask")
        n_feasible = int(generation.feasible.sum())
        if len(F) < n_feasible:
            # The budget ran out mid-generation: pymoo cannot be told a partial population.
            self._done = True
            return
        out = np.zeros((generation.X.shape[0], len(self._problem.objectives)))
        out[generation.feasible] = self._problem.to_min(np.asarray(F, dtype=np.float64))
        self._seen.update(k for k, ok in zip(generation.keys, generation.feasible) if ok)
        self._finish(generation, out)

    def _finish(self, generation: _Generation, F: np.ndarray) -> None:
        """Tell pymoo a generation's minimisation values F [N, M] (0 for infeasible rows, which
        carry their violation G instead) and count a stall when it held nothing new."""
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        self._stall = 0 if generation.fresh else self._stall + 1
        Evaluator().eval(StaticProblem(self._target, F=F, G=generation.cv[:, None]), generation.pop)
        with isolated_global_rng(self._seed + 2 * self._generation + 1):
            self._pymoo.tell(infills=generation.pop)


@dataclass
class _Generation:
    """One pymoo population awaiting its objective values."""

    pop: Any              # pymoo Population
    X: np.ndarray         # canonical genes int64 [N, G]
    cv: np.ndarray        # constraint violation float64 [N] (0 = feasible)
    feasible: np.ndarray  # bool [N]
    keys: list[bytes]     # row keys of X
    fresh: bool           # a feasible row not validated in an earlier generation
