"""Labelled data a supernet is trained and scored on: a :class:`Task` of :class:`Split` s.

A supernet names its task through :meth:`hwnas.supernets.base.Supernet.task`; the generic
weight-sharing evaluator, supernet training, OSE's brief training and the accuracy of exported
ONNX files all read examples through :meth:`Split.feeds`, so none of them knows what the
inputs are (token ids, images, tabular features) or their dtypes.

The metric is top-1 accuracy of the model's first output (logits ``[batch, num_classes]``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Feeds = dict[str, np.ndarray]


class Split(ABC):
    """N labelled examples.

    Subclasses set ``name`` and ``labels`` (int64 [N]) and implement :meth:`feeds`.
    """

    name: str
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @abstractmethod
    def feeds(self, rows: np.ndarray, *, trim: bool = False) -> Feeds:
        """Model inputs of the examples ``rows`` (int [b]) by input name, numpy arrays in the
        dtypes the model takes (leading axis b).

        ``trim``: the evaluator's fast form, any cut of the inputs that leaves every example's
        output unchanged (e.g. padding beyond the longest row of the batch, which attention
        masks out). Without it, the inputs exactly as a deployed model receives them.
        """

    def order(self) -> np.ndarray:
        """The order in which to batch the examples for fast evaluation, int64 [N] (e.g. by
        length, so trimmed batches pad least). Default: as stored."""
        return np.arange(len(self), dtype=np.int64)


@dataclass(frozen=True)
class ArraySplit(Split):
    """A split held as arrays: ``inputs[name]`` [N, ...] in the model's dtypes, ``labels`` [N]."""

    name: str
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray

    def __post_init__(self) -> None:
        sizes = {k: int(v.shape[0]) for k, v in self.inputs.items()}
        if any(n != int(self.labels.shape[0]) for n in sizes.values()):
            raise ValueError(f"split {self.name!r}: inputs {sizes} and {self.labels.shape[0]} labels differ in size")

    def feeds(self, rows: np.ndarray, *, trim: bool = False) -> Feeds:
        return {k: np.ascontiguousarray(v[rows]) for k, v in self.inputs.items()}


@dataclass(frozen=True)
class Task:
    """A classification task: its splits and number of classes.

    Attributes:
        name: e.g. ``"sentiment-synth"``, ``"digits"``.
        num_classes: C; chance-level cross-entropy is ln C.
        validation: scored during searches.
        test: scored for exported models (None when there is none).
        train: for (brief) training (None when the task is for scoring only).
        seed: the seed the data or its splits were drawn with (None when fixed).
    """

    name: str
    num_classes: int
    validation: Split
    test: Split | None = None
    train: Split | None = None
    seed: int | None = None
