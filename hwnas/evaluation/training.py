"""Supernet training with the sandwich rule (BigNAS / AutoFormer style) on a supernet's task.

Each step takes one batch of training examples and runs, with shared weights, the largest
sub-network, the smallest one and ``n_random`` sub-networks drawn uniformly from the space; the
gradients of all of them are accumulated and AdamW takes one step. With in-place distillation
(``distill > 0``) the other sub-networks learn from a mix of the labels and the largest one's
(detached) soft predictions of the same batch::

    loss_sub = (1 - distill) * CE(labels) + distill * CE(softmax(teacher_logits))

Learning rate: linear warm-up over ``warmup`` of the steps, then linear decay to 0.

Phases of progressive shrinking (Once-for-All) are runs with ``elastic`` naming the dimensions
that vary (e.g. ``("ks",)``, then ``("ks", "d")``, then all): the other dimensions stay at their
largest value in the random sub-networks, and "the smallest" is the smallest of that sub-space
(the elastic dimensions at their smallest, the rest at their largest).

Batches are taken in their trimmed form (``Split.feeds(rows, trim=True)``; for text: cut to
the longest sentence, whose padding is masked out anyway, so the logits do not change) to save
time. Deterministic given ``seed`` and the number of threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.checks import Bool, Float, Int, Probability, check_settings
from hwnas.errors import InputError
from hwnas.space import Config, SearchSpace
from hwnas.supernets.base import Supernet
from hwnas.task import Task

__all__ = ["SubspaceSampler", "TrainingSettings", "largest_config", "smallest_config", "train_supernet"]


def _names(name: str, value: Any) -> tuple[str, ...]:
    """A tuple of dimension names (a comma-separated string is split); checked against a space
    when training starts."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{name} must be dimension names, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class TrainingSettings:
    """Hyper-parameters of :func:`train_supernet` (recorded in the checkpoint's meta)."""

    steps: int = 1000
    batch: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of the steps
    n_random: int = 2  # random sub-networks per step, besides the largest and the smallest
    distill: float = 0.0  # weight of the largest sub-network's soft labels for the others
    clip: float = 1.0  # gradient-norm clipping
    seed: int = 0
    largest_only: bool = False  # train the largest sub-network alone (OFA's first phase), no sandwich
    elastic: tuple[str, ...] = ()  # dimensions the smallest and random sub-networks vary; (): all

    def __post_init__(self) -> None:
        checked = check_settings(asdict(self), SCHEMA)
        object.__setattr__(self, "elastic", checked["elastic"])  # "ks,d" -> ("ks", "d")


SCHEMA = {"steps": Int(1), "batch": Int(1), "lr": Float(0.0, lo_open=True), "weight_decay": Float(0.0),
          "warmup": Float(0.0, 1.0, hi_open=True), "n_random": Int(0), "distill": Probability(),
          "clip": Float(0.0), "seed": Int(0), "largest_only": Bool(), "elastic": _names}
"""The check of every :class:`TrainingSettings` field (:mod:`hwnas.checks`)."""


def _extreme_config(space: SearchSpace, pick: Callable[[tuple], Any]) -> Config:
    config: Config = {}
    depth = pick(space.dimension(space.depth).choices) if space.depth else None
    for dim in space.dimensions:
        value = pick(dim.choices)
        config[dim.name] = [value] * (depth or dim.per_layer) if dim.per_layer else value
    return space.canonical(config)


def largest_config(space: SearchSpace) -> Config:
    """The configuration with the largest value of every dimension."""
    return _extreme_config(space, max)


def smallest_config(space: SearchSpace) -> Config:
    """The configuration with the smallest value of every dimension."""
    return _extreme_config(space, min)


class SubspaceSampler:
    """Configurations of the sub-space where only ``elastic`` dimensions vary (the others at
    their largest value); all dimensions vary when ``elastic`` is empty.

    Raises:
        InputError: naming an ``elastic`` entry that is not a dimension of ``space``.
    """

    def __init__(self, space: SearchSpace, elastic: tuple[str, ...] = ()):
        known = [d.name for d in space.dimensions]
        for name in elastic:
            if name not in known:
                raise InputError(f"elastic dimension {name!r} is not in space {space.name!r} "
                                 f"(dimensions: {', '.join(known)})")
        self.space = space
        self.elastic = tuple(elastic)
        self.largest = largest_config(space)
        # The genes held at the largest configuration's (-1: drawn).
        hold, start = space.to_genes(self.largest), 0
        for dim in space.dimensions:
            if not elastic or dim.name in elastic:
                hold[start : start + dim.n_genes] = -1
            start += dim.n_genes
        self._hold = hold

    def smallest(self) -> Config:
        """The smallest configuration of the sub-space."""
        genes = np.where(self._hold >= 0, self._hold, self.space.to_genes(smallest_config(self.space)))
        config = self.space.from_genes(genes, validate=False)
        if not self.space.is_valid(config):
            raise InputError(f"the smallest configuration of {self.elastic} in {self.space.name!r} is not valid")
        return self.space.canonical(config)

    def sample(self, n: int, rng: np.random.Generator) -> list[Config]:
        """``n`` configurations drawn uniformly over the elastic genes (invalid draws rejected)."""
        return self.space.sample(n, seed=rng, hold=self._hold)


def _decays(name: str, param: torch.Tensor) -> bool:
    """Whether weight decay applies: weight matrices and kernels, not biases, norms, or transform
    matrices (initialised to the identity, e.g. OFA's kernel transforms: decay would pull them to 0)."""
    return param.ndim >= 2 and "norm" not in name and "transform" not in name


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train_supernet(
    supernet: Supernet,
    task: Task | None = None,
    settings: TrainingSettings | None = None,
    log: Callable[[str], None] | None = None,
    log_every: int = 50,
) -> dict[str, Any]:
    """Train ``supernet``'s shared weights in place with the sandwich rule (see module doc).

    Args:
        supernet: the supernet; its ``module()`` holds the shared weights trained in place.
        task: the training data (its ``train`` split); default: ``supernet.task()``.
        settings: hyper-parameters and seed (default :class:`TrainingSettings`).
        log: called with one progress line every ``log_every`` steps.
    Returns:
        stats: settings, wall and CPU time (s), epochs seen, and the mean training loss of the largest
        and the smallest sub-network over the last 10% of the steps.
    """
    s = settings or TrainingSettings()
    task = task if task is not None else supernet.task()
    if task is None or task.train is None:
        raise InputError(f"supernet for space {supernet.name!r} has no task with a train split to train on")
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    space = supernet.space
    sampler = SubspaceSampler(space, s.elastic)
    largest, smallest = sampler.largest, sampler.smallest()
    net = supernet.module()
    net.train()
    decay = [p for n, p in net.named_parameters() if _decays(n, p)]
    no_decay = [p for n, p in net.named_parameters() if not _decays(n, p)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=s.lr
    )
    warmup = round(s.warmup * s.steps)
    train = task.train
    n = len(train)
    order = rng.permutation(n)
    cursor = 0
    history = {"largest": [], "smallest": []}
    started, cpu_started = time.perf_counter(), time.process_time()
    for step in range(s.steps):
        if cursor + s.batch > n:
            order, cursor = rng.permutation(n), 0
        rows = order[cursor : cursor + s.batch]
        cursor += s.batch
        inputs = train.feeds(rows, trim=True)
        labels = torch.as_tensor(train.labels[rows])
        for group in optimizer.param_groups:
            group["lr"] = s.lr * _lr_factor(step, s.steps, warmup)
        optimizer.zero_grad(set_to_none=True)
        configs = [largest] if s.largest_only else [largest, smallest] + sampler.sample(s.n_random, rng)
        teacher: torch.Tensor | None = None
        for k, config in enumerate(configs):
            logits = supernet.forward(inputs, config)
            hard = F.cross_entropy(logits, labels)
            if k == 0:
                loss = hard
                teacher = logits.detach().softmax(dim=-1)
            elif s.distill > 0:
                soft = -(teacher * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
                loss = (1.0 - s.distill) * hard + s.distill * soft
            else:
                loss = hard
            loss.backward()
            if k < 2:
                history["largest" if k == 0 else "smallest"].append(hard.item())
        if s.clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), s.clip)
        optimizer.step()
        if log and ((step + 1) % log_every == 0 or step + 1 == s.steps):
            recent = slice(-log_every, None)
            log(
                f"step {step + 1}/{s.steps}  lr {optimizer.param_groups[0]['lr']:.2e}  "
                f"loss largest {_mean(history['largest'][recent]):.4f}  "
                f"smallest {_mean(history['smallest'][recent]):.4f}  "
                f"{time.perf_counter() - started:.0f} s"
            )
    net.eval()
    tail = max(1, s.steps // 10)
    return {
        "settings": asdict(s),
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
        "epochs": s.steps * s.batch / n,
        "train_loss_largest": _mean(history["largest"][-tail:]),
        "train_loss_smallest": _mean(history["smallest"][-tail:]),  # nan when only the largest trained
        "torch_threads": torch.get_num_threads(),
    }
