"""LINAS: predictor-guided NSGA-II (Cummings et al., arXiv 2202.12934 / 2205.10358).

Nested loops:

1. validate a population for real (the first one drawn like random search's);
2. fit a cheap predictor of every *expensive* objective (accuracy, OSE loss) on everything
   validated so far — ridge / SVR / a small tree ensemble chosen by cross-validation
   (:class:`~hwnas.predictors.surrogate.ObjectivePredictor`) on ``supernet.feature_matrix``;
   latency, params and MACs are not learned, they come from the profiles and analytics
   (``problem.cheap_objectives``);
3. run NSGA-II on predicted + cheap objectives for ``inner_evals`` (20,000, the paper's)
   evaluations, whole populations at a time (:mod:`~hwnas.search.algorithms.vectorized`),
   starting from the best validated configurations — or, when the whole space has no more gene
   combinations than that (``bert-ose``: 360), rank all of it on the predictors instead;
4. the next batch: with ``batch="population"`` (the paper's rule) the final population minus
   what is already validated (the default); with ``batch="hypervolume"`` up to a population of
   the inner search's evaluated configurations chosen greedily by the hypervolume their
   *predicted* values add to the *validated* front
   (:mod:`~hwnas.search.algorithms.batch_selection`). Either is topped up to ``min_batch``
   from the rest of the inner search's evaluations, best ranked first, then at random, so every
   loop validates something new; repeat until the budget is spent.

Only validated results reach the archive and the Pareto front; predicted values are recorded
beside them in evaluations.jsonl (``predicted``). The time of steps 2–3 per loop is recorded in
the run's ``result.loops`` (``fit_s``, ``inner_s``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hwnas.checks import Check, Choice, Float, Int, Probability
from hwnas.errors import InputError
from hwnas.predictors.surrogate import CANDIDATES, ObjectivePredictor
from hwnas.search.algorithms.base import Algorithm, Proposal
from hwnas.search.algorithms.batch_selection import greedy_hypervolume_batch
from hwnas.search.algorithms.vectorized import (
    InnerResult,
    Operators,
    nsga2,
    rank_and_crowding,
    survive,
)
from hwnas.search.problem import Problem

FEATURES = ("supernet", "supernet+genes")
BATCH_RULES = ("population", "hypervolume", "population+hypervolume")
#: With three or more objectives, the hypervolume rule scores only this many of the inner
#: search's configurations (best ranked first): its Monte Carlo contributions cost more.
HV_POOL_MANY_OBJECTIVES = 300


def _predictor_names(name: str, value: Any) -> Any:
    """The ``predictors`` setting: candidate model names ObjectivePredictor knows (else InputError),
    as a list or a comma-separated string (``--setting predictors=ridge,svr``)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{name} must be model names from {', '.join(CANDIDATES)}, got {value!r}")
    ObjectivePredictor(value)
    return list(value)


class LINAS(Algorithm):
    """LINAS (see module doc) as an ask/tell state machine: the first :meth:`ask` proposes the
    random first population; each :meth:`tell` adds the validated rows to the predictors'
    training set, and the next :meth:`ask` runs one outer loop (fit, inner NSGA-II, choose the
    batch, recorded in ``loops``) and proposes its batch with the predicted values."""

    name: ClassVar[str] = "linas"
    defaults: ClassVar[Mapping[str, Any]] = {
        "population": 50,
        "inner_evals": 20_000,
        "min_batch": 10,
        "crossover_prob": 0.9,
        "crossover_eta": 15.0,
        "mutation_prob": 0.02,
        "mutation_eta": 20.0,
        "predictors": list(CANDIDATES),
        "cv_folds": 5,
        "features": "supernet",
        "batch": "population",
    }
    schema: ClassVar[Mapping[str, Check]] = {
        "population": Int(2),
        "inner_evals": Int(1),
        "min_batch": Int(1),
        "cv_folds": Int(2),
        "crossover_prob": Probability(),
        "crossover_eta": Float(0.0),
        "mutation_prob": Probability(),
        "mutation_eta": Float(0.0),
        "features": Choice(FEATURES),
        "batch": Choice(BATCH_RULES),
        "predictors": _predictor_names,
    }

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.loops: list[dict[str, Any]] = []

    def features(self, problem: Problem, genes: np.ndarray) -> np.ndarray:
        """Predictor inputs of valid gene rows, float64 [N, F]."""
        X = problem.supernet.feature_matrix(genes)
        if self.settings["features"] == "supernet+genes":
            X = np.hstack([X, problem.canonical(genes).astype(np.float64)])
        return X

    # -- ask/tell: validate a batch, then (at the next ask) fit, search inside, propose --------
    def setup(self, problem: Problem, budget: int, rng: np.random.Generator) -> None:
        self._problem, self._rng = problem, rng
        self.loops = []
        self._validated_X: list[np.ndarray] = []
        self._validated_F: list[np.ndarray] = []
        self._seen: set[bytes] = set()
        # The first batch is drawn like random search's; later ones come from propose(), run
        # lazily by ask() so that a tell that spends the budget costs no outer loop.
        self._batch: np.ndarray | None = problem.sample(int(self.settings["population"]), rng)
        self._predicted: np.ndarray | None = None

    def ask(self) -> Proposal | None:
        problem = self._problem
        if self._batch is None:
            if not self._validated_X:
                return None
            self._batch, self._predicted, stats = self.propose(
                problem, np.vstack(self._validated_X), np.vstack(self._validated_F), self._seen, self._rng)
            self.loops.append({"loop": len(self.loops), **stats})
        if self._batch.shape[0] == 0:
            return None
        return Proposal(self._batch, self._predicted)

    def tell(self, genes: np.ndarray, F: np.ndarray) -> None:
        genes = np.asarray(genes, dtype=np.int64)
        self._validated_X.append(genes)
        self._validated_F.append(np.asarray(F, dtype=np.float64))
        self._seen.update(self._problem.keys(genes))
        self._batch, self._predicted = None, None

    def propose(self, problem: Problem, VX: np.ndarray, VF: np.ndarray, seen: set[bytes],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """One outer loop after validation: fit the predictors on (VX, VF), run the inner
        NSGA-II, and choose the next batch.

        Args:
            VX: validated canonical genes int [N, G]; VF: their natural values float [N, M].
            seen: keys of the validated configurations.
        Returns:
            next batch (canonical genes [B, G]), its predicted natural values [B, M] (None when
            empty), and the loop's statistics (``fit_s``, ``inner_s``, predictors chosen, ...).
        """
        s = self.settings
        pop_size = int(s["population"])
        operators = Operators(float(s["crossover_prob"]), float(s["crossover_eta"]),
                              float(s["mutation_prob"]), float(s["mutation_eta"]))
        expensive, cheap, n_obj = problem.expensive_index, problem.cheap_index, len(problem.objectives)

        def predict(genes: np.ndarray) -> np.ndarray:
            """Natural values [N, M]: cheap objectives exact, expensive ones predicted; NaN rows
            for configurations that are not valid in the space."""
            out = np.full((genes.shape[0], n_obj), np.nan)
            valid = problem.valid(genes)
            if valid.any():
                g = genes[valid]
                if cheap:
                    out[np.ix_(valid, cheap)] = problem.cheap_objectives(g)
                if predictors:
                    feats = self.features(problem, g)
                    for i, model in predictors.items():
                        out[valid, i] = model.predict(feats)
            return out

        t0 = time.perf_counter()
        predictors: dict[int, ObjectivePredictor] = {}
        if expensive:
            feats = self.features(problem, VX)
            for i in expensive:
                predictors[i] = ObjectivePredictor(s["predictors"], folds=int(s["cv_folds"]),
                                                   seed=len(self.loops)).fit(feats, VF[:, i])
        t1 = time.perf_counter()
        everything = self._enumerate(problem, int(s["inner_evals"]))
        if everything is not None:
            # The whole space costs no more than the inner search would: rank all of it on the
            # predictors instead (the inner problem's exact optimum; no mating on a tiny space).
            F_all, cv_all = problem.to_min(predict(everything)), problem.violation(everything)
            order = survive(F_all, cv_all, everything.shape[0])
            inner = InnerResult(everything[order[:pop_size]], F_all[order[:pop_size]], cv_all[order[:pop_size]],
                                everything, F_all, cv_all, everything.shape[0], 0)
        else:
            best = VX[survive(problem.to_min(VF), np.zeros(VX.shape[0]), pop_size)]
            inner = nsga2(lambda g: problem.to_min(predict(g)), problem.violation, problem.canonical,
                          problem.upper, rng, pop_size=pop_size, n_evals=int(s["inner_evals"]),
                          initial=best, operators=operators)
        t2 = time.perf_counter()
        batch = self._next_batch(problem, inner, seen, rng, pop_size, problem.to_min(VF))
        predicted = predict(batch) if batch.shape[0] else None
        stats = {
            "validated": int(VX.shape[0]),
            "fit_s": round(t1 - t0, 4),
            "inner_s": round(t2 - t1, 4),
            "inner_evals": int(inner.evaluations),
            "inner_generations": int(inner.generations),
            "predictors": {problem.objectives[i].name: {"chosen": m.chosen, "cv_rmse": m.cv_rmse}
                           for i, m in predictors.items()},
            "next_batch": int(batch.shape[0]),
        }
        return batch, predicted, stats

    def _enumerate(self, problem: Problem, limit: int) -> np.ndarray | None:
        """Every valid configuration (canonical genes) when the raw gene combinations number at
        most ``limit``; else None. Cached per space."""
        cache = getattr(self, "_everything", None)
        if cache is not None and cache[0] is problem.space:
            return cache[1]
        upper = problem.upper
        if float(np.prod(upper.astype(np.float64) + 1.0)) > limit:
            return None
        grids = np.indices(tuple(int(u) + 1 for u in upper)).reshape(upper.size, -1).T
        genes = problem.canonical(grids)
        genes = genes[problem.valid(genes)]
        _, first = np.unique(genes, axis=0, return_index=True)
        genes = genes[np.sort(first)]
        self._everything = (problem.space, genes)
        return genes

    def _next_batch(self, problem: Problem, inner: Any, seen: set[bytes], rng: np.random.Generator,
                    pop_size: int, validated_min: np.ndarray) -> np.ndarray:
        """The ``batch`` rule's choice, topped up to ``min_batch`` (see module doc).
        ``validated_min``: validated objectives in minimisation form [N, M]."""
        min_batch = min(int(self.settings["min_batch"]), pop_size)
        chosen: list[np.ndarray] = []
        taken = set(seen)

        def take(rows: np.ndarray, limit: int) -> None:
            for row in rows:
                if len(chosen) >= limit:
                    return
                key = row.tobytes()
                if key not in taken:
                    taken.add(key)
                    chosen.append(row)

        rule = self.settings["batch"]
        if rule in ("population", "population+hypervolume"):
            take(inner.X[inner.cv <= 0], pop_size)
        if rule in ("hypervolume", "population+hypervolume") and len(chosen) < pop_size:
            # The rows already chosen join the validated front as predicted (believer rule).
            picked = {row.tobytes() for row in chosen}
            believed = np.vstack([validated_min,
                                  inner.all_F[[row.tobytes() in picked for row in inner.all_X]]])
            ok = (inner.all_cv <= 0) & np.isfinite(inner.all_F).all(axis=1)
            ok &= np.array([row.tobytes() not in taken for row in inner.all_X], dtype=bool)
            pool_X, pool_F = inner.all_X[ok], inner.all_F[ok]
            if pool_F.shape[1] > 2 and pool_F.shape[0] > HV_POOL_MANY_OBJECTIVES:
                rank, crowd = rank_and_crowding(pool_F, np.zeros(pool_F.shape[0]))
                best = np.lexsort((-crowd, rank))[:HV_POOL_MANY_OBJECTIVES]
                pool_X, pool_F = pool_X[best], pool_F[best]
            take(pool_X[greedy_hypervolume_batch(believed, pool_F, pop_size - len(chosen), rng)], pop_size)
        if len(chosen) < min_batch:
            ok = inner.all_cv <= 0
            rank, crowd = rank_and_crowding(inner.all_F[ok], inner.all_cv[ok])
            take(inner.all_X[ok][np.lexsort((-crowd, rank))], min_batch)
        if len(chosen) < min_batch:
            take(problem.sample(min_batch - len(chosen), rng, exclude=taken), min_batch)
        return np.array(chosen, dtype=np.int64).reshape(len(chosen), problem.n_genes)

    def summary(self) -> dict[str, Any]:
        if not self.loops:
            return {}
        cost = [lp["fit_s"] + lp["inner_s"] for lp in self.loops]
        return {"loops": self.loops, "max_loop_overhead_s": round(max(cost), 4),
                "median_loop_overhead_s": round(float(np.median(cost)), 4)}
