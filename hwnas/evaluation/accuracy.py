"""Accuracy of sub-networks: the :class:`Evaluator` protocol and :func:`get_evaluator`.

* A supernet that names the task its shared weights are scored on
  (:meth:`~hwnas.supernets.base.Supernet.accuracy_task`, e.g. ``bert-mini``):
  :class:`WeightSharingEvaluator` — every configuration runs with the weights it inherits from
  the supernet over the task's validation split (``test_accuracy``: its test split), in batches
  of the supernet's ``eval_batch`` (default :data:`EVAL_BATCH`) examples taken in the split's :meth:`~hwnas.task.Split.order` and
  trimmed (``feeds(rows, trim=True)``: for text, cut to the batch's longest sentence, which
  changes nothing but the time), under ``torch.inference_mode``.
* A supernet with its own :meth:`~hwnas.supernets.base.Supernet.evaluate` (and optionally
  ``test_evaluate``): :class:`PluginEvaluator` wraps them.
* Neither: :func:`get_evaluator` raises the supernet's own InputError (e.g. ``bert-ose`` has no
  trained weights: use OSE's brief-training loss instead).

All evaluators cache results by ``space.key(config)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from hwnas.errors import InputError
from hwnas.space import Config
from hwnas.supernets.base import Supernet
from hwnas.task import Split, Task

__all__ = [
    "EVAL_BATCH",
    "Evaluator",
    "PluginEvaluator",
    "WeightSharingEvaluator",
    "get_evaluator",
    "split_accuracy",
]

EVAL_BATCH = 64
"""Examples per forward pass when evaluating. Sorted by length, small batches pad least and stay
in cache: at one thread, 64 measured fastest among 32..2000 (largest bert-mini sub-network over
the 2,000 validation examples: 0.7 s at 64, 1.0-1.2 s at 500, 2.6 s at 2,000)."""


@runtime_checkable
class Evaluator(Protocol):
    """Accuracy of configurations; searches accept any object with these members."""

    description: str

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        """Validation accuracy in [0, 1] of each configuration, float64 [N] (cached by key)."""
        ...

    def test_accuracy(self, configs: list[Config]) -> np.ndarray | None:
        """Test-split accuracy in [0, 1], float64 [N], or None when there is no test split."""
        ...


def batches(split: Split, size: int = EVAL_BATCH) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """The split as (trimmed feeds, labels int64 [b]) batches in its evaluation order."""
    order = split.order()
    return [(split.feeds(order[i : i + size], trim=True), split.labels[order[i : i + size]])
            for i in range(0, len(split), size)]


def split_accuracy(run: Callable[[dict[str, np.ndarray]], torch.Tensor],
                   data: Sequence[tuple[dict[str, np.ndarray], np.ndarray]]) -> float:
    """Fraction of the examples in ``data`` (:func:`batches`) that ``run(feeds) -> logits [b, C]``
    classifies correctly."""
    correct = total = 0
    with torch.inference_mode():
        for feeds, labels in data:
            correct += int((run(feeds).argmax(dim=-1).numpy() == labels).sum())
            total += int(labels.shape[0])
    return correct / total


class _Cached:
    """Cache of accuracies by ``space.key``; ``computed`` counts the configurations actually run."""

    def __init__(self, supernet: Supernet):
        self.supernet = supernet
        self.computed = 0
        self._caches: dict[str, dict[str, float]] = {"validation": {}, "test": {}}

    def _cached(self, which: str, configs: Sequence[Config],
                compute: Callable[[list[Config]], Sequence[float]]) -> np.ndarray:
        if isinstance(configs, dict):
            raise InputError("evaluate() takes a list of configurations, got one configuration")
        cache = self._caches[which]
        keys = [self.supernet.space.key(c) for c in configs]
        todo: dict[str, Config] = {}
        for key, config in zip(keys, configs):
            if key not in cache and key not in todo:
                todo[key] = config
        if todo:
            values = np.asarray(compute(list(todo.values())), dtype=np.float64).reshape(-1)
            if values.shape[0] != len(todo) or not np.all((values >= 0) & (values <= 1)):
                raise InputError(
                    f"accuracy evaluator of space {self.supernet.space.name!r} returned {values.tolist()[:5]} "
                    f"for {len(todo)} configurations (want one value in [0, 1] each)"
                )
            self.computed += len(todo)
            cache.update(zip(todo, values.tolist()))
        return np.array([cache[k] for k in keys], dtype=np.float64)


class WeightSharingEvaluator(_Cached):
    """Accuracy of configurations with the weights they inherit from the supernet, on ``task``
    (default: the supernet's :meth:`~hwnas.supernets.base.Supernet.accuracy_task`)."""

    def __init__(self, supernet: Supernet, task: Task | None = None, batch: int | None = None):
        super().__init__(supernet)
        self.task = task if task is not None else supernet.accuracy_task()
        self._batch = batch or supernet.eval_batch or EVAL_BATCH
        self._data: dict[str, list[tuple[dict[str, np.ndarray], np.ndarray]]] = {}
        seed = f", seed {self.task.seed}" if self.task.seed is not None else ""
        self.description = (f"{supernet.name} weight-sharing, validation split ({len(self.task.validation)} "
                            f"examples of {self.task.name}{seed})")

    def data(self, which: str) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
        """The ``"validation"`` or ``"test"`` split as batches (built on first use)."""
        if which not in self._data:
            split = getattr(self.task, which)
            if split is None:
                raise InputError(f"task {self.task.name!r} has no {which} split")
            self._data[which] = batches(split, self._batch)
        return self._data[which]

    def _accuracies(self, which: str, configs: list[Config]) -> list[float]:
        data = self.data(which)
        return [split_accuracy(lambda feeds, c=c: self.supernet.forward(feeds, c), data) for c in configs]

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        return self._cached("validation", configs, lambda todo: self._accuracies("validation", todo))

    def test_accuracy(self, configs: list[Config]) -> np.ndarray | None:
        if self.task.test is None:
            return None
        return self._cached("test", configs, lambda todo: self._accuracies("test", todo))


class PluginEvaluator(_Cached):
    """Wraps a supernet's own ``evaluate`` (and ``test_evaluate``, which may return None)."""

    def __init__(self, supernet: Supernet):
        super().__init__(supernet)
        self.description = f"{supernet.space.name} plug-in evaluate() ({type(supernet).__name__})"

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        return self._cached("validation", configs, self.supernet.evaluate)

    def test_accuracy(self, configs: list[Config]) -> np.ndarray | None:
        if type(self.supernet).test_evaluate is Supernet.test_evaluate:
            return None
        return self._cached("test", configs, self.supernet.test_evaluate)


def get_evaluator(supernet: Supernet) -> Evaluator:
    """The accuracy evaluator of a supernet (see module doc).

    Raises:
        InputError: the supernet has no accuracy (its ``accuracy_task`` says why, e.g. no
            trained checkpoint, or a checkpoint that is missing, corrupt or for another space).
    """
    if type(supernet).evaluate is not Supernet.evaluate:
        return PluginEvaluator(supernet)
    return WeightSharingEvaluator(supernet, supernet.accuracy_task())
