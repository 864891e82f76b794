"""Vectorised helpers over gene matrices (int [N, n_genes]) of a :class:`~hwnas.space.SearchSpace`.

Gene vectors that differ only in the genes of inactive layers (layers at or past the depth of
their depth group) describe the same configuration. :func:`canonical_genes` zeroes those genes — the same form
:meth:`SearchSpace.to_genes` produces — so equal configurations get equal rows and equal
:func:`row_keys`, which is how the searches recognise a configuration they have seen.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwnas.space import Config, SearchSpace


class _Layout:
    """Where a space's genes are: upper bounds and, per depth gene, the gene columns it gates."""

    def __init__(self, space: SearchSpace):
        self.upper = space.gene_upper_bounds
        self.gates = space.gene_gates()


_LAYOUTS: dict[int, tuple[SearchSpace, _Layout]] = {}


def _layout(space: SearchSpace) -> _Layout:
    hit = _LAYOUTS.get(id(space))
    if hit is None or hit[0] is not space:
        hit = (space, _Layout(space))
        _LAYOUTS[id(space)] = hit
    return hit[1]


def canonical_genes(space: SearchSpace, genes: np.ndarray) -> np.ndarray:
    """Gene matrix with inactive-layer genes set to 0, int64 [N, n_genes] (a copy).

    Genes are clipped to their valid range first (searches round floats to the nearest choice).
    A gene is inactive when its offset in its depth group's segment is at least the group's
    depth (the depth gene's value); see :class:`~hwnas.space.DepthGroup`.
    """
    layout = _layout(space)
    g = np.atleast_2d(np.asarray(genes)).astype(np.int64)
    if g.shape[1] != layout.upper.size:
        raise ValueError(f"expected {layout.upper.size} genes for space {space.name!r}, got {g.shape[1]}")
    g = np.clip(g, 0, layout.upper)
    for gate in layout.gates:
        if not gate.cols.size:
            continue
        depth = gate.depth_values[g[:, gate.depth_col]]  # [N]
        inactive = gate.offsets[None, :] >= depth[:, None]  # [N, K]
        block = g[:, gate.cols]
        block[inactive] = 0
        g[:, gate.cols] = block
    return g


def row_keys(genes: np.ndarray) -> list[bytes]:
    """One hashable key per row of an (already canonical) int64 gene matrix."""
    g = np.ascontiguousarray(np.atleast_2d(genes), dtype=np.int64)
    return [row.tobytes() for row in g]


def configs_of(space: SearchSpace, genes: np.ndarray) -> list[Config]:
    """Canonical configurations of (valid) gene rows."""
    return [space.from_genes(row) for row in canonical_genes(space, genes)]


class RowCache:
    """Per-configuration values computed once and looked up by canonical gene row.

    Args:
        space: the space the genes belong to.
        compute: configuration → float (e.g. parameter count); called once per distinct row.
    """

    def __init__(self, space: SearchSpace, compute: Callable[[Config], float]):
        self.space = space
        self.compute = compute
        self.values: dict[bytes, float] = {}

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        g = canonical_genes(self.space, genes)
        if g.shape[0] == 0:
            return np.zeros(0)
        unique, inverse = np.unique(g, axis=0, return_inverse=True)
        out = np.empty(unique.shape[0])
        for i, row in enumerate(unique):
            key = row.tobytes()
            value = self.values.get(key)
            if value is None:
                value = float(self.compute(self.space.from_genes(row, validate=False)))
                self.values[key] = value
            out[i] = value
        return out[np.asarray(inverse).ravel()]


class ValidityCache:
    """Whether gene rows are valid configurations of the space (range and the space's
    constraints), bool [N]; spaces without constraints need no per-row work."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.upper = space.gene_upper_bounds
        self.values: dict[bytes, bool] = {}

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        raw = np.atleast_2d(np.asarray(genes)).astype(np.int64)
        in_range = ((raw >= 0) & (raw <= self.upper)).all(axis=1)
        if not self.space.constraints or raw.shape[0] == 0:
            return in_range
        g = canonical_genes(self.space, raw)
        out = in_range.copy()
        for i in np.flatnonzero(in_range):
            key = g[i].tobytes()
            value = self.values.get(key)
            if value is None:
                value = self.space.is_valid(self.space.from_genes(g[i], validate=False))
                self.values[key] = value
            out[i] = value
        return out
