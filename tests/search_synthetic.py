"""A cheap synthetic supernet with a known Pareto front, for the search tests.

Six global dimensions ``x0..x5`` with choices 0..5 (46,656 configurations, all valid). Size is
linear (``params = 1000 + Σ c_i·x_i``) and accuracy saturates in a weighted sum with an
interaction penalty, so the accuracy/params front is a small, non-trivial subset that the
tests compute exactly by enumerating every configuration.

Also a plug-in for ``hwnas search --supernet search_synthetic:make`` with ``tests`` on PYTHONPATH (its ``evaluate``
makes it a space with accuracy); ``HWNAS_SYNTH_DELAY`` seconds of sleep per evaluated
configuration let a test kill a search half-way, ``HWNAS_SYNTH_GATE=PATH:K`` holds it before its
(K+1)-th evaluation for as long as the file PATH exists (a search kept running at a known point,
whatever the machine's load), and :data:`TORCH_THREADS` records the torch
threads each evaluation ran with.
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np
import torch
from torch import nn

from hwnas.space import Config, Dimension, SearchSpace
from hwnas.supernets.base import BuiltBlock, Supernet

#: torch's intra-op threads at each ``SyntheticNet.evaluate`` call (a test of ``search --threads``).
TORCH_THREADS: list[int] = []
COST = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 600.0])
GAIN = np.array([3.0, 1.0, 2.0, 0.5, 1.0, 0.2])
SPACE = SearchSpace(
    name="synth",
    supernet="synthetic",
    dimensions=tuple(Dimension(f"x{i}", tuple(range(6))) for i in range(6)),
)


def values(config: Config) -> np.ndarray:
    return np.array([config[f"x{i}"] for i in range(6)], dtype=np.float64)


def params_of(x: np.ndarray) -> np.ndarray:
    """Parameter count of value rows float [N, 6]."""
    return 1000.0 + x @ COST


def accuracy_of(x: np.ndarray) -> np.ndarray:
    """Accuracy of value rows float [N, 6], in (0.5, 0.95]."""
    return 0.95 - 0.4 * np.exp(-(x @ GAIN) / 10.0) - 0.01 * (x[:, 0] - x[:, 1]) ** 2 / 25.0


def all_values() -> np.ndarray:
    """Every configuration's values, float [46656, 6]."""
    return np.array(list(itertools.product(range(6), repeat=6)), dtype=np.float64)


class SyntheticNet(Supernet):
    """Analytic stand-in supernet; ``evaluate`` is its (deterministic) accuracy."""

    input_names = ("x",)
    output_names = ("y",)
    default_shape = {"batch": 1}

    def __init__(self) -> None:
        self.space = SPACE
        self.evaluated = 0

    def example_inputs(self, shape, seed=0):
        return {"x": np.zeros((shape["batch"], 1), np.float32)}

    def module(self) -> nn.Module:
        return nn.Identity()

    def forward(self, inputs, config):
        raise NotImplementedError

    def extract(self, config):
        return nn.Identity()

    def blocks(self, config, shape):
        return ["all"]

    def all_blocks(self, shape):
        return ["all"]

    def build_block(self, key, shape):
        return BuiltBlock(nn.Identity(), {"x": np.zeros((1, 1), np.float32)}, ("y",))

    def count_params(self, config: Config) -> int:
        return int(params_of(values(self.space.validate(config))[None, :])[0])

    def count_macs(self, config: Config, shape) -> int:
        return 2 * self.count_params(config)

    def feature_matrix(self, genes: np.ndarray) -> np.ndarray:
        """Vectorised features: the values (equal to the gene indices here), float [N, 6]."""
        return np.atleast_2d(np.asarray(genes, dtype=np.float64))

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        delay = float(os.environ.get("HWNAS_SYNTH_DELAY", "0"))
        TORCH_THREADS.append(torch.get_num_threads())
        out = []
        gate, _, after = os.environ.get("HWNAS_SYNTH_GATE", "").partition(":")
        for config in configs:
            if delay:
                time.sleep(delay)
            while gate and self.evaluated >= int(after) and os.path.exists(gate):
                time.sleep(0.01)  # held at a known point until the test removes the gate file
            self.evaluated += 1
            out.append(float(accuracy_of(values(config)[None, :])[0]))
        return np.array(out)


class StandIn:
    """A deterministic stand-in Evaluator; ``interrupt_after`` raises KeyboardInterrupt on the
    evaluation after that many (a search killed half-way)."""

    description = "synthetic stand-in"

    def __init__(self, interrupt_after: int | None = None):
        self.calls = 0
        self.interrupt_after = interrupt_after

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        out = []
        for config in configs:
            if self.interrupt_after is not None and self.calls >= self.interrupt_after:
                raise KeyboardInterrupt("stand-in interrupt")
            self.calls += 1
            out.append(float(accuracy_of(values(config)[None, :])[0]))
        return np.array(out)

    def test_accuracy(self, configs):
        return None


def make() -> SyntheticNet:
    """Plug-in factory (``--supernet search_synthetic:make``)."""
    return SyntheticNet()

