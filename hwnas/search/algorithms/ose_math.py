"""OSE — de Wynter's approximation algorithm for optimal subarchitecture extraction (pure, no I/O).

Sources: A. de Wynter, "An Approximation Algorithm for Optimal Subarchitecture Extraction",
arXiv 2010.08512 (the algorithm, the W-coefficient, the op-count inference-cost surrogate), and
A. de Wynter & D. J. Perry, "Optimal Subarchitecture Extraction for BERT", arXiv 2010.10499
(its run on BERT: the search space of ``bert-ose`` and the pick ``Bort`` = D=4, A=8, H=1024, I=768).

The problem. Every architecture ``b`` of a space Ξ has three costs: parameter size ``p(b)``,
inference cost ``i(b)`` and error ``e(b)``. The paper scores ``b`` against a *maximum point* T
(the architecture with the largest ``p`` and ``i``) by the W-coefficient::

    W(T, b) = ((p(T) - p(b)) / p(T)) · ((i(T) - i(b)) / i(T)) · (1 / ê(b))

where ``ê(b)`` is the error after only ``s`` training steps (no candidate is trained fully), taken
at the best of the hyperparameter sets Θ tried (``ê = min over Θ``, i.e. ``W = max over Θ``).
Larger W is better: smaller and faster than T, with low early error. ``c(b)`` below denotes the
*cheap factor* ``((p(T) - p(b)) / p(T)) · ((i(T) - i(b)) / i(T))`` (known for every
configuration before anything is trained), so ``W = c / ê``.

The algorithm (as implemented here). Sort Ξ by parameter size and cut the range of ``p`` into
ε-intervals; validate one candidate per non-empty interval (the one with the largest cheap factor
``c`` in it); compute W for each; return the best. The cost is at most ``⌈1/ε⌉`` brief trainings
per hyperparameter set, independent of ``|Ξ|`` (besides the ``O(|Ξ| log |Ξ|)`` for computing ``p``,
``i`` and sorting) — the paper's runtime bound is
``O(|Ξ| + |W*_T|(1 + |Θ||B||Ξ|/(ε s^{3/2})))`` (abstract of arXiv 2010.08512).

What the paper guarantees. The abstract of arXiv 2010.08512 states that, "for a large subset of
instances" (those with its AB^nC property: intermediate layers costlier than input/output
layers, an L-Lipschitz-smooth loss with bounded stochastic gradients, SGD training; with
μ-strong convexity for the FPTAS statement), the algorithm "behaves like an FPTAS with an
approximation error of ρ ≤ |1 - ε|": the returned architecture's W is at least ``(1 - ε)`` times
the optimum. This module makes the premise explicit and checkable: the bound
``W(returned) ≥ (1 - ε) · max_b W(b)`` holds whenever, inside every ε-interval, the brief-training
errors differ by at most a factor ``1 - ε`` (``min ê / max ê ≥ 1 - ε``; see
:func:`interval_flatness`), which is the discrete form of the smoothness the AB^nC property
provides. Proof: let ``b*`` be optimal and ``b_I`` the candidate of its interval ``I``; ``b_I``
maximises ``c`` over ``I``, so ``W(b_I) = c(b_I)/ê(b_I) ≥ c(b*)/ê(b_I) ≥ (1-ε)·c(b*)/ê(b*)``,
and the returned W is ≥ ``W(b_I)``. Without the premise nothing is guaranteed (the tests show a
table where the bound fails), which is why ``tools/bench_ose.py`` measures the flatness of the
full ``bert-ose`` table beside the ratio it reports.

Provenance. The quotes above are from the paper's abstract (arXiv 2010.08512, as listed on arXiv
and deepai.org); the AB^nC conditions from a public summary of the paper (notes on
arXiv 2010.08512 found with this project's code search). The paper's full text was not at hand
when this was written, so the within-interval choice (largest ``c``), the interval boundaries and
the premise-based statement of the bound are this implementation's reading, stated so that they
can be checked, not the paper's theorem verbatim.

Interval boundaries (``mode``):

* ``"linear"`` (default): ``⌈1/ε⌉`` intervals of equal width ``ε·(p_max - p_min)`` over
  ``[p_min, p_max]`` (the last one closed, so the largest configuration belongs to one). Equal
  width in ``p`` is what the proof above needs when the error is Lipschitz in parameter size:
  a width-ε slice of the range bounds how much ``ê`` can change inside it.
* ``"log"``: the same on ``log p`` — the right slicing when error follows a power law in ``p``
  (``ê ∝ p^-α`` changes by a bounded *factor* over a fixed *ratio* of sizes).
* ``"quantile"``: ``⌈1/ε⌉`` intervals holding equally many configurations (ranks by ``p``),
  which spends the evaluations where the configurations are; it carries no guarantee.

Every mode uses at most ``⌈1/ε⌉`` candidates. The paper's text fixes "ε-intervals over the space
sorted by parameter size"; the exact boundaries above are this implementation's reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.errors import InputError

MODES = ("linear", "log", "quantile")
BORT = {"A": 8, "D": 4, "H": 1024, "I": 768}
"""Bort's architecture as published by de Wynter & Perry (arXiv 2010.10499) — the paper's pick."""


# ---------------------------------------------------------------------------------------------
# W-coefficient and maximum point
# ---------------------------------------------------------------------------------------------
def w_coefficient(p_T: float, i_T: float, p: Any, i: Any, e: Any) -> np.ndarray:
    """W(T, b) = ((p_T - p)/p_T) · ((i_T - i)/i_T) · (1/e), vectorised (numpy broadcasting).

    Args:
        p_T, i_T: parameter size and inference cost of the maximum point T (> 0, any units, the
            same units as ``p`` and ``i``).
        p, i: parameter sizes and inference costs of the candidates, shape [N] (or broadcastable).
        e: brief-training errors ``ê`` (> 0); shape [N], or [N, |Θ|] for one column per
            hyperparameter set (then W has that shape too; take ``max(axis=1)`` for the best).
            A non-finite ``e`` (a diverged run) gives W = 0.
    Returns:
        float64 array of W (dimensionless; larger is better).
    Raises:
        InputError: p_T or i_T not positive, or an error ≤ 0.
    """
    if not (np.isfinite(p_T) and p_T > 0 and np.isfinite(i_T) and i_T > 0):
        raise InputError(f"maximum point needs positive p_T and i_T, got p_T={p_T!r}, i_T={i_T!r}")
    p = np.asarray(p, dtype=np.float64)
    i = np.asarray(i, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    if np.any(e[np.isfinite(e)] <= 0):
        raise InputError(f"errors must be positive, got min {float(np.nanmin(e))!r}")
    cheap = ((p_T - p) / p_T) * ((i_T - i) / i_T)
    if e.ndim == cheap.ndim + 1:
        cheap = cheap[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = cheap / e
    return np.where(np.isfinite(e), w, 0.0)


def cheap_factor(p_T: float, i_T: float, p: Any, i: Any) -> np.ndarray:
    """``c = ((p_T - p)/p_T) · ((i_T - i)/i_T)``, float64 [N]: W without the error term."""
    return w_coefficient(p_T, i_T, p, i, 1.0)


@dataclass(frozen=True)
class MaxPoint:
    """The maximum point T of a table.

    Attributes:
        index: row of the table that is T (largest ``p`` and, among those, largest ``i``), or
            None when no single row has both the largest ``p`` and the largest ``i``.
        p, i: T's parameter size and inference cost (the column maxima).
        virtual: True when no row attains both maxima; T is then the component-wise maximum
            ``(max p, max i)``, so that every W is still ≥ 0.
    """

    index: int | None
    p: float
    i: float
    virtual: bool


def max_point(p: Any, i: Any) -> MaxPoint:
    """The maximum point T of parameter sizes ``p`` [N] and inference costs ``i`` [N]."""
    p = np.asarray(p, dtype=np.float64).ravel()
    i = np.asarray(i, dtype=np.float64).ravel()
    if p.size == 0 or p.shape != i.shape:
        raise InputError(f"max_point needs equal non-empty p and i, got {p.shape} and {i.shape}")
    p_max, i_max = float(p.max()), float(i.max())
    rows = np.flatnonzero((p == p_max) & (i == i_max))
    if rows.size:
        return MaxPoint(int(rows[0]), p_max, i_max, False)
    return MaxPoint(None, p_max, i_max, True)


# ---------------------------------------------------------------------------------------------
# ε-intervals and candidate selection
# ---------------------------------------------------------------------------------------------
def n_intervals(epsilon: float) -> int:
    """``⌈1/ε⌉`` (robust to float error: ε = 0.1 gives 10)."""
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon <= 1):
        raise InputError(f"epsilon must be in (0, 1], got {epsilon!r}")
    return max(1, math.ceil(1.0 / epsilon - 1e-9))


def assign_intervals(p: Any, epsilon: float, mode: str = "linear") -> np.ndarray:
    """Interval index (int64 [N], 0 = smallest parameter sizes) of each configuration.

    See the module docstring for the three ``mode`` s. Intervals are contiguous in the order of
    ``p``; equal ``p`` always share an interval except in ``"quantile"`` mode, where ties are
    split by row order (stable).
    """
    if mode not in MODES:
        raise InputError(f"unknown interval mode {mode!r} (known: {', '.join(MODES)})")
    p = np.asarray(p, dtype=np.float64).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise InputError("parameter sizes must be finite and positive")
    k = n_intervals(epsilon)
    if mode == "quantile":
        ranks = np.empty(p.size, dtype=np.int64)
        ranks[np.argsort(p, kind="stable")] = np.arange(p.size)
        size = math.ceil(p.size / k)
        return ranks // size
    x = np.log(p) if mode == "log" else p
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros(p.size, dtype=np.int64)
    # ε-wide slices of the normalised position in [0, 1]; the top edge belongs to the last one.
    position = (x - lo) / (hi - lo)
    return np.minimum(np.floor(position / epsilon + 1e-12).astype(np.int64), k - 1)


def select_candidates(
    p: Any, i: Any, epsilon: float, mode: str = "linear", T: MaxPoint | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One candidate per non-empty ε-interval: the row with the largest cheap factor ``c``.

    Args:
        p, i: parameter sizes and inference costs of the whole table, [N].
        epsilon: interval width parameter in (0, 1].
        mode: interval boundaries (module docstring).
        T: maximum point (default: :func:`max_point` of the table).
    Returns:
        (candidates, intervals): row indices int64 [K] in increasing interval order, and the
        interval index of every row, int64 [N]. Ties in ``c`` go to the smaller row index.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    i = np.asarray(i, dtype=np.float64).ravel()
    T = T or max_point(p, i)
    intervals = assign_intervals(p, epsilon, mode)
    c = cheap_factor(T.p, T.i, p, i)
    # Sort by (interval, -c, row) and keep the first row of each interval.
    order = np.lexsort((np.arange(p.size), -c, intervals))
    first = np.ones(order.size, dtype=bool)
    first[1:] = intervals[order[1:]] != intervals[order[:-1]]
    return order[first].astype(np.int64), intervals


def interval_flatness(p: Any, e: Any, epsilon: float, mode: str = "linear") -> float:
    """Smallest ``min ê / max ê`` over the ε-intervals of a full table (1.0 = perfectly flat).

    The (1 - ε) guarantee of :func:`exhaustive_best` vs. OSE holds when this is ≥ 1 - ε
    (module docstring). ``e`` is [N] (or [N, |Θ|], reduced by the minimum over Θ).
    """
    e = _best_error(e)
    intervals = assign_intervals(p, epsilon, mode)
    worst = 1.0
    for k in np.unique(intervals):
        members = e[intervals == k]
        worst = min(worst, float(members.min() / members.max()))
    return worst


def _best_error(e: Any) -> np.ndarray:
    e = np.asarray(e, dtype=np.float64)
    if e.ndim == 2:
        e = np.where(np.isfinite(e), e, np.inf).min(axis=1)
    return e.ravel()


def exhaustive_best(p: Any, i: Any, e: Any, T: MaxPoint | None = None) -> tuple[int, np.ndarray]:
    """The optimum of W over a full table, for comparison with OSE.

    Args:
        p, i: [N]; e: [N] or [N, |Θ|] (best over Θ is used).
        T: maximum point (default: that of the table).
    Returns:
        (row of the largest W — the smallest row among ties, W of every row float64 [N]).
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    i = np.asarray(i, dtype=np.float64).ravel()
    T = T or max_point(p, i)
    w = w_coefficient(T.p, T.i, p, i, _best_error(e))
    return int(np.argmax(w)), w


# ---------------------------------------------------------------------------------------------
# The whole algorithm on a table
# ---------------------------------------------------------------------------------------------
@dataclass
class OSERow:
    """One validated candidate of the W table.

    Attributes:
        index: row in the table / pool.
        config: the configuration.
        interval: its ε-interval (0 = smallest parameter sizes).
        p: parameter size; i: inference cost (units of the cost used).
        cheap: ``c = ((p_T - p)/p_T)·((i_T - i)/i_T)``.
        e: ``ê``, the best (smallest) brief-training error over Θ.
        e_per_theta: the error of each hyperparameter set, when known.
        W: ``c / ê`` (the best over Θ).
        W_per_theta: ``c / ê_θ`` per hyperparameter set, when known.
    """

    index: int
    config: Any
    interval: int
    p: float
    i: float
    cheap: float
    e: float
    W: float
    e_per_theta: list[float] | None = None
    W_per_theta: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("index", "config", "interval", "p", "i", "cheap", "e", "W")}
        if self.e_per_theta is not None:
            out["e_per_theta"], out["W_per_theta"] = self.e_per_theta, self.W_per_theta
        return out


@dataclass
class OSEResult:
    """What OSE selected, and the W table it selected from.

    Attributes:
        epsilon, mode: the interval settings.
        max_point: T.
        n_configurations: size of the table / pool the intervals were cut from.
        n_intervals: number of non-empty intervals (= candidates wanted).
        rows: the W table, one :class:`OSERow` per validated candidate, in interval order.
        selected: the row of ``rows`` with the largest W (None when nothing was validated).
        complete: False when fewer candidates than intervals were validated (budget ran out).
    """

    epsilon: float
    mode: str
    max_point: MaxPoint
    n_configurations: int
    n_intervals: int
    rows: list[OSERow] = field(default_factory=list)
    selected: OSERow | None = None
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        T = self.max_point
        return {
            "epsilon": self.epsilon,
            "intervals": self.mode,
            "max_point": {"index": T.index, "p": T.p, "i": T.i, "virtual": T.virtual},
            "n_configurations": self.n_configurations,
            "n_intervals": self.n_intervals,
            "n_candidates_validated": len(self.rows),
            "complete": self.complete,
            "selected": None if self.selected is None else self.selected.to_json(),
            "w_table": [r.to_json() for r in self.rows],
        }


def build_result(
    configs: Sequence[Any],
    p: Any,
    i: Any,
    candidates: Sequence[int],
    intervals: np.ndarray,
    errors: Mapping[int, Any],
    epsilon: float,
    mode: str,
    T: MaxPoint | None = None,
) -> OSEResult:
    """Assemble the W table from the errors of the validated candidates.

    Args:
        configs: the table's configurations, [N].
        p, i: [N]; candidates: rows chosen by :func:`select_candidates`.
        intervals: interval index of every row, [N].
        errors: row → ``ê`` (a float) or the per-Θ errors (a sequence); rows missing from it
            were not validated (budget ran out) and are left out of the table.
        T: maximum point (default: that of the table).
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    i = np.asarray(i, dtype=np.float64).ravel()
    T = T or max_point(p, i)
    result = OSEResult(epsilon, mode, T, len(p), len(candidates))
    for row in candidates:
        row = int(row)
        if row not in errors:
            result.complete = False
            continue
        raw = np.atleast_1d(np.asarray(errors[row], dtype=np.float64))
        w_theta = w_coefficient(T.p, T.i, p[row], i[row], raw)
        best_e = float(_best_error(raw[None, :])[0])
        per_theta = raw.size > 1
        result.rows.append(
            OSERow(
                index=row, config=configs[row], interval=int(intervals[row]), p=float(p[row]),
                i=float(i[row]), cheap=float(cheap_factor(T.p, T.i, p[row], i[row])), e=best_e,
                W=float(w_theta.max()),
                e_per_theta=[float(x) for x in raw] if per_theta else None,
                W_per_theta=[float(x) for x in w_theta] if per_theta else None,
            )
        )
    if result.rows:
        result.selected = max(result.rows, key=lambda r: (r.W, -r.index))
    return result


def run_ose(
    configs: Sequence[Any],
    p: Any,
    i: Any,
    error_fn: Callable[[np.ndarray], Any],
    epsilon: float,
    mode: str = "linear",
) -> OSEResult:
    """OSE on a table whose errors come from a callback (a pure driver for tests and tools).

    Args:
        configs: [N] configurations; p, i: [N] parameter sizes and inference costs.
        error_fn: rows int64 [K] → errors [K] or [K, |Θ|] (the brief trainings).
        epsilon, mode: interval settings.
    Returns:
        The :class:`OSEResult`; ``error_fn`` is called once, with the K candidates.
    """
    T = max_point(p, i)
    candidates, intervals = select_candidates(p, i, epsilon, mode, T)
    errors = np.asarray(error_fn(candidates), dtype=np.float64)
    if errors.shape[0] != candidates.size:
        raise InputError(f"error_fn returned {errors.shape[0]} errors for {candidates.size} candidates")
    table = {int(r): errors[k] for k, r in enumerate(candidates)}
    return build_result(configs, p, i, candidates, intervals, table, epsilon, mode, T)
