"""OSE's error estimate ê: the loss of a sub-network after brief training.

OSE (de Wynter, 2020) scores a candidate architecture by its error after a few training steps
from a fixed initialisation, looping over a small set Θ of hyperparameter settings and keeping the
best. :func:`brief_training_loss` computes one such error for one setting
(:class:`BriefTraining`) over two hooks of the supernet: the module to train comes from
``supernet.brief_training_network(config, setting.seed)`` (a seeded fresh initialisation for the
built-in BERT spaces), the data from ``supernet.task()``. It is trained for ``setting.steps``
AdamW steps (constant learning rate, weight decay 0.01, batches of ``setting.batch`` examples of
the task's train split, drawn by the seed), and the result is the mean cross-entropy (nats) on a
fixed validation batch (the first :data:`VALIDATION_EXAMPLES` examples of the validation split,
in two halves in the split's evaluation order). Batches are taken trimmed
(``Split.feeds(rows, trim=True)``), which leaves the loss unchanged.

Deterministic given the setting and the number of torch threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.checks import Float, Int, check_settings
from hwnas.errors import InputError
from hwnas.space import Config
from hwnas.supernets.base import Supernet

__all__ = ["VALIDATION_EXAMPLES", "WARN_BYTES", "BriefTraining", "BriefTrainingCost", "brief_training_cost",
           "brief_training_loss"]

VALIDATION_EXAMPLES = 128
"""Size of the fixed validation batch the loss is measured on."""

WEIGHT_DECAY = 0.01


@dataclass(frozen=True)
class BriefTraining:
    """One of OSE's hyperparameter sets Θ: ``steps`` AdamW steps of ``batch`` examples at
    learning rate ``lr`` from the initialisation seeded by ``seed``."""

    steps: int = 20
    batch: int = 32
    lr: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings({"steps": self.steps, "batch": self.batch, "lr": self.lr, "seed": self.seed},
                       {"steps": Int(0), "batch": Int(1), "lr": Float(0.0, 1.0, lo_open=True, hi_open=True),
                        "seed": Int(0)}, prefix="brief training ")


def _batches(n: int, steps: int, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    order, cursor, out = rng.permutation(n), 0, []
    for _ in range(steps):
        if cursor + batch > n:
            order, cursor = rng.permutation(n), 0
        out.append(order[cursor : cursor + batch])
        cursor += batch
    return out


def _tensors(supernet: Supernet, feeds: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(feeds[name]) for name in supernet.input_names)


def brief_training_loss(supernet: Supernet, config: Config, setting: BriefTraining = BriefTraining()) -> float:
    """OSE's error ê of ``config`` under one hyperparameter setting (see module doc).

    Args:
        supernet: a supernet with the ``task()`` and ``brief_training_network()`` hooks (the
            built-in ``bert-*`` spaces; their shared weights are not used).
        config: a configuration of the supernet's space (validated).
        setting: steps, batch, learning rate and seed.
    Returns:
        mean cross-entropy in nats on the fixed validation batch, after training.
    Raises:
        InputError: a supernet without the hooks, an invalid configuration.
    """
    if not isinstance(setting, BriefTraining):
        raise InputError(f"setting must be a BriefTraining, got {type(setting).__name__}")
    config = supernet.space.validate(config)
    net = supernet.brief_training_network(config, setting.seed)
    task = supernet.task()
    if task is None or task.train is None:
        raise InputError(f"supernet for space {supernet.name!r} has no task with a train split for brief training")
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=setting.lr, weight_decay=WEIGHT_DECAY)
    train = task.train
    for rows in _batches(len(train), setting.steps, setting.batch, setting.seed):
        optimizer.zero_grad(set_to_none=True)
        logits = net(*_tensors(supernet, train.feeds(rows, trim=True)))
        F.cross_entropy(logits, torch.as_tensor(train.labels[rows])).backward()
        optimizer.step()
    net.eval()
    val = task.validation
    first = np.arange(min(VALIDATION_EXAMPLES, len(val)))
    # The first examples in the split's evaluation order, in two halves (each trimmed on its own).
    rank = np.empty(len(val), dtype=np.int64)
    rank[val.order()] = np.arange(len(val))
    rows = first[np.argsort(rank[first], kind="stable")]
    total = 0.0
    with torch.inference_mode():
        for part in np.array_split(rows, 2):
            logits = net(*_tensors(supernet, val.feeds(part, trim=True)))
            total += float(F.cross_entropy(logits, torch.as_tensor(val.labels[part]), reduction="sum"))
    return total / len(rows)


#: Bytes of memory per trained parameter: float32 weights, gradients and AdamW's two moments.
BYTES_PER_PARAM = 16
#: A search warns before it starts when one brief training needs more memory than this (bytes).
WARN_BYTES = 1 << 30


@dataclass(frozen=True)
class BriefTrainingCost:
    """What one evaluation of the ``loss`` objective costs at most, before it runs.

    Attributes:
        space: the space's name.
        params: trainable parameters of the largest brief-training network of the space.
        memory_bytes: ``params`` × :data:`BYTES_PER_PARAM` (weights, gradients, AdamW state;
            activations come on top).
        settings: number of hyperparameter sets Θ (each trains a fresh network).
        examples: training examples per evaluation, Σ steps · batch over Θ.
    """

    space: str
    params: int
    memory_bytes: int
    settings: int
    examples: int

    def warning(self) -> str | None:
        """One line stating the cost when it exceeds :data:`WARN_BYTES`, else None."""
        if self.memory_bytes <= WARN_BYTES:
            return None
        return (f"the 'loss' objective trains {self.settings} fresh network(s) per evaluation, of up to "
                f"{self.params / 1e6:.0f} M parameters in space {self.space!r}: about "
                f"{self.memory_bytes / 1e9:.1f} GB of memory (weights, gradients, AdamW state; activations on top) "
                f"and {self.examples:,} training examples per evaluation: expect minutes per evaluation on a CPU")


def brief_training_cost(supernet: Supernet, settings: Sequence[BriefTraining]) -> BriefTrainingCost | None:
    """The largest cost of one ``loss`` evaluation in ``supernet``'s space, from the supernet's
    :meth:`~hwnas.supernets.base.Supernet.brief_training_params` hook (no network is built):
    the maximum over the all-largest configuration (when valid) and a seeded sample of 32.
    None when the supernet does not say how large its brief-training networks are."""
    space = supernet.space
    candidates = list(space.sample(32, seed=0))
    upper = space.from_genes(space.gene_upper_bounds, validate=False)
    if space.is_valid(upper):
        candidates.append(space.canonical(upper))
    sizes = [supernet.brief_training_params(c) for c in candidates]
    if any(size is None for size in sizes):
        return None
    params = int(max(sizes))
    return BriefTrainingCost(space.name, params, params * BYTES_PER_PARAM, len(settings),
                             sum(s.steps * s.batch for s in settings))
