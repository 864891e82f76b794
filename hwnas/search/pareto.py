"""Pareto dominance, non-dominated sorting, crowding distance and hypervolume.

Everything here works on *minimisation* matrices ``F_min`` (float64 [N, M], smaller is better
in every column). Files and users see natural values (accuracy is maximised); convert with
:func:`to_minimization` — maximised columns are negated, so the reference point of a maximised
objective is negated too.

Conventions:

* ``a`` dominates ``b`` when ``a <= b`` in every objective and ``a < b`` in at least one.
* Equal points do not dominate each other, so duplicates are all non-dominated (a front may
  hold two configurations with identical objective values).
* Rows holding NaN are treated as dominated by everything and dominate nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Rows compared at once in the O(N²·M) dominance tests (bounds memory to ~CHUNK·N·M bytes).
CHUNK = 512

try:  # moocore (C; a dependency of pymoo ≥ 0.6.2) ranks 100 points ~80x faster than numpy here
    import moocore as _moocore
except ImportError:  # pragma: no cover - older pymoo
    _moocore = None


def to_minimization(F: np.ndarray, maximize: Sequence[bool] | np.ndarray) -> np.ndarray:
    """Natural objective values → minimisation form (maximised columns negated).

    Args:
        F: float [N, M] (or [M]) natural values.
        maximize: bool [M], True where the objective is maximised.
    Returns:
        float64 array of F's shape.
    """
    F = np.asarray(F, dtype=np.float64)
    sign = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    if F.shape[-1] != sign.size:
        raise ValueError(f"F has {F.shape[-1]} objectives, maximize has {sign.size}")
    return F * sign


def from_minimization(F_min: np.ndarray, maximize: Sequence[bool] | np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_minimization` (the same sign flip)."""
    return to_minimization(F_min, maximize)


def _clean(F_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    F = np.atleast_2d(np.asarray(F_min, dtype=np.float64))
    bad = np.isnan(F).any(axis=1)
    return np.where(bad[:, None], np.inf, F), bad


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether point ``a`` dominates point ``b`` (both float [M], minimisation)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_mask(F_min: np.ndarray) -> np.ndarray:
    """Which rows no other row dominates.

    Args:
        F_min: float [N, M], minimisation.
    Returns:
        bool [N]; duplicates of a non-dominated point are all True; NaN rows are False.
    """
    F, bad = _clean(F_min)
    n = F.shape[0]
    mask = ~bad
    if n == 0:
        return mask
    if _moocore is not None and F.shape[1] > 1:
        return np.asarray(_moocore.is_nondominated(F, keep_weakly=True), dtype=bool) & mask
    return mask & _non_dominated_numpy(F)


def _non_dominated_numpy(F: np.ndarray) -> np.ndarray:
    n = F.shape[0]
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, CHUNK):
        block = F[start : start + CHUNK]  # candidates being tested, [B, M]
        # dominated[b] = any row j with F[j] <= block[b] everywhere and < somewhere
        le = (F[None, :, :] <= block[:, None, :]).all(axis=2)
        lt = (F[None, :, :] < block[:, None, :]).any(axis=2)
        mask[start : start + CHUNK] &= ~(le & lt).any(axis=1)
    return mask


def non_dominated_sort(F_min: np.ndarray) -> np.ndarray:
    """Pareto rank of every row: 0 for the non-dominated set, 1 for the next front, ...

    Args:
        F_min: float [N, M], minimisation.
    Returns:
        int64 [N]. NaN rows get the rank after the last front of the other rows.
    """
    F, bad = _clean(F_min)
    n = F.shape[0]
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    good = np.flatnonzero(~bad)
    if _moocore is not None and F.shape[1] > 1 and good.size:
        ranks[good] = np.asarray(_moocore.pareto_rank(F[good]), dtype=np.int64)
        ranks[bad] = int(ranks[good].max()) + 1
        return ranks
    return _rank_numpy(F, bad, ranks)


def _rank_numpy(F: np.ndarray, bad: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    good = np.flatnonzero(~bad)
    G = F[good]
    # dom[i, j]: i dominates j  (N ≤ a few thousand here: populations and archives)
    le = (G[:, None, :] <= G[None, :, :]).all(axis=2)
    lt = (G[:, None, :] < G[None, :, :]).any(axis=2)
    dom = le & lt
    count = dom.sum(axis=0)  # how many dominate j
    remaining = np.ones(len(G), dtype=bool)
    rank = 0
    while remaining.any():
        front = remaining & (count == 0)
        ranks[good[front]] = rank
        remaining &= ~front
        count = count - dom[front].sum(axis=0)
        rank += 1
    ranks[bad] = rank
    return ranks


def fronts(F_min: np.ndarray) -> list[np.ndarray]:
    """Row indices of each front, best first (from :func:`non_dominated_sort`)."""
    ranks = non_dominated_sort(F_min)
    return [np.flatnonzero(ranks == r) for r in range(int(ranks.max()) + 1)] if ranks.size else []


def crowding_distance(F_min: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front, float64 [N].

    Boundary points of every objective get ``inf``; fronts of one or two points are all ``inf``.
    Each objective's gaps are normalised by its range over the front.
    """
    F = np.atleast_2d(np.asarray(F_min, dtype=np.float64))
    n, m = F.shape
    if n <= 2:
        return np.full(n, np.inf)
    dist = np.zeros(n)
    order = np.argsort(F, axis=0, kind="stable")  # [N, M]
    sorted_f = np.take_along_axis(F, order, axis=0)
    span = sorted_f[-1] - sorted_f[0]
    span[span == 0] = 1.0
    gaps = (sorted_f[2:] - sorted_f[:-2]) / span  # [N-2, M]
    for j in range(m):
        dist[order[1:-1, j]] += gaps[:, j]
        dist[order[0, j]] = np.inf
        dist[order[-1, j]] = np.inf
    return dist


def hypervolume(F_min: np.ndarray, ref_min: Sequence[float] | np.ndarray) -> float:
    """Hypervolume dominated by the rows of ``F_min`` and bounded by the reference point.

    Uses pymoo's HV indicator. Rows that do not strictly dominate ``ref_min`` in every
    objective add nothing and are dropped first; an empty set has hypervolume 0.

    Args:
        F_min: float [N, M], minimisation.
        ref_min: float [M], the reference point in minimisation form.
    Returns:
        The hypervolume, in the product of the objectives' units.
    """
    from pymoo.indicators.hv import HV

    ref = np.asarray(ref_min, dtype=np.float64).ravel()
    F, _ = _clean(F_min)
    if F.size == 0:
        return 0.0
    if F.shape[1] != ref.size:
        raise ValueError(f"F has {F.shape[1]} objectives, the reference point {ref.size}")
    F = F[(F < ref).all(axis=1)]
    if F.shape[0] == 0:
        return 0.0
    F = F[non_dominated_mask(F)]
    return float(HV(ref_point=ref)(F))


def hypervolume_natural(F: np.ndarray, maximize: Sequence[bool] | np.ndarray,
                        reference: Sequence[float] | np.ndarray) -> float:
    """:func:`hypervolume` of natural values against a reference point in natural units."""
    return hypervolume(to_minimization(np.atleast_2d(F), maximize),
                       to_minimization(np.asarray(reference, dtype=np.float64), maximize))
