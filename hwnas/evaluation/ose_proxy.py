"""OSE's error estimate ê for spaces without trained weights: the loss after brief training.

OSE (de Wynter, 2020) scores a candidate architecture by its error after a few training steps
from a fixed initialisation, looping over a small set Θ of hyperparameter settings and keeping the
best. :func:`brief_training_loss` computes one such error for one setting
(:class:`BriefTraining`): the sub-network of ``config`` is built at its own sizes with BERT's
initialisation seeded by ``setting.seed``, trained for ``setting.steps`` AdamW steps (constant
learning rate, weight decay 0.01, batches of ``setting.batch`` examples from the training split of
the built-in task, drawn by the seed), and the result is the mean cross-entropy (nats) on a fixed
validation batch (the first :data:`VALIDATION_EXAMPLES` examples of the validation split).

The word and position embeddings are cut to the task's vocabulary (158 tokens) and sequence
length (32): rows that are never looked up get no gradient and never reach the output, so a model
with BERT-base's 30,522-token vocabulary would give the same loss from the same used rows, while
AdamW would spend most of its time updating 23 M unused embedding weights. Batches are cut to
their longest sentence (padding is masked, so the loss does not change).

Deterministic given the setting and the number of torch threads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import InputError
from hwnas.evaluation.accuracy import default_task
from hwnas.evaluation.training import trimmed
from hwnas.space import Config
from hwnas.supernets.base import Supernet
from hwnas.supernets.bert import BertNetwork, ElasticBert, init_bert_weights

__all__ = ["VALIDATION_EXAMPLES", "BriefTraining", "brief_training_loss"]

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
        for name, lo in (("steps", 0), ("batch", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise InputError(f"brief training {name} must be an integer >= {lo}, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise InputError(f"brief training lr must be in (0, 1), got {self.lr!r}")


def _batches(n: int, steps: int, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    order, cursor, out = rng.permutation(n), 0, []
    for _ in range(steps):
        if cursor + batch > n:
            order, cursor = rng.permutation(n), 0
        out.append(order[cursor : cursor + batch])
        cursor += batch
    return out


def brief_training_loss(supernet: Supernet, config: Config, setting: BriefTraining = BriefTraining()) -> float:
    """OSE's error ê of ``config`` under one hyperparameter setting (see module doc).

    Args:
        supernet: a built-in BERT supernet (any ``bert-*`` space; its weights are not used).
        config: a configuration of the supernet's space (validated).
        setting: steps, batch, learning rate and seed.
    Returns:
        mean cross-entropy in nats on the fixed validation batch, after training.
    Raises:
        InputError: a supernet that is not a built-in BERT one, an invalid configuration.
    """
    if not isinstance(supernet, ElasticBert):
        name = getattr(getattr(supernet, "space", None), "name", type(supernet).__name__)
        raise InputError(f"OSE's brief-training loss needs a built-in bert-* space, not {name!r}")
    if not isinstance(setting, BriefTraining):
        raise InputError(f"setting must be a BriefTraining, got {type(setting).__name__}")
    task = default_task()
    arch = replace(supernet.arch(config), vocab_size=task.vocab_size, max_positions=task.seq_len)
    with torch.device("meta"):  # skip torch's default initialisation: ours replaces it
        net = BertNetwork(arch)
    net.to_empty(device="cpu")
    init_bert_weights(net, seed=setting.seed)
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=setting.lr, weight_decay=WEIGHT_DECAY)
    train = task.train
    for rows in _batches(len(train), setting.steps, setting.batch, setting.seed):
        optimizer.zero_grad(set_to_none=True)
        logits = net(*trimmed(train.input_ids[rows], train.attention_mask[rows]))
        F.cross_entropy(logits, torch.as_tensor(train.labels[rows])).backward()
        optimizer.step()
    net.eval()
    val = task.validation
    rows = np.arange(min(VALIDATION_EXAMPLES, len(val)))
    # Sorted by length in two halves, each cut to its longest sentence.
    rows = rows[np.argsort(val.attention_mask[rows].sum(axis=1), kind="stable")]
    total = 0.0
    with torch.inference_mode():
        for part in np.array_split(rows, 2):
            logits = net(*trimmed(val.input_ids[part], val.attention_mask[part]))
            total += float(F.cross_entropy(logits, torch.as_tensor(val.labels[part]), reduction="sum"))
    return total / len(rows)
