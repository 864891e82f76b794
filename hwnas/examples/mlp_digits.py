"""Example plug-in: an elastic MLP on scikit-learn's handwritten digits — copy it to write your own.

Use it like any built-in space::

    hwnas spaces  --supernet hwnas.examples.mlp_digits:make_supernets
    hwnas profile --supernet hwnas.examples.mlp_digits:make_supernets --space mlp-digits --out P.json
    hwnas export  --supernet hwnas.examples.mlp_digits:make_supernets --space mlp-digits \\
                  --config '{"D": 2, "W": [64, 16]}' --out DIR

The network and the space
-------------------------
``pixels`` (float32 [batch, 64]: an 8×8 digit, intensities 0..16 divided by 16) → ``D`` hidden
layers (Linear → ReLU) of widths ``W[0..D-1]`` → a Linear head → ``logits`` (float32
[batch, 10]). Space ``mlp-digits``: depth ``D`` ∈ {1, 2, 3}, a width per layer ``W`` ∈
{4, 16, 64, 256}; 4 + 16 + 64 = 84 configurations, e.g. ``{"D": 2, "W": [64, 16]}``. Widths
step by ×4 so that accuracy really trades off against size (a 4-unit bottleneck loses digits).

Weight sharing is by slicing: every sub-network uses the first ``W[i]`` units of layer ``i``
of the largest network (256-256-256) and the first ``W[D-1]`` input columns of the head. The
shared weights are trained at first use, in about 2–3 s on one CPU thread, with the sandwich
rule (each step: the largest, the smallest and two random sub-networks) on a fixed, seeded
split of :func:`sklearn.datasets.load_digits` (1,797 images, shipped with scikit-learn, no
download): 1,197 train, 300 validation, 300 test. They are cached in memory for the process.

How to write a plug-in
----------------------
1. Describe the space with :class:`hwnas.space.SearchSpace`: named dimensions (global, or
   ``per_layer=L`` for one value per layer up to ``L`` layers, cut to the ``depth`` dimension),
   optional constraints. Configurations are JSON objects keyed by dimension name.
2. Subclass :class:`hwnas.supernets.base.Supernet` and set the class attributes
   ``input_names`` / ``output_names`` (names of the exported ONNX model's inputs and outputs),
   ``default_shape`` (the shape settings the profiler times at, a dict of ints such as
   ``{"batch": 1}``; ``hwnas profile --batch`` overrides ``batch``, and a transformer would add
   ``seq_len``) and ``dynamic_axes`` (``{name: {axis: label}}``, axes that may vary at run time).
3. Implement (shapes for a batch of ``B``; ``shape`` is a dict like ``default_shape``):

   ========================================  ==================================================
   ``module()``                              the weight-sharing ``nn.Module`` (trained weights)
   ``forward(inputs, config)``               outputs with shared weights, e.g. logits [B, C];
                                             ``inputs`` is a dict of numpy arrays by input name
                                             or a tuple of tensors in ``input_names`` order
   ``extract(config)``                       a standalone ``nn.Module`` with copied weights whose
                                             ``forward(*inputs)`` equals ``forward(inputs, config)``
                                             (it is what ``hwnas export`` writes to ONNX)
   ``example_inputs(shape, seed)``           ``{input name: numpy array}`` at ``shape``
   ``blocks(config, shape)``                 block keys of ``config`` in execution order (strings)
   ``all_blocks(shape)``                     every distinct block key of the space, sorted
   ``build_block(key, shape)``               :class:`~hwnas.supernets.base.BuiltBlock`: a module
                                             (random weights are fine), its feeds, output names
                                             and dynamic axes — the profiler times it alone
   ``count_params(config)``                  exact parameter count of ``extract(config)`` (int)
   ``count_macs(config, shape)``             multiply-accumulates of one inference (int)
   ``accuracy_task()`` (optional)            a :class:`hwnas.task.Task`: validation and test
                                             :class:`hwnas.task.Split` s (inputs by name, labels);
                                             hwnas scores every configuration on it with the
                                             shared weights (the ``accuracy`` objective) and runs
                                             exported ONNX files on its test split. Or implement
                                             ``evaluate(configs)`` / ``test_evaluate(configs)``
                                             yourself (accuracy in [0, 1], float64 [N])
   ``block_counts(genes, keys, shape)``      (optional, for speed) float64 [N, len(keys)] block
                                             multiplicities of gene vectors int [N, n_genes]
   ``feature_matrix(genes)`` (optional)      float64 [N, F] numeric features for predictors
   ========================================  ==================================================

   Block keys are yours to choose; the latency predictor sums the profile's measured block
   times over ``blocks(config)``, so a block must be timed the way it runs inside the whole
   model (same operators, same dynamic axes).
4. Expose a factory taking no arguments that returns one supernet or a list of them, and name
   it as ``--supernet package.module:factory``. The module must be importable: installed, on
   ``PYTHONPATH``, or in the current directory. A module that does not import, a missing
   factory, a factory that raises or returns something without the protocol is refused with
   exit status 2 and one line naming the problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.errors import InputError
from hwnas.space import Config, Dimension, SearchSpace
from hwnas.supernets.base import BuiltBlock, Feeds, Shape, Supernet
from hwnas.task import ArraySplit, Task

IN_FEATURES = 64  # 8×8 pixels
N_CLASSES = 10
MAX_DEPTH = 3

SPACE = SearchSpace(
    name="mlp-digits",
    supernet="elastic-mlp",
    dimensions=(
        Dimension("D", (1, 2, 3)),
        Dimension("W", (4, 16, 64, 256), per_layer=MAX_DEPTH),
    ),
    depth="D",
)
WIDTHS = SPACE.dimension("W").choices
DEPTHS = SPACE.dimension("D").choices


# ---------------------------------------------------------------------------------------------
# Data: a fixed, seeded split of scikit-learn's digits
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Images float32 [N, 64] (intensity / 16, in [0, 1]) and labels int64 [N] (0..9)."""

    x: torch.Tensor
    y: torch.Tensor


@cache
def digits_splits(seed: int = 0) -> dict[str, Split]:
    """Train (1,197), validation (300) and test (300) splits of ``load_digits``, by name."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype(np.float32), y.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    parts = {"test": order[:300], "validation": order[300:600], "train": order[600:]}
    with torch.inference_mode(False):  # plain tensors, usable for training, whoever asks first
        return {name: Split(torch.from_numpy(x[idx]), torch.from_numpy(y[idx])) for name, idx in parts.items()}


@cache
def digits_task(seed: int = 0) -> Task:
    """The splits of :func:`digits_splits` as the task the supernet is scored on: inputs
    ``pixels`` float32 [N, 64], labels int64 [N] (hwnas's generic splits)."""
    splits = {name: ArraySplit(name, {"pixels": split.x.numpy()}, split.y.numpy())
              for name, split in digits_splits(seed).items()}
    return Task("digits", N_CLASSES, validation=splits["validation"], test=splits["test"],
                train=splits["train"], seed=seed)


# ---------------------------------------------------------------------------------------------
# The network: one class for the weight store (run sliced) and for extracted sub-networks
# ---------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """``pixels`` float32 [B, 64] → ``logits`` float32 [B, 10] through hidden layers of the
    given widths (Linear → ReLU) and a Linear head.

    Built at the largest widths it is the supernet's weight store, run at smaller widths by
    :meth:`forward_sliced`; :meth:`extract` copies a slice of it into a standalone ``MLP``.
    """

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        sizes = [IN_FEATURES, *widths]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.head = nn.Linear(sizes[-1], N_CLASSES)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.head(x)

    def forward_sliced(self, pixels: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
        """The sub-network with hidden ``widths`` (one per active layer), shared weights."""
        x = pixels
        for layer, width in zip(self.hidden, widths):
            x = F.relu(F.linear(x, layer.weight[:width, : x.shape[1]], layer.bias[:width]))
        return F.linear(x, self.head.weight[:, : x.shape[1]], self.head.bias)

    def extract(self, widths: Sequence[int]) -> MLP:
        """A standalone ``MLP(widths)`` holding copies of the shared weights it uses."""
        new = MLP(widths)
        with torch.no_grad():
            for source, target in zip(self.hidden, new.hidden):
                target.weight.copy_(source.weight[: target.out_features, : target.in_features])
                target.bias.copy_(source.bias[: target.out_features])
            new.head.weight.copy_(self.head.weight[:, : new.head.in_features])
            new.head.bias.copy_(self.head.bias)
        return new.eval()


# ---------------------------------------------------------------------------------------------
# Training the shared weights (sandwich rule), once per process
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    """Supernet training: ``steps`` Adam steps (one-cycle learning rate peaking at ``lr``) on
    mini-batches of ``batch`` training images; each step sums the losses of the largest, the
    smallest and ``random_subnets`` random sub-networks (the sandwich rule)."""

    seed: int = 0
    steps: int = 400
    batch: int = 64
    lr: float = 1e-2
    random_subnets: int = 2


def train_weights(settings: TrainSettings) -> MLP:
    """Train the weight store from a seeded initialisation; deterministic (one torch thread)."""
    train = digits_splits()["train"]
    largest = [max(WIDTHS)] * MAX_DEPTH
    smallest = [min(WIDTHS)] * min(DEPTHS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same result run after run, and leaves the other cores alone
    # The first use may come from inside a caller's no_grad or inference_mode (e.g. evaluate).
    with torch.inference_mode(False), torch.enable_grad():
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                net = MLP(largest)
            rng = np.random.default_rng(settings.seed)
            optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=settings.steps)
            for _ in range(settings.steps):
                rows = torch.from_numpy(rng.integers(0, len(train.y), settings.batch))
                x, y = train.x[rows], train.y[rows]
                optimizer.zero_grad()
                subnets = [largest, smallest] + [c["W"] for c in SPACE.sample(settings.random_subnets, seed=rng)]
                for widths in subnets:
                    F.cross_entropy(net.forward_sliced(x, widths), y).backward()
                optimizer.step()
                schedule.step()
            optimizer.zero_grad()  # the weight store keeps no gradients
        finally:
            torch.set_num_threads(threads)
    return net.eval()


_TRAINED: dict[TrainSettings, MLP] = {}


def trained_weights(settings: TrainSettings) -> MLP:
    """The weight store trained with ``settings``, trained on first use and kept in memory."""
    if settings not in _TRAINED:
        _TRAINED[settings] = train_weights(settings)
    return _TRAINED[settings]


# ---------------------------------------------------------------------------------------------
# The supernet
# ---------------------------------------------------------------------------------------------
_BLOCK_RE = re.compile(r"^(?:fc/in=(?P<i>\d+)/out=(?P<o>\d+)|head/in=(?P<h>\d+))$")


class ElasticMLP(Supernet):
    """Weight-sharing MLP supernet over the ``mlp-digits`` space.

    Blocks: ``fc/in=I/out=O`` (Linear I→O then ReLU; the first layer has ``I`` = 64) and
    ``head/in=I`` (Linear I→10), at shape ``{"batch": B}``.
    """

    input_names = ("pixels",)
    output_names = ("logits",)
    default_shape = {"batch": 1}
    dynamic_axes = {"pixels": {0: "batch"}, "logits": {0: "batch"}}

    def __init__(self, settings: TrainSettings = TrainSettings()):
        self.space = SPACE
        self.settings = settings

    @staticmethod
    def widths(config: Config) -> list[int]:
        """Hidden widths of a configuration, one per active layer (validated)."""
        return list(SPACE.validate(config)["W"])

    # -- weights and configurations ------------------------------------------------------------
    def module(self) -> MLP:
        return trained_weights(self.settings)

    def forward(self, inputs: Feeds | tuple[torch.Tensor, ...], config: Config) -> torch.Tensor:
        pixels = inputs["pixels"] if isinstance(inputs, dict) else inputs[0]
        return self.module().forward_sliced(torch.as_tensor(pixels), self.widths(config))

    def extract(self, config: Config) -> MLP:
        return self.module().extract(self.widths(config))

    def example_inputs(self, shape: Shape, seed: int = 0) -> Feeds:
        rng = np.random.default_rng(seed)
        return {"pixels": rng.random((shape["batch"], IN_FEATURES), dtype=np.float32)}

    # -- blocks --------------------------------------------------------------------------------
    def blocks(self, config: Config, shape: Shape) -> list[str]:
        widths = self.widths(config)
        inputs = [IN_FEATURES, *widths[:-1]]
        return [f"fc/in={i}/out={o}" for i, o in zip(inputs, widths)] + [f"head/in={widths[-1]}"]

    def all_blocks(self, shape: Shape) -> list[str]:
        keys = {f"fc/in={IN_FEATURES}/out={o}" for o in WIDTHS} | {f"head/in={i}" for i in WIDTHS}
        if max(DEPTHS) > 1:
            keys |= {f"fc/in={i}/out={o}" for i in WIDTHS for o in WIDTHS}
        return sorted(keys)

    def block_counts(self, genes: np.ndarray, keys: list[str], shape: Shape) -> np.ndarray:
        """Vectorised: genes int [N, 4] (D, then W of layers 0..2) → float64 [N, len(keys)]."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        n = genes.shape[0]
        depth = np.asarray(DEPTHS)[genes[:, 0]]  # [N]
        widths = np.asarray(WIDTHS)[genes[:, 1 : 1 + MAX_DEPTH]]  # [N, 3]
        inputs = np.column_stack([np.full(n, IN_FEATURES), widths[:, :-1]])  # [N, 3]
        active = np.arange(MAX_DEPTH)[None, :] < depth[:, None]  # [N, 3]
        last = widths[np.arange(n), depth - 1]  # [N]
        counts = np.zeros((n, len(keys)))
        for column, key in enumerate(keys):
            block = self.parse_block(key)
            if block["kind"] == "fc":
                counts[:, column] = ((inputs == block["in"]) & (widths == block["out"]) & active).sum(axis=1)
            else:
                counts[:, column] = last == block["in"]
        incomplete = np.flatnonzero(counts.sum(axis=1) != depth + 1)
        if incomplete.size:  # a block of some configuration is not among ``keys``
            config = self.space.from_genes(genes[incomplete[0]])
            missing = next(k for k in self.blocks(config, shape) if k not in keys)
            raise InputError(f"block {missing!r} is not in the profile of space {self.name!r}")
        return counts

    def parse_block(self, key: str) -> dict[str, Any]:
        """Kind and sizes of a block key (``{"kind": "fc", "in", "out"}`` or ``{"kind": "head", "in"}``)."""
        match = _BLOCK_RE.match(key)
        if match and match["h"] and int(match["h"]) in WIDTHS:
            return {"key": key, "kind": "head", "in": int(match["h"])}
        if match and match["i"] and int(match["i"]) in (IN_FEATURES, *WIDTHS) and int(match["o"]) in WIDTHS:
            return {"key": key, "kind": "fc", "in": int(match["i"]), "out": int(match["o"])}
        raise InputError(f"unknown block key {key!r} for space {self.name!r}")

    def build_block(self, key: str, shape: Shape) -> BuiltBlock:
        block = self.parse_block(key)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if block["kind"] == "fc":  # Linear → ReLU, exactly as inside MLP.forward
                module: nn.Module = nn.Sequential(nn.Linear(block["in"], block["out"]), nn.ReLU())
                output = "out"
            else:
                module, output = nn.Linear(block["in"], N_CLASSES), "logits"
        hidden = np.random.default_rng(0).random((shape["batch"], block["in"]), dtype=np.float32)
        return BuiltBlock(module.eval(), {"hidden": hidden}, (output,),
                          {"hidden": {0: "batch"}, output: {0: "batch"}})

    # -- analytics -----------------------------------------------------------------------------
    def count_params(self, config: Config) -> int:
        sizes = [IN_FEATURES, *self.widths(config), N_CLASSES]
        return sum(a * b + b for a, b in pairwise(sizes))

    def count_macs(self, config: Config, shape: Shape) -> int:
        sizes = [IN_FEATURES, *self.widths(config), N_CLASSES]
        return shape["batch"] * sum(a * b for a, b in pairwise(sizes))

    def features(self, config: Config) -> np.ndarray:
        """[depth, Σ widths, last width] (float64)."""
        widths = self.widths(config)
        return np.array([len(widths), sum(widths), widths[-1]], dtype=np.float64)

    def feature_matrix(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        depth = np.asarray(DEPTHS)[genes[:, 0]]
        widths = np.asarray(WIDTHS)[genes[:, 1 : 1 + MAX_DEPTH]]
        active = np.arange(MAX_DEPTH)[None, :] < depth[:, None]
        last = widths[np.arange(len(depth)), depth - 1]
        return np.column_stack([depth, (widths * active).sum(axis=1), last]).astype(np.float64)

    # -- accuracy ------------------------------------------------------------------------------
    def accuracy_task(self) -> Task:
        """The digits splits (300 validation, 300 test images): hwnas's weight-sharing evaluator
        scores every configuration on them with the shared weights, and export runs the ONNX
        file itself on the test split."""
        return digits_task()

    task = accuracy_task


def make_supernets() -> list[Supernet]:
    """The plug-in factory: ``--supernet hwnas.examples.mlp_digits:make_supernets``."""
    return [ElasticMLP()]
