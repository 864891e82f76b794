"""Which points of a Pareto front to export: ``--top K`` spread along it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.errors import InputError


def spread_along_front(values: np.ndarray, maximize: Sequence[bool], k: int) -> list[int]:
    """Pick ``k`` points spread along a front (farthest-point sampling).

    Objectives are oriented to be minimised and scaled to [0, 1] over the front. The first
    picks are the two ends of the front along the first objective (its best and its worst
    point); each further pick is the point farthest (Euclidean, scaled) from every point picked
    so far; ties go to the lower index. Deterministic.

    Args:
        values: float64 [N, M] objective values of the front, natural units.
        maximize: per objective, whether it is maximised.
        k: how many to pick (all when ``k >= N``).
    Returns:
        Sorted row indices into ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if k >= n:
        return list(range(n))
    if k < 1:
        raise InputError(f"--top must be at least 1, got {k}")
    oriented = np.where(np.asarray(maximize, dtype=bool), -values, values)
    lo, hi = oriented.min(axis=0), oriented.max(axis=0)
    scaled = (oriented - lo) / np.where(hi > lo, hi - lo, 1.0)
    picked = [int(np.argmin(scaled[:, 0]))]
    worst = int(np.argmax(scaled[:, 0]))
    if k > 1 and worst != picked[0]:
        picked.append(worst)
    while len(picked) < k:
        dist = np.min(np.linalg.norm(scaled[:, None, :] - scaled[None, picked, :], axis=2), axis=1)
        dist[picked] = -1.0
        picked.append(int(np.argmax(dist)))
    return sorted(picked)


SPREAD_METHOD = ("farthest-point sampling in objective space scaled to [0, 1] over the front, "
                 "starting from both ends of the front along the first objective")
