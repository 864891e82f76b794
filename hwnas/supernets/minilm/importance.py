"""Importance order of attention heads and FFN neurons, so that "the first k" keeps the best k.

Heads are scored as in Michel, Levy & Neubig, "Are Sixteen Heads Really Better than One?"
(NeurIPS 2019): a mask variable ξ multiplies each head's context output; the importance of a head
is Σ over batches of |∂L/∂ξ| at ξ = 1. FFN neurons are scored the same way with a mask on each
neuron's GELU output, as DynaBERT (Hou et al., NeurIPS 2020) does. L is the cross-entropy of a
logistic-regression probe fitted on the full model's mean-pooled embeddings of the same
sentences (the checkpoint has no task head; the probe makes MR polarity the task).

Within each layer heads and neurons are then sorted by decreasing importance (stable) and the
weights permuted accordingly (:func:`apply_order`): rows of Q, K, V and columns of the attention
output by head, rows of the FFN input and columns of the FFN output by neuron. A permutation does
not change what the full model computes, only which heads and neurons "the first k" are.

The order is computed once (deterministic: fixed sentences, fixed batches, the L-BFGS probe of
:func:`~hwnas.supernets.minilm.probe.fit_probe`) and
stored as JSON beside the checkpoint (:data:`ORDER_FILE`), keyed by the SHA-256 of its weights.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import InputError
from hwnas.fileio import atomic_write_text
from hwnas.supernets.minilm.network import EncoderStore, mean_pool
from hwnas.supernets.minilm.probe import fit_probe

SCHEMA = "hwnas-importance/1"
ORDER_FILE = "hwnas-importance.json"
BATCH = 32


def _masked_layer(layer: Any, x: torch.Tensor, mask: torch.Tensor, head_mask: torch.Tensor,
                  ffn_mask: torch.Tensor) -> torch.Tensor:
    """One full-size :class:`~hwnas.supernets.bert.network.EncoderLayer` with a multiplier on each
    head's context [A] and each FFN neuron's activation [I] (the layer's own arithmetic otherwise)."""
    spec = layer.spec
    batch, seq_len = x.shape[0], x.shape[1]

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(batch, seq_len, spec.heads, spec.head_dim).transpose(1, 2)

    q = heads(layer.query(x)) * (1.0 / math.sqrt(spec.head_dim))
    k, v = heads(layer.key(x)), heads(layer.value(x))
    probs = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
    context = (probs @ v) * head_mask[None, :, None, None]
    context = context.transpose(1, 2).reshape(batch, seq_len, spec.inner)
    x = layer.attn_norm(x + layer.attn_out(context))
    y = F.gelu(layer.ffn_in(x)) * ffn_mask
    return layer.ffn_norm(x + layer.ffn_out(y))


def _batches(feeds_of, n: int) -> list[dict[str, torch.Tensor]]:
    return [{k: torch.as_tensor(v) for k, v in feeds_of(np.arange(i, min(i + BATCH, n))).items()}
            for i in range(0, n, BATCH)]


def compute_order(store: EncoderStore, split: Any, rows: np.ndarray) -> dict[str, list[list[int]]]:
    """Head and neuron order (most important first) of every layer, from the sentences ``rows``
    of ``split`` (a :class:`~hwnas.task.Split` with the encoder's three inputs)."""
    config = store.config
    sub = split.subset(np.asarray(rows)) if hasattr(split, "subset") else split
    n = len(rows)
    batches = _batches(lambda r: sub.feeds(r, trim=True), n)
    labels = torch.as_tensor(sub.labels[:n])
    store.eval()
    with torch.inference_mode():
        pooled = torch.cat([mean_pool(store.hidden_states(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                                                          tuple(l.spec for l in store.layers)), b["attention_mask"])
                            for b in batches])
    weight, bias = (torch.as_tensor(t) for t in fit_probe(pooled.numpy(), labels.numpy(), solver="lbfgs"))
    head_mask = torch.ones(config.layers, config.heads, requires_grad=True)
    ffn_mask = torch.ones(config.layers, config.intermediate, requires_grad=True)
    head_score = torch.zeros(config.layers, config.heads)
    ffn_score = torch.zeros(config.layers, config.intermediate)
    start = 0
    for b in batches:
        size = b["input_ids"].shape[0]
        x, mask = store.embeddings(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        for i, layer in enumerate(store.layers):
            x = _masked_layer(layer, x, mask, head_mask[i], ffn_mask[i])
        logits = mean_pool(x, b["attention_mask"]) @ weight.T + bias
        loss = F.cross_entropy(logits, labels[start:start + size])
        grads = torch.autograd.grad(loss, (head_mask, ffn_mask))
        head_score += grads[0].abs()
        ffn_score += grads[1].abs()
        start += size
    order = lambda scores: [np.argsort(-row.numpy(), kind="stable").tolist() for row in scores]  # noqa: E731
    return {"heads": order(head_score), "ffn": order(ffn_score)}


def apply_order(store: EncoderStore, order: dict[str, list[list[int]]]) -> None:
    """Permute ``store``'s weights in place so that each layer's heads and FFN neurons come in ``order``."""
    config = store.config
    d = config.head_dim
    with torch.no_grad():
        for layer, heads, neurons in zip(store.layers, order["heads"], order["ffn"]):
            rows = torch.as_tensor([h * d + j for h in heads for j in range(d)])
            for lin in (layer.query, layer.key, layer.value):
                lin.weight.copy_(lin.weight[rows])
                lin.bias.copy_(lin.bias[rows])
            layer.attn_out.weight.copy_(layer.attn_out.weight[:, rows])
            perm = torch.as_tensor(neurons)
            layer.ffn_in.weight.copy_(layer.ffn_in.weight[perm])
            layer.ffn_in.bias.copy_(layer.ffn_in.bias[perm])
            layer.ffn_out.weight.copy_(layer.ffn_out.weight[:, perm])


def check_order(order: Any, layers: int, heads: int, intermediate: int, where: str) -> dict[str, list[list[int]]]:
    """``order`` if it holds a permutation of every layer's heads and neurons, else InputError."""
    ok = (isinstance(order, dict) and isinstance(order.get("heads"), list) and isinstance(order.get("ffn"), list)
          and len(order["heads"]) == layers and len(order["ffn"]) == layers
          and all(sorted(p) == list(range(heads)) for p in order["heads"])
          and all(sorted(p) == list(range(intermediate)) for p in order["ffn"]))
    if not ok:
        raise InputError(f"{where} does not hold a permutation of {heads} heads and {intermediate} FFN neurons "
                         f"for each of {layers} layers; delete it to recompute")
    return {"heads": order["heads"], "ffn": order["ffn"]}


def cached_order(path: Path, weights_sha256: str, compute, meta: dict[str, Any]) -> dict[str, list[list[int]]]:
    """The order stored in ``path`` for these weights, else ``compute()`` stored there (atomically;
    an unwritable folder only loses the cache).

    Raises:
        InputError: ``path`` exists but is not an order file for these weights.
    """
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(f"{path} is not valid JSON; delete it to recompute the importance order") from None
        if isinstance(data, dict) and data.get("schema") == SCHEMA and data.get("weights_sha256") == weights_sha256:
            return data["order"]
    order = compute()
    document = {"schema": SCHEMA, "weights_sha256": weights_sha256, "method": meta, "order": order}
    try:
        atomic_write_text(path, json.dumps(document) + "\n")
    except OSError:
        pass
    return order


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file (the key of its cached order)."""
    from hwnas.supernets.minilm.fetch import sha256_of

    return sha256_of(Path(path))
