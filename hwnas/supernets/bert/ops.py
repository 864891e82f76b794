"""OSE's inference-cost surrogate for the elastic BERT supernet: operations per inference.

de Wynter (arXiv 2010.08512) measures inference cost hardware-independently as the number of
additions, multiplications and other operations of every layer; :func:`bert_op_count` counts
them for :mod:`hwnas.supernets.bert.network`, :func:`bert_op_count_genes` for gene matrices
(what :meth:`ElasticBert.op_counts` returns to OSE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import InputError


# ---------------------------------------------------------------------------------------------
# The paper's inference-cost surrogate for BERT-style layers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpCount:
    """Arithmetic operations of one inference: additions (incl. subtractions), multiplications,
    and other operations (divisions, comparisons, exp/erf/tanh/rsqrt)."""

    add: int
    mul: int
    other: int

    @property
    def total(self) -> int:
        return self.add + self.mul + self.other

    def __add__(self, other: OpCount) -> OpCount:
        return OpCount(self.add + other.add, self.mul + other.mul, self.other + other.other)


def _layer_ops(h: Any, a: Any, d: Any, f: Any, s: int) -> tuple[Any, Any, Any]:
    """(add, mul, other) of one post-LN encoder layer, elementwise over numpy arrays or ints.

    h hidden, a heads, d head size (n = a·d attention width), f FFN width, s sequence length.
    A linear map with k inputs and m outputs over s tokens costs s·m·k multiplications and
    s·m·k additions (k - 1 in each dot product plus the bias).
    """
    n = a * d
    add = (
        3 * s * n * h  # Q, K, V projections
        + a * s * s * (d - 1)  # scores Q·Kᵀ
        + a * s * s  # additive mask
        + a * s * (2 * s - 1)  # softmax: subtract the row max (s), sum the exps (s - 1)
        + a * s * d * (s - 1)  # context P·V
        + s * h * n  # output projection
        + s * f * h + s * h * f  # FFN in and out
        + s * f  # GELU: 1 + erf
        + 2 * s * h  # two residual additions
        + 2 * s * (4 * h - 1)  # two LayerNorms
    )
    mul = (
        3 * s * n * h
        + s * n  # scaling q by 1/sqrt(d)
        + a * s * s * d  # scores
        + a * s * s * d  # context
        + s * h * n
        + s * f * h + s * h * f
        + 3 * s * f  # GELU: x/√2, ·0.5, ·x
        + 2 * s * 3 * h  # LayerNorms: square, scale by 1/σ, gamma
    )
    other = (
        a * s * (3 * s - 1)  # softmax: s - 1 comparisons (max), s exps, s divisions
        + s * f  # GELU: erf
        + 2 * s * 3  # LayerNorms: two divisions (means) and one rsqrt per token
    )
    return add, mul, other


def _embed_head_ops(h: Any, s: int, num_labels: int) -> tuple[Any, Any, Any]:
    """(add, mul, other) of the embeddings (sum of three look-ups, LayerNorm; look-ups count 0)
    and the head (tanh pooler on [CLS], classifier)."""
    add = 2 * s * h + s * (4 * h - 1) + h * h + h * num_labels
    mul = s * 3 * h + h * h + h * num_labels
    other = s * 3 + h  # LayerNorm divisions/rsqrt, pooler tanh
    return add, mul, other


def bert_op_count(arch: Any, seq_len: int, batch: int = 1) -> OpCount:
    """The paper's inference-cost surrogate for a BERT-style network: additions +
    multiplications + other operations of every layer for one forward pass.

    de Wynter (arXiv 2010.08512) measures inference cost hardware-independently as, per layer,
    the number of additions, multiplications and other operations, summed over the layers; this
    function counts them for the architecture of :mod:`hwnas.supernets.bert` (post-LN encoder,
    exact softmax and erf-GELU, as in the modules there).

    Per encoder layer (hidden h, heads a of size d, n = a·d, FFN width f, sequence length s)::

        add   = 3snh + as²(d-1) + as² + as(2s-1) + asd(s-1) + shn + 2sfh + sf + 2sh + 2s(4h-1)
        mul   = 3snh + sn + 2as²d + shn + 2sfh + 3sf + 6sh
        other = as(3s-1) + sf + 6s

    plus embeddings (``add = 2sh + s(4h-1)``, ``mul = 3sh``, ``other = 3s``; look-ups count 0)
    and head (``h² + hC`` adds and mults, ``h`` tanh; C labels). The total is ≈ 2·MACs plus the
    softmax, GELU and LayerNorm terms; everything scales with ``batch``.

    Args:
        arch: a :class:`~hwnas.supernets.bert.network.BertArch` (``hidden``, ``layers`` of ``LayerSpec``
            with ``heads``, ``head_dim``, ``ffn``; ``num_labels``).
        seq_len: tokens per sequence (≥ 1).
        batch: sequences per inference (≥ 1).
    """
    if seq_len < 1 or batch < 1:
        raise InputError(f"seq_len and batch must be ≥ 1, got {seq_len!r}, {batch!r}")
    h = int(arch.hidden)
    total = OpCount(*(int(x) for x in _embed_head_ops(h, seq_len, int(arch.num_labels))))
    for spec in arch.layers:
        total = total + OpCount(*(int(x) for x in _layer_ops(h, spec.heads, spec.head_dim, spec.ffn, seq_len)))
    return OpCount(total.add * batch, total.mul * batch, total.other * batch)


def bert_op_count_genes(supernet: Any, genes: np.ndarray, seq_len: int, batch: int = 1) -> np.ndarray:
    """Total operations (:func:`bert_op_count`) of many gene vectors, int64 [N], vectorised.

    Args:
        supernet: an :class:`ElasticBert` (uses ``layer_choices`` and its space's head-size rule).
        genes: int [N, n_genes].
    """
    hidden, heads, ffn, active = supernet.layer_choices(genes)
    hidden = hidden.astype(np.int64)
    heads, ffn = heads.astype(np.int64), ffn.astype(np.int64)
    head_dim = supernet.settings.head_dim
    d = np.full_like(heads, head_dim) if head_dim else hidden[:, None] // heads
    add, mul, other = _layer_ops(hidden[:, None], heads, d, ffn, seq_len)
    per_layer = (add + mul + other) * active
    e_add, e_mul, e_other = _embed_head_ops(hidden, seq_len, supernet.settings.num_labels)
    return (per_layer.sum(axis=1) + e_add + e_mul + e_other).astype(np.int64) * batch
