"""OSE — de Wynter's FPTAS for optimal subarchitecture extraction, as a search algorithm.

The algorithm itself (W-coefficient, maximum point, ε-intervals, the (1 - ε) guarantee and its
premise) lives in :mod:`hwnas.search.algorithms.ose_math`; this module runs it against a
:class:`~hwnas.search.problem.Problem`:

1. The *pool*: every feasible configuration of the space when it has at most ``pool`` of them
   (``bert-ose``: all 300), else ``pool`` distinct feasible configurations drawn with the run's
   seeded generator (so a resumed run draws the same pool).
2. Parameter size ``p`` from the ``params`` objective; inference cost ``i`` from the ``cost``
   setting: ``"auto"`` takes the first ``latency`` objective (a profile's prediction, ms) and
   otherwise the paper's op-count surrogate (``"ops"``,
   :meth:`Supernet.op_counts <hwnas.supernets.base.Supernet.op_counts>`, at the ``macs`` objective's shape); ``"macs"`` or a
   latency objective's name pick that objective. All of these are cheap (no budget).
3. The maximum point T of the pool, the ε-intervals over the pool sorted by ``p``, one
   candidate per interval (the largest cheap factor), proposed for validation: each
   validation computes the expensive ``loss`` objective, OSE's ê = the minimum over the
   hyperparameter sets Θ of the brief-training loss (so W is the best over Θ).
4. W of every validated candidate; the selection is the largest W.

With ``refine`` (default on) and budget left after the ε-level, OSE halves ε and validates the
new candidates of the finer intervals, level after level (coarse-to-fine within a level, so a
budget cut mid-level still spreads over the range), until the budget is spent or the intervals
cannot split the pool further. The result at the requested ε and at every level are recorded.

The W table goes to run.json's ``result`` through :meth:`OSE.summary`::

    result.epsilon, intervals, cost {name, unit}, pool {size, enumerated}, max_point {config, p, i,
           virtual}, loss_settings (Θ), evaluations
    result.result        the answer at the requested ε (OSEResult.to_json): selected row and the
                         W table of that level — per candidate: index (in the pool), config,
                         interval, p, i, cheap = c, e = ê (best over Θ), W
    result.levels        per level: epsilon, n_intervals, validated, complete, selected, W
    result.w_table_all   every validated candidate (interval numbers of the finest level run)
    result.selected      the largest W of all validated candidates (= result.result's when no
                         refinement ran)
    result.paper_pick    the supernet's first published reference architecture, if any
                         (``reference_configs()``; on bert-ose: Bort's)

Ask/tell: each :meth:`OSE.ask` proposes the rest of the current level's candidates as one batch;
:meth:`OSE.tell` records the loss of every served candidate (also of a batch cut at the budget,
so the last candidate is in the W table too); the next ask starts the next level when the
current one is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import InputError
from hwnas.search.algorithms import ose_math as ose
from hwnas.checks import Bool, Check, Choice, Float, Int
from hwnas.search.algorithms.base import Algorithm, Proposal
from hwnas.search.problem import Problem


def _spread_order(n: int) -> np.ndarray:
    """0..n-1 ordered coarse-to-fine (by the base-2 radical inverse), int64 [n]."""

    def radical_inverse(k: int) -> float:
        value, scale = 0.0, 0.5
        while k:
            if k & 1:
                value += scale
            k >>= 1
            scale /= 2
        return value

    return np.array(sorted(range(n), key=lambda k: (radical_inverse(k), k)), dtype=np.int64)


class OSE(Algorithm):
    """OSE (de Wynter, arXiv 2010.08512) over a problem with ``params``, an inference cost and
    ``loss`` objectives (see module doc). Settings:

    * ``epsilon`` (0.1): interval width parameter in (0, 1]; at most ``⌈1/ε⌉`` candidates.
    * ``intervals`` ("linear"): boundaries, ``linear`` / ``log`` / ``quantile`` in ``p``.
    * ``cost`` ("auto"): inference cost in W — ``auto``, ``ops``, ``macs`` or a latency name.
    * ``pool`` (20000): largest pool; bigger spaces are sampled.
    * ``refine`` (True): spend budget left after the ε-level on halved ε.
    """

    name: ClassVar[str] = "ose"
    defaults: ClassVar[Mapping[str, Any]] = {
        "epsilon": 0.1,
        "intervals": "linear",
        "cost": "auto",
        "pool": 20000,
        "refine": True,
    }
    schema: ClassVar[Mapping[str, Check]] = {
        "epsilon": Float(0.0, 1.0, lo_open=True),
        "intervals": Choice(tuple(ose.MODES)),
        "pool": Int(1),
        "refine": Bool(),
    }

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._state: dict[str, Any] | None = None
        self._summary: dict[str, Any] = {}

    # -- settings and problem checks -----------------------------------------------------------
    def _checked(self) -> tuple[float, str, int]:
        """(epsilon, intervals mode, pool size) from the settings (checked by ``schema``)."""
        s = self.settings
        return float(s["epsilon"]), str(s["intervals"]), int(s["pool"])

    def _columns(self, problem: Problem) -> tuple[int, int, str]:
        """(params column, loss column, cost name) in problem.objectives; InputError if missing."""
        names = problem.names
        missing = [n for n in ("params", "loss") if n not in names]
        latencies = [n for n in names if n == "latency" or n.startswith("latency:")]
        if missing or not (latencies or "macs" in names):
            raise InputError("--algo ose needs the objectives params, an inference cost (latency or macs) and "
                             f"loss; got {','.join(names)} (e.g. --objectives params,macs,loss)")
        if not problem.objectives[names.index("loss")].expensive:
            raise InputError("ose: objective 'loss' must be the expensive brief-training loss")
        cost = self.settings["cost"]
        if cost == "auto":
            cost = latencies[0] if latencies else "ops"
        elif cost != "ops" and cost not in latencies and not (cost == "macs" and "macs" in names):
            choices = ", ".join(["auto", "ops", *latencies, *(["macs"] if "macs" in names else [])])
            raise InputError(f"ose setting cost must be one of {choices} (an inference cost among the "
                             f"objectives), got {cost!r}")
        return names.index("params"), names.index("loss"), cost

    def _enumerable(self, problem: Problem, pool: int) -> bool:
        valid = problem.space.count_valid()  # None: a large constrained space, not counted
        return valid is not None and valid <= pool

    def _pool(self, problem: Problem, pool: int, rng: np.random.Generator | None) -> tuple[np.ndarray, bool]:
        """(canonical feasible genes int64 [N, G], enumerated?)."""
        space = problem.space
        if self._enumerable(problem, pool):
            rows = [space.to_genes(c) for c in space.enumerate()]
            genes = problem.canonical(np.array(rows, dtype=np.int64).reshape(len(rows), space.n_genes))
            return genes[problem.feasible(genes)], True
        if rng is None:
            return np.zeros((0, space.n_genes), dtype=np.int64), False
        return problem.sample(pool, rng), False

    def _cost_values(self, problem: Problem, genes: np.ndarray, cost: str) -> tuple[np.ndarray, str]:
        """Inference cost of pool rows, float64 [N], and its unit."""
        if cost == "ops":
            shape = dict(problem.supernet.default_shape)
            if "macs" in problem.names:
                shape = dict(problem.objectives[problem.names.index("macs")].meta.get("shape", shape))
            return problem.supernet.op_counts(genes, shape), "operations"
        objective = problem.objectives[problem.names.index(cost)]
        return np.asarray(objective.evaluate(genes), dtype=np.float64), objective.unit

    def check(self, problem: Problem, budget: int) -> None:
        epsilon, mode, pool = self._checked()
        self._columns(problem)
        needed = ose.n_intervals(epsilon)
        if self._enumerable(problem, pool):
            genes, _ = self._pool(problem, pool, None)
            if genes.shape[0] == 0:
                raise InputError(f"ose: no feasible configuration in space {problem.space.name!r}")
            p = problem.objectives[problem.names.index("params")].evaluate(genes)
            needed = int(np.unique(ose.assign_intervals(p, epsilon, mode)).size)
        if budget < needed:
            raise InputError(f"--evals {budget} is smaller than the {needed} ε-interval candidates of ose "
                             f"(epsilon={epsilon}); give at least {needed} or a larger epsilon")

    def min_budget(self) -> int:
        return ose.n_intervals(float(self.settings["epsilon"]))

    # -- the search: a state machine over ε-levels ------------------------------------------
    def setup(self, problem: Problem, budget: int, rng: np.random.Generator) -> None:
        epsilon, mode, pool_size = self._checked()
        p_col, loss_col, cost = self._columns(problem)
        genes, enumerated = self._pool(problem, pool_size, rng)
        if genes.shape[0] == 0:
            raise InputError(f"ose: no feasible configuration in space {problem.space.name!r}")
        p = np.asarray(problem.objectives[p_col].evaluate(genes), dtype=np.float64)
        i, unit = self._cost_values(problem, genes, cost)
        T = ose.max_point(p, i)
        configs = problem.configs(genes)
        errors: dict[int, float] = {}
        levels: list[dict[str, Any]] = []
        self._state = dict(problem=problem, genes=genes, configs=configs, p=p, i=i, T=T, errors=errors,
                           levels=levels, epsilon=epsilon, mode=mode, cost=cost, unit=unit,
                           enumerated=enumerated, loss_col=loss_col)
        self._todo: list[int] = []    # pool rows of the current level still to validate
        self._asked: list[int] = []   # pool rows of the last proposal
        self._done = False
        self._start_level(epsilon)

    def _start_level(self, level_eps: float) -> None:
        """Select one candidate per ε-interval at ``level_eps``; queue the unvalidated ones
        coarse-to-fine, so a budget cut mid-level still spreads over the range."""
        st = self._state
        candidates, intervals = ose.select_candidates(st["p"], st["i"], level_eps, st["mode"], st["T"])
        st["levels"].append({"epsilon": level_eps, "n_intervals": int(candidates.size), "candidates": candidates,
                             "intervals": intervals})
        self._todo = [int(candidates[k]) for k in _spread_order(candidates.size)
                      if int(candidates[k]) not in st["errors"]]

    def _next_level(self) -> bool:
        """Halve ε after a finished level; False when refinement is off or cannot split more."""
        st = self._state
        if not self.settings["refine"] or len(st["errors"]) >= st["genes"].shape[0]:
            return False
        # Stop when no interval holds two different parameter sizes: halving cannot split more.
        level = st["levels"][-1]
        p, intervals = st["p"], level["intervals"]
        if all(np.ptp(p[intervals == k]) == 0 for k in np.unique(intervals)):
            return False
        self._start_level(level["epsilon"] / 2)
        return True

    def ask(self) -> Proposal | None:
        while not self._done and not self._todo:
            self._done = not self._next_level()
        if self._done:
            return None
        # The whole rest of the level in one batch: the driver serves it in order and cuts it
        # at the budget, exactly as one candidate at a time would.
        self._asked = list(self._todo)
        return Proposal(self._state["genes"][self._asked])

    def tell(self, genes: np.ndarray, F: np.ndarray) -> None:
        st = self._state
        F = np.asarray(F, dtype=np.float64)
        for row, values in zip(self._asked, F):
            st["errors"][row] = float(values[st["loss_col"]])
        served = set(self._asked[: len(F)])
        self._todo = [row for row in self._todo if row not in served]
        self._asked = []

    # -- results -------------------------------------------------------------------------------
    def _level_result(self, level: Mapping[str, Any]) -> ose.OSEResult:
        st = self._state
        return ose.build_result(st["configs"], st["p"], st["i"], level["candidates"], level["intervals"],
                                st["errors"], level["epsilon"], st["mode"], st["T"])

    def _update_summary(self) -> None:
        st = self._state
        problem: Problem = st["problem"]
        T: ose.MaxPoint = st["T"]
        levels = st["levels"]
        out: dict[str, Any] = {
            "algorithm": "OSE (de Wynter, arXiv 2010.08512)",
            "epsilon": st["epsilon"],
            "intervals": st["mode"],
            "cost": {"name": st["cost"], "unit": st["unit"]},
            "pool": {"size": int(st["genes"].shape[0]), "enumerated": bool(st["enumerated"])},
            "max_point": {"config": None if T.index is None else st["configs"][T.index],
                          "p": T.p, "i": T.i, "virtual": T.virtual},
            "loss_settings": dict(problem.objectives[st["loss_col"]].meta).get("settings"),
            "evaluations": len(st["errors"]),
        }
        if levels:
            first = self._level_result(levels[0])
            out["result"] = first.to_json()  # the answer at the requested ε: selection + W table
            out["levels"] = []
            for level in levels:
                res = self._level_result(level)
                out["levels"].append({
                    "epsilon": level["epsilon"], "n_intervals": level["n_intervals"],
                    "validated": len(res.rows), "complete": bool(res.complete),
                    "selected": None if res.selected is None else res.selected.config,
                    "W": None if res.selected is None else res.selected.W,
                })
            # Every validated candidate of every level, and the best of them.
            rows = sorted(st["errors"])
            table = ose.build_result(st["configs"], st["p"], st["i"], rows, levels[-1]["intervals"],
                                     st["errors"], levels[-1]["epsilon"], st["mode"], T)
            out["w_table_all"] = [r.to_json() for r in table.rows]
            out["selected"] = None if table.selected is None else table.selected.to_json()
        references = problem.supernet.reference_configs()
        if references:
            out["paper_pick"] = {"config": dict(references[0]["config"]), "source": references[0]["source"]}
        self._summary = out

    def summary(self) -> dict[str, Any]:
        if getattr(self, "_state", None) is None:
            return {}
        self._update_summary()
        return dict(self._summary)
