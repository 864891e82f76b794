"""The algorithm interface every search implements (random, NSGA-II, LINAS, OSE).

An algorithm proposes configurations as gene matrices and spends budget only through the
``validate`` callback the search driver gives it (see :meth:`Algorithm.run`). The driver owns
the run directory: ``validate`` appends each new evaluation to it, answers configurations
already validated from the archive for free, and raises :class:`BudgetExhausted` once the
budget is spent. An algorithm that is deterministic given ``rng`` therefore resumes a killed
run exactly: it replays, every earlier evaluation comes back from the archive, and the run
continues where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import InputError
from hwnas.search.problem import Problem

#: validate(genes int [N, G], predicted float [N, M] | None = None) -> F float64 [N, M]
Validate = Callable[..., np.ndarray]


class BudgetExhausted(Exception):
    """Raised by ``validate`` once ``budget`` distinct validated evaluations exist.

    Attributes:
        served: float64 [k, M], the values of the first ``k`` requested rows, served before the
            budget ran out (the last of them may be the evaluation that spent it); rows after
            them were not evaluated.
    """

    def __init__(self, served: np.ndarray | None = None) -> None:
        super().__init__("evaluation budget spent")
        self.served = np.zeros((0, 0)) if served is None else served


class Algorithm(ABC):
    """A search algorithm over a :class:`~hwnas.search.problem.Problem`.

    Subclasses set ``name`` and ``defaults`` (every setting with its default); ``__init__``
    accepts only those keys, and the merged settings are recorded in run.json (so a resumed
    run must use the same ones).
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise InputError(f"algorithm {self.name!r} has no setting {unknown[0]!r} (settings: {known})")
        self.settings: dict[str, Any] = {**self.defaults, **{k: v for k, v in settings.items() if v is not None}}

    def _int_setting(self, key: str, lo: int) -> int:
        value = self.settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise InputError(f"{self.name} setting {key} must be an integer >= {lo}, got {value!r}")
        return int(value)

    def _prob_setting(self, key: str) -> float:
        value = self.settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise InputError(f"{self.name} setting {key} must be a probability in [0, 1], got {value!r}")
        return float(value)

    def min_budget(self) -> int:
        """Smallest sensible evaluation budget (one population); the CLI refuses less."""
        return int(self.settings.get("population", 1))

    def check(self, problem: Problem, budget: int) -> None:
        """Refuse (InputError) a problem or budget this algorithm cannot work with, before any
        work starts. Default: the budget must cover :meth:`min_budget`."""
        if budget < self.min_budget():
            raise InputError(f"--evals {budget} is smaller than one population of {self.name} "
                             f"({self.min_budget()}); give at least {self.min_budget()}")

    @abstractmethod
    def run(self, problem: Problem, budget: int, rng: np.random.Generator, validate: Validate) -> None:
        """Search until ``validate`` raises :class:`BudgetExhausted` or nothing is left to try.

        ``validate(genes int [N, G]) -> F float64 [N, M]`` natural values of ALL objectives, in
        ``problem.objectives`` order. It is the only way to spend budget: it appends rows to
        the run directory, answers configurations already validated from the archive without
        spending budget (this is how resume works: the algorithm is deterministic given ``rng``
        and replays), and raises :class:`BudgetExhausted` once ``budget`` distinct validated
        evaluations exist. Only feasible configurations (``problem.feasible``) may be passed.
        An optional ``predicted`` argument (float [N, M], NaN where unknown) records what a
        predictor expected. Implementations may let BudgetExhausted propagate.
        """

    def summary(self) -> dict[str, Any]:
        """Algorithm-specific results for run.json's ``result`` (e.g. OSE's W table); JSON-ready."""
        return {}
