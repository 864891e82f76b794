"""The archive of a search: every validated evaluation, the budget, the front and hypervolume.

:meth:`Archive.evaluate_batch` is how the driver validates what an algorithm asks for. It
answers configurations already in evaluations.jsonl for free (this is how resume works), has
the new ones' expensive objectives computed by an :class:`~hwnas.search.executor.Executor`,
appends each new row in order to the run directory, and keeps the Pareto front and the
hypervolume series up to date.

Budget: ``budget`` counts *distinct configurations served* to the algorithm in this process,
archive answers included, so a replay after a kill spends exactly what the killed run had
spent. A batch is cut after the row that serves the ``budget``-th configuration. Should a
replay diverge from the archive (a new configuration is asked for when the archive already
holds ``budget`` rows), the batch is cut before it and :attr:`Archive.diverged` is set: the
run still ends with exactly ``budget`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.search.executor import Executor, LocalExecutor
from hwnas.search.pareto import hypervolume, non_dominated_mask
from hwnas.search.problem import Problem
from hwnas.search.store import RunDirectory


@dataclass
class ProgressEvent:
    """Sent after each new validated evaluation (and once at the start with ``row`` None)."""

    evaluations: int
    budget: int
    hypervolume: float
    front_size: int
    row: dict[str, Any] | None = None


class Archive:
    """Validated evaluations of one run directory, the budget, front and hypervolume.

    Args:
        problem: the search problem (objectives, feasibility, keys).
        run: the open run directory; its rows are loaded as the archive.
        budget: distinct configurations that may be served (``evals``).
        progress: called with a :class:`ProgressEvent` after each new evaluation.
        executor: computes expensive objectives (default :class:`LocalExecutor`).
    """

    def __init__(self, problem: Problem, run: RunDirectory, budget: int,
                 progress: Callable[[ProgressEvent], None] | None = None, executor: Executor | None = None):
        self.problem = problem
        self.run = run
        self.budget = budget
        self.progress = progress
        self.executor = executor if executor is not None else LocalExecutor()
        self.names = problem.names
        self.maximize = problem.maximize
        self.ref_min = problem.to_min(np.asarray(run.header["reference_point"], dtype=np.float64))
        self._by_key: dict[bytes, np.ndarray] = {}  # configuration key -> natural values [M]
        self.served: set[bytes] = set()
        self.front_rows: list[int] = []
        self.hv_series: list[float] = []
        self.hv = 0.0
        self.resumed_from = len(run.rows)
        self.diverged = False
        for row in run.rows:
            key, values = self._row_values(row)
            if key in self._by_key:
                raise InputError(f"{run.path}/evaluations.jsonl repeats configuration {row['config']} "
                                 f"(row {row['index']})")
            self._by_key[key] = values
            self._track(len(self.hv_series), values)
        run.write_hypervolume(self.hv_series)

    # -- state ---------------------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        """Rows in evaluations.jsonl."""
        return len(self.run.rows)

    @property
    def exhausted(self) -> bool:
        """True once the budget is spent (``budget`` configurations served, or a diverged replay)."""
        return self.diverged or len(self.served) >= self.budget

    def front(self) -> list[dict[str, Any]]:
        """Validated non-dominated rows, sorted by the first objective (best first)."""
        rows = [self.run.rows[i] for i in self.front_rows]
        sign = -1.0 if self.maximize[0] else 1.0
        return sorted(rows, key=lambda r: (sign * r["objectives"][self.names[0]], r["index"]))

    def write_front(self) -> None:
        self.run.write_pareto(self.names, self.front())

    # -- validation ----------------------------------------------------------------------------
    def evaluate_batch(self, genes: np.ndarray, predicted: np.ndarray | None = None) -> np.ndarray:
        """Validate a batch: archive answers, new evaluations, budget.

        Args:
            genes: feasible configurations, int [B, G] (canonicalised here).
            predicted: optional predictions, natural values float [B, M], NaN where unknown;
                recorded in the new rows (expensive objectives only).
        Returns:
            F: natural values of every objective, float64 [k, M] for the first ``k`` rows,
            ``k < B`` only when the budget ran out mid-batch (see module doc).
        Raises:
            ValueError: an infeasible row (algorithms may only propose feasible ones).
            RuntimeError: an objective returned a non-finite value.
        """
        problem = self.problem
        g = problem.canonical(np.asarray(genes))
        feasible = problem.feasible(g) if g.shape[0] else np.ones(0, dtype=bool)
        if not feasible.all():
            bad = int(np.flatnonzero(~feasible)[0])
            raise ValueError(f"evaluate_batch got an infeasible configuration (row {bad}); algorithms may only "
                             "propose feasible ones")
        keys = problem.keys(g)
        stop, new = self._plan(keys)
        if new:
            try:
                self._evaluate_new(g[new], [keys[i] for i in new],
                                   None if predicted is None else np.asarray(predicted, dtype=np.float64)[new])
            finally:
                self.write_front()
        self.served.update(keys[:stop])
        return np.array([self._by_key[k] for k in keys[:stop]], dtype=np.float64).reshape(stop, len(self.names))

    def _plan(self, keys: list[bytes]) -> tuple[int, list[int]]:
        """How many leading rows the budget serves, and which of them (positions, in order) are
        new configurations to evaluate (a repeat inside the batch is evaluated once)."""
        served = set(self.served)
        fresh: set[bytes] = set()
        new: list[int] = []
        for i, key in enumerate(keys):
            if key not in self._by_key and key not in fresh:
                if len(self._by_key) + len(fresh) >= self.budget:
                    self.diverged = True  # a replay asks for more than the archive holds
                    return i, new
                fresh.add(key)
                new.append(i)
            served.add(key)
            if len(served) >= self.budget:
                return i + 1, new
        return len(keys), new

    def _evaluate_new(self, genes: np.ndarray, keys: list[bytes], predicted: np.ndarray | None) -> None:
        """Evaluate new configurations (genes [N, G]) and append one row each, in order."""
        problem = self.problem
        cheap = problem.cheap_objectives(genes)  # [N, M_cheap], one vectorised call
        done = 0
        for expensive, wall in self.executor.evaluate(problem, genes):
            values = np.empty(len(self.names))
            values[problem.cheap_index] = cheap[done]
            values[problem.expensive_index] = expensive
            self._append(genes[done], keys[done], values, wall, None if predicted is None else predicted[done])
            done += 1
        if done != genes.shape[0]:
            raise RuntimeError(f"{type(self.executor).__name__} returned {done} results for {genes.shape[0]} configurations")

    def _append(self, genes: np.ndarray, key: bytes, values: np.ndarray, wall: float,
                predicted: np.ndarray | None) -> None:
        problem = self.problem
        if not np.isfinite(values).all():
            bad = self.names[int(np.flatnonzero(~np.isfinite(values))[0])]
            raise RuntimeError(f"objective {bad!r} returned a non-finite value for {problem.configs(genes[None, :])[0]}")
        config = problem.space.from_genes(genes)
        row: dict[str, Any] = {
            "index": len(self.run.rows),
            "config": config,
            "key": problem.space.key(config),
            "objectives": {n: float(v) for n, v in zip(self.names, values)},
            "validated": True,
        }
        if predicted is not None:
            guess = {n: float(v) for n, v, o in zip(self.names, predicted, problem.objectives)
                     if o.expensive and np.isfinite(v)}
            if guess:
                row["predicted"] = guess
        row["wall_s"] = round(wall, 6)
        self.run.append(row)
        self._by_key[key] = values
        self._track(row["index"], values)
        self.run.append_hypervolume(len(self.run.rows), self.hv)
        if self.progress is not None:
            self.progress(ProgressEvent(len(self.run.rows), self.budget, self.hv, len(self.front_rows), row))

    # -- bookkeeping ---------------------------------------------------------------------------
    def _row_values(self, row: dict[str, Any]) -> tuple[bytes, np.ndarray]:
        try:
            genes = self.problem.space.to_genes(row["config"])
            values = np.array([float(row["objectives"][n]) for n in self.names])
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise InputError(f"{self.run.path}/evaluations.jsonl row {row.get('index')} does not fit "
                             f"this search ({type(exc).__name__}: {exc})") from None
        return self.problem.keys(genes[None, :])[0], values

    def _track(self, index: int, values: np.ndarray) -> None:
        """Update the front and hypervolume with evaluation ``index``."""
        point = self.problem.to_min(values[None, :])
        if self.front_rows:
            front = self.problem.to_min(np.array([self._values(i) for i in self.front_rows]))
            dominated = bool(((front <= point).all(axis=1) & (front < point).any(axis=1)).any())
        else:
            front, dominated = np.zeros((0, point.shape[1])), False
        if not dominated:
            rows = self.front_rows + [index]
            F = np.vstack([front, point])
            keep = non_dominated_mask(F)
            self.front_rows = [r for r, k in zip(rows, keep) if k]
            self.hv = hypervolume(F[keep], self.ref_min)
        self.hv_series.append(self.hv)

    def _values(self, index: int) -> np.ndarray:
        row = self.run.rows[index]
        return np.array([float(row["objectives"][n]) for n in self.names])
