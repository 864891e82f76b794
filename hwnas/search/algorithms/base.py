"""The algorithm interface every search implements (random, NSGA-II, LINAS, OSE): ask/tell.

The driver (:func:`hwnas.search.driver.execute`) owns the loop, as Optuna and pymoo drive
their samplers and algorithms::

    algorithm.setup(problem, budget, rng)
    while (proposal := algorithm.ask()) is not None and len(proposal):
        F = archive.evaluate_batch(proposal.genes, proposal.predicted)   # F: [k, M], k <= B
        algorithm.tell(proposal.genes[:len(F)], F)
        if archive.exhausted:
            break

An algorithm never evaluates an expensive objective itself: it proposes batches and is told
the natural values of what was served. The archive answers configurations already validated
(in evaluations.jsonl) for free, so an algorithm that is deterministic given ``rng`` resumes a
killed run exactly: it replays, every earlier evaluation comes back from the archive, and the
run continues where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwnas.checks import Check, check_settings
from hwnas.errors import InputError
from hwnas.search.problem import Problem


@dataclass
class Proposal:
    """A batch of configurations an algorithm wants validated.

    Attributes:
        genes: canonical feasible genes, int64 [B, G] (``problem.canonical``, ``problem.feasible``).
        predicted: what a predictor expects of them, natural values float64 [B, M] in
            ``problem.objectives`` order, NaN where unknown; None when nothing is predicted.
            Recorded beside the validated values in evaluations.jsonl.
    """

    genes: np.ndarray
    predicted: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.genes = np.asarray(self.genes, dtype=np.int64)
        if self.genes.ndim != 2:
            raise ValueError(f"genes must be a matrix [B, G], got shape {self.genes.shape}")
        if self.predicted is not None:
            self.predicted = np.asarray(self.predicted, dtype=np.float64)
            if self.predicted.shape[0] != self.genes.shape[0]:
                raise ValueError(f"predicted has {self.predicted.shape[0]} rows for {self.genes.shape[0]} genes")

    def __len__(self) -> int:
        return int(self.genes.shape[0])


class Algorithm(ABC):
    """A search algorithm over a :class:`~hwnas.search.problem.Problem`, driven by ask/tell.

    Subclasses set ``name``, ``defaults`` (every setting with its default) and ``schema`` (each
    setting's check, :mod:`hwnas.checks`; settings without an entry are checked by the
    subclass's :meth:`check`). ``__init__`` accepts only the keys of ``defaults`` and checks
    every value against ``schema`` (InputError), so a bad setting is refused before any file
    is written; the merged, normalised settings are recorded in run.json (so a resumed run must
    use the same ones).

    Lifecycle: :meth:`setup` once, then :meth:`ask` / :meth:`tell` alternately until ``ask``
    returns None or an empty proposal, or the budget is spent.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[Mapping[str, Any]] = {}
    schema: ClassVar[Mapping[str, Check]] = {}

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise InputError(f"algorithm {self.name!r} has no setting {unknown[0]!r} (settings: {known})")
        merged = {**self.defaults, **{k: v for k, v in settings.items() if v is not None}}
        self.settings: dict[str, Any] = check_settings(merged, self.schema, prefix=f"{self.name} setting ")

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
    def setup(self, problem: Problem, budget: int, rng: np.random.Generator) -> None:
        """Start a search (forgetting any earlier one): ``budget`` distinct validated
        evaluations at most; ``rng`` is the run's only source of randomness."""

    @abstractmethod
    def ask(self) -> Proposal | None:
        """The next batch to validate; None (or an empty proposal) when nothing is left to try.

        Between two asks the driver calls :meth:`tell` once with what it served of the batch.
        """

    @abstractmethod
    def tell(self, genes: np.ndarray, F: np.ndarray) -> None:
        """What the last asked batch turned out to be.

        Args:
            genes: the first ``k`` rows of the last proposal's genes, int64 [k, G].
            F: their natural objective values, float64 [k, M] in ``problem.objectives`` order.
                ``k`` is smaller than the batch only when the budget ran out mid-batch; an
                algorithm may then stop proposing (ask returns None).
        """

    def summary(self) -> dict[str, Any]:
        """Algorithm-specific results for run.json's ``result`` (e.g. OSE's W table); JSON-ready."""
        return {}
