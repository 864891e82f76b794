"""The supernet protocol every built-in and plug-in supernet implements.

It knows nothing of transformers: a supernet has a search space, named inputs of a given
*shape* (a dict of ints such as ``{"batch": 1, "seq_len": 128}`` or ``{"batch": 1,
"resolution": 224}``), and it can

* run any configuration with shared weights (:meth:`Supernet.forward`, batch-shaped),
* cut a configuration out as a standalone ``nn.Module`` (:meth:`Supernet.extract`),
* say which *blocks* a configuration is made of, and build any block on its own for timing
  (:meth:`Supernet.blocks`, :meth:`Supernet.all_blocks`, :meth:`Supernet.build_block`),
* count parameters and MACs analytically.

The profiler times blocks; the latency predictor sums block times per configuration; the
searches ask for objectives; the exporter writes extracted modules to ONNX.

Optional hooks, with defaults, carry what the generic layers need from a concrete supernet
without knowing it: the task it is trained and scored on (:meth:`Supernet.task`,
:meth:`Supernet.accuracy_task`, or its own :meth:`Supernet.evaluate` /
:meth:`Supernet.test_evaluate`), OSE's brief-training network (and its size, for a cost
warning) and operation-count surrogate,
published reference architectures, and the inputs an exported model's parity is checked on.
:func:`hwnas.supernets.check_supernet` tests a supernet against the protocol's invariants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.checks import check_int
from hwnas.errors import InputError
from hwnas.space import Config, SearchSpace
from hwnas.task import Feeds, Split, Task

Shape = dict[str, int]

MAX_SHAPE = 65_536
"""Largest value of any shape setting (batch, sequence length, resolution)."""


@dataclass(frozen=True)
class BuiltBlock:
    """A block ready to export and time.

    Attributes:
        module: the block as a standalone module (random weights are fine for timing).
        feeds: example inputs by name, numpy arrays at the profile's shape.
        output_names: names of the block's outputs in the ONNX graph.
        dynamic_axes: axes exported as dynamic, as in the whole exported model, so that ONNX
            Runtime picks the same kernels and fusions for the block as for the model.
    """

    module: nn.Module
    feeds: Feeds
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)


class Supernet(ABC):
    """A weight-sharing supernet over one search space.

    Subclasses set ``space``, ``input_names``, ``output_names`` and ``default_shape``.
    """

    space: SearchSpace
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    default_shape: Shape
    #: Axes of the exported model's inputs/outputs that may vary (name -> {axis: label}).
    dynamic_axes: Mapping[str, Mapping[int, str]] = {}
    #: Examples per forward pass when its accuracy is evaluated (None: the evaluator's default).
    eval_batch: int | None = None

    @property
    def name(self) -> str:
        return self.space.name

    # -- shapes and inputs ---------------------------------------------------------------------
    def resolve_shape(self, shape: Mapping[str, int | None] | None = None) -> Shape:
        """The default shape updated with the given non-None values, validated (ints in
        [1, :data:`MAX_SHAPE`]: a batch of ten million is a typo, not a workload to allocate)."""
        out = dict(self.default_shape)
        for key, value in (shape or {}).items():
            if value is None:
                continue
            if key not in out:
                raise InputError(f"space {self.name!r} has no shape setting {key!r} (has: {', '.join(out)})")
            out[key] = check_int(key, value, 1, MAX_SHAPE)
        return out

    @abstractmethod
    def example_inputs(self, shape: Shape, seed: int = 0) -> Feeds:
        """Example inputs of a whole sub-network at ``shape``, by input name (numpy)."""

    # -- weights and configurations ------------------------------------------------------------
    @abstractmethod
    def module(self) -> nn.Module:
        """The weight-sharing module (created on first use; trained weights where shipped)."""

    @abstractmethod
    def forward(self, inputs: Feeds | tuple[torch.Tensor, ...], config: Config) -> torch.Tensor:
        """Outputs of ``config`` with shared weights, batch-shaped (e.g. logits [B, C])."""

    @abstractmethod
    def extract(self, config: Config) -> nn.Module:
        """A standalone module with fixed shapes and copied weights, equal to :meth:`forward`."""

    # -- blocks --------------------------------------------------------------------------------
    @abstractmethod
    def blocks(self, config: Config, shape: Shape) -> list[str]:
        """Keys of the blocks ``config`` is made of, in execution order, with repeats."""

    @abstractmethod
    def all_blocks(self, shape: Shape) -> list[str]:
        """Every distinct block key that any configuration of the space uses (sorted)."""

    def block_counts(self, genes: np.ndarray, keys: list[str], shape: Shape) -> np.ndarray:
        """How often each block of ``keys`` occurs in each configuration.

        Args:
            genes: int [N, n_genes] gene vectors (valid configurations).
            keys: block keys, the columns of the result (e.g. a profile's measured blocks).
        Returns:
            float64 [N, len(keys)]; a configuration's LUT sum is ``counts @ block_ms``.

        The default decodes each configuration; supernets override it with array arithmetic
        so that searches can predict latency for thousands of candidates at once.
        """
        index = {k: i for i, k in enumerate(keys)}
        genes = np.atleast_2d(genes)
        counts = np.zeros((genes.shape[0], len(keys)))
        for row, g in enumerate(genes):
            for key in self.blocks(self.space.from_genes(g), shape):
                if key not in index:
                    raise InputError(f"block {key!r} is not in the profile of space {self.name!r}")
                counts[row, index[key]] += 1
        return counts

    @abstractmethod
    def build_block(self, key: str, shape: Shape) -> BuiltBlock:
        """Build the block named by ``key`` at ``shape`` (random weights) for timing."""

    # -- analytics -----------------------------------------------------------------------------
    @abstractmethod
    def count_params(self, config: Config) -> int:
        """Parameters of the extracted sub-network (exactly)."""

    @abstractmethod
    def count_macs(self, config: Config, shape: Shape) -> int:
        """Multiply-accumulates of one inference at ``shape`` (matrix products)."""

    def features(self, config: Config) -> np.ndarray:
        """Numeric description of a configuration for predictors, float64 [n_features].

        Default: the chosen values of every gene (inactive layers 0). Override for better ones.
        """
        canonical = self.space.canonical(config)
        values: list[float] = []
        for dim in self.space.dimensions:
            if dim.per_layer:
                layer_values = [float(v) for v in canonical[dim.name]]
                values.extend(layer_values + [0.0] * (dim.per_layer - len(layer_values)))
            else:
                values.append(float(canonical[dim.name]))
        return np.asarray(values, dtype=np.float64)

    def feature_matrix(self, genes: np.ndarray) -> np.ndarray:
        """:meth:`features` of many gene vectors, float64 [N, n_features] (override to vectorize)."""
        genes = np.atleast_2d(genes)
        return np.stack([self.features(self.space.from_genes(g)) for g in genes])

    # -- optional hooks: the task --------------------------------------------------------------
    def task(self) -> Task | None:
        """The labelled data this supernet is trained on and scored with (its splits, the
        number of classes), or None. Supernet training and OSE's brief training read it."""
        return None

    def accuracy_task(self) -> Task:
        """The task the shared weights are scored on (the ``accuracy`` objective, through the
        generic weight-sharing evaluator). A supernet either returns one here or implements
        :meth:`evaluate` itself.

        Raises:
            InputError: the shared weights are not trained for a task (say why and what to use).
        """
        raise InputError(f"supernet for space {self.name!r} has no accuracy evaluator "
                         "(it defines neither accuracy_task() nor evaluate())")

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        """Validation accuracy in [0, 1] of each configuration, float64 [len(configs)].

        Optional: a supernet with its own evaluation implements this instead of
        :meth:`accuracy_task`; the searches then call it (cached by configuration key).
        """
        raise InputError(f"supernet for space {self.name!r} has no accuracy evaluator")

    def fidelity(self, configs: list[Config]) -> np.ndarray:
        """How faithfully each configuration reproduces the full network's outputs (the ``fidelity``
        objective), float64 [len(configs)], larger is better, at most 1 (e.g. the mean cosine
        similarity of sentence embeddings to the full model's).

        Raises:
            InputError: the supernet has no reference to compare against (the default).
        """
        raise InputError(f"supernet for space {self.name!r} has no fidelity objective "
                         "(it defines no fidelity(); the pretrained-checkpoint spaces do)")

    def test_evaluate(self, configs: list[Config]) -> np.ndarray | None:
        """Test-split accuracy in [0, 1], float64 [len(configs)], of a supernet implementing
        :meth:`evaluate`; None when it has no test split (the default)."""
        return None

    def deployment_test_split(self) -> Split | None:
        """For a supernet implementing :meth:`evaluate`: the labelled test examples that
        :meth:`test_evaluate` scores, as a :class:`~hwnas.task.Split` whose feeds are the
        exported model's inputs, so that ``hwnas export`` runs each exported ONNX file (FP32 and
        INT8) over them; None (the default): exported files get the evaluator's test accuracy
        only, and INT8 variants none. (Weight-sharing supernets need not implement this: their
        task's test split is used.)"""
        return None

    # -- optional hooks: OSE -------------------------------------------------------------------
    def brief_training_network(self, config: Config, seed: int) -> nn.Module:
        """A standalone module of ``config`` to train briefly for OSE's error estimate ê:
        a fresh initialisation seeded by ``seed`` (the OSE setting), or the sub-network's
        pretrained weights (the Bort setting). It takes ``task().train.feeds(rows, trim=True)``
        and returns logits [b, C].

        Raises:
            InputError: the supernet has no brief-training loss (the default).
        """
        raise InputError(f"supernet for space {self.name!r} has no brief-training loss (OSE's error "
                         "estimate): it defines no task() and brief_training_network()")

    def brief_training_params(self, config: Config) -> int | None:
        """Trainable parameters of :meth:`brief_training_network` for ``config``, counted
        without building it (the search warns before a costly brief training); None when
        unknown (the default: no warning is given)."""
        return None

    def op_counts(self, genes: np.ndarray, shape: Shape) -> np.ndarray:
        """OSE's hardware-independent inference-cost surrogate (additions + multiplications +
        other operations of one inference at ``shape``) of valid gene rows, float64 [N].

        Default: ``2 · MACs`` (one multiplication and one addition per multiply-accumulate);
        supernets that can count their other operations override it.
        """
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        return np.array([2.0 * self.count_macs(self.space.from_genes(g), dict(shape)) for g in genes])

    def reference_configs(self) -> list[dict[str, Any]]:
        """Published architectures of this space, for reference beside a search's results:
        ``[{"name", "config", "source"}]`` (e.g. Bort's pick on bert-ose). Default: none."""
        return []

    # -- optional hooks: deployment ------------------------------------------------------------
    def deployment_files(self) -> dict[str, Any]:
        """Files copied beside exported models, by the name they get there (e.g. a tokenizer,
        so that raw input → prediction works without hwnas). Default: none."""
        return {}

    def parity_inputs(self, shape: Shape) -> Feeds:
        """Inputs on which an exported model must match :meth:`extract` (two samples at
        ``shape``). Override to exercise what a deployed model meets, e.g. padding."""
        return self.example_inputs({**shape, "batch": 2}, seed=1)
