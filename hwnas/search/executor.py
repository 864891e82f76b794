"""Executors: who computes the expensive objectives of new configurations.

The archive (:class:`~hwnas.search.archive.Archive`) decides *which* configurations of a batch
are new and within the budget; an executor only computes their expensive objectives (accuracy,
OSE loss). :class:`LocalExecutor` does it in this process, one configuration after another; a
parallel executor (e.g. Ray) can evaluate the whole batch at once behind the same interface,
without touching any algorithm or the archive's bookkeeping.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.search.objectives import Objective
from hwnas.search.problem import Problem


class EvaluationError(RuntimeError):
    """An expensive objective raised (or its worker was lost for good) on one configuration.

    The archive has appended every row before it; the run directory stays resumable.

    Attributes:
        config: the configuration (JSON form) whose evaluation failed.
        cause: one line, ``"ExceptionType: message"``.
    """

    def __init__(self, config: Any, cause: str):
        self.config = config
        self.cause = cause
        super().__init__(f"evaluating configuration {json.dumps(config, separators=(',', ':'))} failed: {cause}")


class Executor(ABC):
    """Computes the expensive objectives of a batch of configurations."""

    @abstractmethod
    def evaluate(self, problem: Problem, genes: np.ndarray) -> Iterator[tuple[np.ndarray, float]]:
        """Expensive objectives of canonical feasible genes int64 [N, G].

        Yields, for row 0, 1, ..., N-1 *in order* (so the archive can append each row as soon
        as it and every row before it are known, and an interrupt loses nothing finished):
        ``(values, wall_s)`` — values float64 [E] in ``problem.expensive_index`` order, natural
        units; wall_s the seconds spent on that row.

        Raises:
            EvaluationError: an objective raised on a row (rows before it have been yielded).
            InputError: an objective raised one (a user-fixable problem, e.g. no checkpoint).
        """


class LocalExecutor(Executor):
    """In this process, row after row, each objective called on one configuration."""

    def evaluate(self, problem: Problem, genes: np.ndarray) -> Iterator[tuple[np.ndarray, float]]:
        expensive = [problem.objectives[i] for i in problem.expensive_index]
        for row in np.asarray(genes, dtype=np.int64):
            start = time.perf_counter()
            try:
                values = evaluate_row(expensive, row)
            except InputError:  # user-fixable (no checkpoint, no brief training): exit 2 as before
                raise
            except Exception as exc:
                raise EvaluationError(problem.configs(row[None, :])[0], one_line(exc)) from exc
            yield values, time.perf_counter() - start


def evaluate_row(expensive: list[Objective], row: np.ndarray) -> np.ndarray:
    """The objectives ``expensive`` on one canonical gene row int64 [G]: float64 [E]."""
    return np.array([float(np.asarray(o.evaluate(row[None, :]), dtype=np.float64)[0]) for o in expensive])


def one_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (at most 300 characters)."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
