"""``hwnas search --executor ray``: every batch the driver validates is evaluated in parallel
by Ray actors.

Design:

* **Actors.** :class:`EvaluationActor` (one CPU each; by default one per CPU of the cluster)
  builds the supernet (``get_supernet(space, plugin)``) and the expensive objectives
  (accuracy through the supernet's evaluator, OSE ``loss`` with the run's Θ) *once*, in its
  constructor, from picklable inputs (:class:`EvaluationSpec`). A task carries one gene row
  (int64 [G]) and returns its values, so nothing big is pickled per task.
* **Order and determinism.** The actor computes a row exactly as
  :class:`~hwnas.search.executor.LocalExecutor` does (same function, same objectives), and
  :meth:`RayExecutor.evaluate` yields rows strictly in row order whatever order they finish
  in, so the archive appends the same rows in the same order as a local run of the same seed.
  Rows are handed to whichever actor is free (at most ``depth`` queued per actor), so a slow
  configuration does not hold a whole share of the batch.
* **Faults.** A worker process that dies (killed, out of memory) is restarted by Ray
  (``max_restarts``) and the task it held is run again (``max_task_retries``); the result of a
  task arrives once, so the archive (the single source of truth, appending rows as they
  complete in order) never loses or repeats an evaluation. An objective that *raises* is not
  retried: :class:`~hwnas.search.executor.EvaluationError` names the configuration, the
  driver keeps every row before it, and the remaining tasks of the batch are cancelled.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.distributed import connect, require_ray
from hwnas.errors import InputError
from hwnas.search.executor import EvaluationError, Executor, one_line
from hwnas.search.problem import Problem

#: How often (s) the driver wakes while waiting, so Ctrl-C is seen promptly.
WAIT_S = 0.5


@dataclass(frozen=True)
class EvaluationSpec:
    """What an actor needs to rebuild the expensive objectives (all picklable).

    Attributes:
        space: space name.
        plugin: plug-in spec ``MODULE:FACTORY`` or None (built-in spaces).
        objectives: the expensive objectives' names in ``problem.expensive_index`` order.
        loss_settings: OSE's Θ as JSON dicts (``loss`` only), None for the defaults.
    """

    space: str
    plugin: str | None
    objectives: tuple[str, ...]
    loss_settings: tuple[dict[str, Any], ...] | None = None

    @classmethod
    def from_prepared(cls, prepared: Any) -> EvaluationSpec:
        """From a :class:`~hwnas.search.driver.Prepared` search.

        Raises:
            InputError: the request passed evaluator or supernet *objects* (the actors rebuild
                them from names).
        """
        request, problem = prepared.request, prepared.problem
        if request.evaluator is not None or request.supernet is not None:
            raise InputError("--executor ray rebuilds the supernet and evaluator from the space name on "
                             "each worker; pass --space/--supernet names, not objects")
        names = tuple(problem.objectives[i].name for i in problem.expensive_index)
        loss = None
        if "loss" in names:
            loss = tuple(problem.objectives[problem.names.index("loss")].meta["settings"])
        return cls(request.space, request.plugin, names, loss)


class EvaluationActor:
    """Holds one supernet and its expensive objectives; evaluates one gene row per call."""

    def __init__(self, spec: EvaluationSpec, threads: int = 1):
        import torch

        from hwnas.search.objectives import ObjectiveFactory
        from hwnas.supernets.registry import get_supernet

        torch.set_num_threads(max(1, threads))
        supernet = get_supernet(spec.space, spec.plugin)
        factory = ObjectiveFactory(supernet, [], None, None if spec.loss_settings is None else list(spec.loss_settings))
        self.objectives = [factory.objective(name) for name in spec.objectives]

    def pid(self) -> int:
        """This worker's process id (tests kill it)."""
        return os.getpid()

    def evaluate(self, row: np.ndarray) -> tuple[list[float], float]:
        """Values float [E] of one canonical gene row int64 [G], and the seconds it took."""
        from hwnas.search.executor import evaluate_row

        start = time.perf_counter()
        values = evaluate_row(self.objectives, np.asarray(row, dtype=np.int64))
        return values.tolist(), time.perf_counter() - start


@dataclass
class BatchStats:
    """Timing of one batch: rows, wall seconds on the driver, summed seconds inside actors."""

    rows: int
    wall_s: float
    actor_s: float = 0.0
    retried: int = 0


class RayExecutor(Executor):
    """Evaluates each batch on a pool of :class:`EvaluationActor` s (see module doc).

    Args:
        spec: what the actors build (:meth:`EvaluationSpec.from_prepared`).
        address: Ray cluster to join; None starts a local instance with this machine's cores
            (a Ray already initialised in this process is used as it is).
        actors: pool size; None: one per CPU of the cluster.
        depth: rows queued per actor at a time (≥1; 2 hides the round trip).
        max_restarts: restarts of a dead actor process (Ray ``max_restarts``).
        max_task_retries: reruns of a task whose actor died (Ray ``max_task_retries``).

    Use as a context manager (or call :meth:`close`): it kills its actors and shuts down the
    Ray instance it started.
    """

    def __init__(self, spec: EvaluationSpec, address: str | None = None, actors: int | None = None,
                 depth: int = 2, max_restarts: int = 3, max_task_retries: int = 3):
        self.ray = require_ray("--executor ray")
        if actors is not None and actors < 1:
            raise InputError(f"Ray actors must be at least 1, got {actors}")
        self.spec = spec
        self.depth = max(1, int(depth))
        self.batches: list[BatchStats] = []
        self._owns_ray = connect(self.ray, address)
        try:
            n = actors if actors is not None else max(1, int(self.ray.cluster_resources().get("CPU", 1)))
            remote = self.ray.remote(EvaluationActor).options(
                num_cpus=1, max_restarts=max_restarts, max_task_retries=max_task_retries)
            self.actors = [remote.remote(spec, 1) for _ in range(n)]
            self._ready()
        except BaseException:
            self.close()
            raise

    def _ready(self) -> None:
        """Wait until every actor has built its objectives; a build error is an InputError."""
        try:
            self.ray.get([a.pid.remote() for a in self.actors])
        except self.ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            raise InputError(f"Ray workers could not build space {self.spec.space!r}: {one_line(cause)}") from None

    def pids(self) -> list[int]:
        """Process ids of the actors now (one per actor)."""
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        """Kill the actors; shut Ray down if this executor started it."""
        for actor in getattr(self, "actors", []):
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 (already gone: nothing to kill)
                pass
        self.actors = []
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, problem: Problem, genes: np.ndarray) -> Iterator[tuple[np.ndarray, float]]:
        names = tuple(problem.objectives[i].name for i in problem.expensive_index)
        if names != self.spec.objectives:
            raise ValueError(f"RayExecutor was built for objectives {self.spec.objectives}, the problem's "
                             f"expensive ones are {names}")
        if not self.actors:
            raise RuntimeError("RayExecutor is closed")
        rows = np.asarray(genes, dtype=np.int64)
        stats = BatchStats(rows=rows.shape[0], wall_s=0.0)
        self.batches.append(stats)
        start = time.perf_counter()
        todo = deque(range(rows.shape[0]))
        inflight: dict[Any, tuple[int, int]] = {}  # ObjectRef -> (row, actor)
        done: dict[int, tuple[np.ndarray, float] | Exception] = {}  # a failure waits for its turn
        load = [0] * len(self.actors)

        def submit(actor: int) -> None:
            while todo and load[actor] < self.depth:
                i = todo.popleft()
                inflight[self.actors[actor].evaluate.remote(rows[i])] = (i, actor)
                load[actor] += 1

        try:
            for a in range(len(self.actors)):
                submit(a)
            for i in range(rows.shape[0]):
                while i not in done:
                    ready, _ = self.ray.wait(list(inflight), num_returns=1, timeout=WAIT_S)
                    for ref in ready:
                        row, actor = inflight.pop(ref)
                        load[actor] -= 1
                        try:
                            done[row] = self._result(problem, rows[row], ref)
                            stats.actor_s += done[row][1]
                            submit(actor)
                        except (EvaluationError, InputError) as exc:
                            done[row] = exc  # rows before it may still be running: they come first
                result = done.pop(i)
                if isinstance(result, Exception):
                    raise result
                yield result
        finally:
            for ref in inflight:  # an error, an interrupt or the archive stopped listening
                try:
                    self.ray.cancel(ref)
                except Exception:  # noqa: BLE001 (finished or gone: nothing to cancel)
                    pass
            stats.wall_s = time.perf_counter() - start

    def _result(self, problem: Problem, row: np.ndarray, ref: Any) -> tuple[np.ndarray, float]:
        exceptions = self.ray.exceptions
        try:
            values, wall = self.ray.get(ref)
        except exceptions.RayTaskError as exc:  # the objective raised: not retried
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, InputError):  # user-fixable, as in a local run (exit 2)
                raise InputError(str(cause)) from None
            raise EvaluationError(problem.configs(row[None, :])[0], one_line(cause)) from None
        except exceptions.RayError as exc:  # the worker died more often than the retries allow
            raise EvaluationError(problem.configs(row[None, :])[0],
                                  f"Ray worker lost ({type(exc).__name__}) after its retries") from None
        return np.asarray(values, dtype=np.float64), float(wall)


def ray_executor(prepared: Any, address: str | None = None, actors: int | None = None,
                 **options: Any) -> RayExecutor:
    """A :class:`RayExecutor` for a prepared search (what ``hwnas search --executor ray`` uses)."""
    return RayExecutor(EvaluationSpec.from_prepared(prepared), address=address, actors=actors, **options)


__all__ = ["BatchStats", "EvaluationActor", "EvaluationSpec", "RayExecutor", "ray_executor"]
