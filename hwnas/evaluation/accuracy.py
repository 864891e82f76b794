"""Accuracy of sub-networks: the :class:`Evaluator` protocol and :func:`get_evaluator`.

* Built-in ``bert-mini``: :class:`WeightSharingEvaluator` — every configuration runs with the
  weights it inherits from the shipped trained supernet (``hwnas/data/bert-mini.pt``) over the
  validation split of the built-in task (``sentiment-synth``, seed 0, 2,000 examples), in
  length-sorted batches under ``torch.inference_mode``; ``test_accuracy`` uses the 2,000-example test split.
* Plug-in supernets: :class:`PluginEvaluator` wraps ``supernet.evaluate(configs)`` (and
  ``supernet.test_evaluate(configs)`` if it exists).
* ``bert-ose`` and ``bert-linas`` have no trained weights, hence no accuracy: use OSE's
  brief-training loss (:mod:`hwnas.evaluation.ose_proxy`) instead.

All evaluators cache results by ``space.key(config)``.

The examples are sorted by length and each batch is cut to its longest sentence: padded positions
are masked out of attention and only the [CLS] position reaches the classifier, so this changes
nothing but the time (about 3x less: sentences average 11 of the 32 tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from hwnas.errors import InputError
from hwnas.evaluation.task import Split, TextTask, make_task
from hwnas.evaluation.training import trimmed
from hwnas.space import Config
from hwnas.supernets.base import Supernet
from hwnas.supernets.bert import ElasticBert

__all__ = [
    "Evaluator",
    "PluginEvaluator",
    "SplitBatches",
    "WeightSharingEvaluator",
    "default_task",
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


@lru_cache(maxsize=4)
def default_task(name: str = "sentiment-synth", seed: int = 0) -> TextTask:
    """The built-in task the shipped checkpoint was trained on (generated once per process)."""
    return make_task(name, seed=seed)


class SplitBatches:
    """One split as length-sorted batches of (input_ids, attention_mask, token_type_ids) int64
    [b, L_batch] tensors and labels int64 [b]."""

    def __init__(self, split: Split, batch: int = EVAL_BATCH):
        order = np.argsort(split.attention_mask.sum(axis=1), kind="stable")
        self.size = len(split)
        self.batches: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]] = []
        for start in range(0, self.size, batch):
            rows = order[start : start + batch]
            self.batches.append(
                (trimmed(split.input_ids[rows], split.attention_mask[rows]), torch.as_tensor(split.labels[rows]))
            )


def split_accuracy(run: Callable[[tuple[torch.Tensor, ...]], torch.Tensor], data: SplitBatches) -> float:
    """Fraction of ``data`` that ``run(inputs) -> logits [b, C]`` classifies correctly."""
    correct = 0
    with torch.inference_mode():
        for inputs, labels in data.batches:
            correct += int((run(inputs).argmax(dim=-1) == labels).sum())
    return correct / data.size


class _Cached:
    """Cache of accuracies by ``space.key``; ``computed`` counts the configurations actually run."""

    def __init__(self, supernet: Any):
        self.supernet = supernet
        self.computed = 0
        self._caches: dict[str, dict[str, float]] = {"validation": {}, "test": {}}

    def _cached(self, which: str, configs: Sequence[Config], compute: Callable[[list[Config]], Sequence[float]]) -> np.ndarray:
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
    """Accuracy with inherited weights of a built-in BERT supernet on the built-in task."""

    def __init__(self, supernet: ElasticBert, task: TextTask | None = None, batch: int = EVAL_BATCH):
        super().__init__(supernet)
        self.task = task or default_task()
        self._batch = batch
        self._data: dict[str, SplitBatches] = {}
        self.description = (
            f"{supernet.name} weight-sharing, validation split ({len(self.task.validation)} examples "
            f"of {self.task.name}, seed {self.task.seed})"
        )

    def data(self, which: str) -> SplitBatches:
        """The ``"validation"`` or ``"test"`` split, batched (built on first use)."""
        if which not in self._data:
            self._data[which] = SplitBatches(getattr(self.task, which), self._batch)
        return self._data[which]

    def _accuracies(self, which: str, configs: list[Config]) -> list[float]:
        data = self.data(which)
        return [split_accuracy(lambda x, c=c: self.supernet.forward(x, c), data) for c in configs]

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        return self._cached("validation", configs, lambda todo: self._accuracies("validation", todo))

    def test_accuracy(self, configs: list[Config]) -> np.ndarray | None:
        return self._cached("test", configs, lambda todo: self._accuracies("test", todo))


class PluginEvaluator(_Cached):
    """Wraps a plug-in supernet's own ``evaluate`` (and optional ``test_evaluate``)."""

    def __init__(self, supernet: Any):
        super().__init__(supernet)
        self.description = f"{supernet.space.name} plug-in evaluate() ({type(supernet).__name__})"

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        return self._cached("validation", configs, self.supernet.evaluate)

    def test_accuracy(self, configs: list[Config]) -> np.ndarray | None:
        test = getattr(self.supernet, "test_evaluate", None)
        if not callable(test):
            return None
        return self._cached("test", configs, test)


def get_evaluator(supernet: Supernet) -> Evaluator:
    """The accuracy evaluator of a supernet (see module doc).

    Raises:
        InputError: the space has no accuracy (no trained checkpoint, or a plug-in without
            ``evaluate``), the shipped checkpoint file is missing, corrupt or for another space.
    """
    if isinstance(supernet, ElasticBert):
        if supernet.checkpoint is None:
            raise InputError(
                f"space {supernet.name!r} has no accuracy evaluator (no trained checkpoint); "
                "use OSE's brief-training loss objective instead, or the bert-mini space"
            )
        if not Path(supernet.checkpoint).is_file():
            raise InputError(
                f"space {supernet.name!r} has no accuracy evaluator: checkpoint {supernet.checkpoint} "
                "is missing (make it with tools/train_supernet.py)"
            )
        supernet.module()  # reads the checkpoint: InputError if corrupt or for another space
        if supernet.checkpoint_meta is None:
            raise InputError(
                f"space {supernet.name!r}: the supernet's weights were built before checkpoint "
                f"{supernet.checkpoint} existed; load a fresh supernet"
            )
        return WeightSharingEvaluator(supernet)
    evaluate = getattr(supernet, "evaluate", None)
    own = getattr(type(supernet), "evaluate", None)
    if not callable(evaluate) or own is Supernet.evaluate:
        name = getattr(getattr(supernet, "space", None), "name", type(supernet).__name__)
        raise InputError(f"supernet for space {name!r} has no accuracy evaluator (it defines no evaluate method)")
    return PluginEvaluator(supernet)
