"""Search objectives and constraints.

Objective names (``--objectives``):

* ``accuracy`` — validation accuracy in [0, 1], maximised, *expensive*: it comes from the
  supernet's :class:`~hwnas.evaluation.accuracy.Evaluator` (``get_evaluator(supernet)`` unless
  one is passed in).
* ``latency`` — predicted end-to-end latency in ms, minimised, from a profile's
  :class:`~hwnas.predictors.latency.LatencyPredictor` (vectorised over gene matrices). One
  objective per ``--profile``: named ``latency`` with one profile and ``latency:<label>`` with
  several, the label being the profile's device id (or its file stem when two profiles share a
  device id). ``latency`` in the list means "one per profile"; ``latency:<label>`` picks one.
* ``params`` — parameters of the extracted sub-network, minimised (analytic, cached per config).
* ``macs`` — multiply-accumulates of one inference at the supernet's default shape (or the
  profiles' shape when all profiles agree), minimised (analytic, cached per config).
* ``fidelity`` — how faithfully a sub-network reproduces the full network (e.g. mean cosine of
  sentence embeddings, at most 1), maximised, *expensive*: the supernet's
  :meth:`~hwnas.supernets.base.Supernet.fidelity` hook (cached per configuration).
* ``loss`` — OSE's brief-training error ê in nats, minimised, *expensive*: the minimum over the
  hyperparameter sets Θ of :func:`hwnas.evaluation.ose_proxy.brief_training_loss`.

Constraints (``--constraint``) are ``NAME<=NUMBER`` or ``NAME>=NUMBER`` over a cheap
objective (latency, params, macs; e.g. ``latency<=5``, ``params<=2e6``,
``latency:cpu-1234<=3``); they need not be among the objectives. Expensive objectives cannot
be constrained (a constraint must be known before anything is validated).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.predictors.profiles import ProfileRef, load_profiles
from hwnas.search.genes import RowCache, configs_of
from hwnas.supernets.base import Supernet

OBJECTIVE_NAMES = ("accuracy", "latency", "params", "macs", "loss", "fidelity")
#: The objectives a search must validate (they are never constrained).
EXPENSIVE = ("accuracy", "loss", "fidelity")

#: OSE's hyperparameter sets Θ for the ``loss`` objective when none are given: the contract's
#: default setting and the same at twice the learning rate.
DEFAULT_LOSS_SETTINGS: tuple[dict[str, Any], ...] = (
    {"steps": 20, "batch": 32, "lr": 5e-4, "seed": 0},
    {"steps": 20, "batch": 32, "lr": 1e-3, "seed": 0},
)


@dataclass(frozen=True)
class Objective:
    """One objective of a search.

    Attributes:
        name: e.g. ``"accuracy"``, ``"latency:cpu-3f2a…"``.
        maximize: True when larger is better (only inside pareto/hypervolume code are values
            negated; everything else holds natural values).
        expensive: True when evaluating it is what the budget counts (accuracy, loss).
        unit: unit of the natural values (``"fraction"``, ``"ms"``, ``"count"``, ``"nats"``).
        evaluate: genes int [N, n_genes] (valid configurations) → float64 [N] natural values.
        worst: a value no configuration is worse than, known a priori (accuracy 0), used for
            the reference point; None when it must be estimated from the space.
        meta: extra facts recorded in run.json (e.g. the profile of a latency objective);
            ``cost_warning``: a line the search prints before its first evaluation (an
            objective that is costly to evaluate, e.g. ``loss`` on a BERT-base-sized space).
    """

    name: str
    maximize: bool
    expensive: bool
    unit: str
    evaluate: Callable[[np.ndarray], np.ndarray]
    worst: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The run.json form: name, sense and unit."""
        return {"name": self.name, "maximize": self.maximize, "unit": self.unit}


def _loss_settings(settings: Sequence[Any] | None) -> list[Any]:
    from hwnas.evaluation.ose_proxy import BriefTraining

    out = []
    for item in settings if settings is not None else DEFAULT_LOSS_SETTINGS:
        if isinstance(item, BriefTraining):
            out.append(item)
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - {"steps", "batch", "lr", "seed"})
            if unknown:
                raise InputError(f"unknown brief-training setting {unknown[0]!r} (known: steps, batch, lr, seed)")
            out.append(BriefTraining(**item))
        else:
            raise InputError(f"brief-training setting must be a mapping, got {item!r}")
    if not out:
        raise InputError("the loss objective needs at least one brief-training setting")
    return out


def loss_settings_json(settings: Sequence[Any] | None) -> list[dict[str, Any]]:
    """The Θ list as JSON-ready dicts (recorded in run.json)."""
    if settings is None:
        return [dict(s) for s in DEFAULT_LOSS_SETTINGS]
    return [dict(s) if isinstance(s, Mapping) else
            {"steps": s.steps, "batch": s.batch, "lr": s.lr, "seed": s.seed} for s in settings]


class ObjectiveFactory:
    """Builds objectives and constraints for one supernet, profiles and evaluator.

    Args:
        supernet: the supernet searched.
        profiles: profile files (one latency objective each).
        evaluator: accuracy evaluator; None: ``get_evaluator(supernet)`` when accuracy is asked.
        loss_settings: OSE's hyperparameter sets Θ (BriefTraining or mappings); None: defaults.
    """

    def __init__(self, supernet: Supernet, profiles: Sequence[str | Path] = (), evaluator: Any = None,
                 loss_settings: Sequence[Any] | None = None):
        self.supernet = supernet
        self.space = supernet.space
        self.profiles = load_profiles(profiles, supernet)
        self.evaluator = evaluator
        self.loss_settings = loss_settings
        self.used_profiles: set[str] = set()
        self._cache: dict[str, Objective] = {}
        shapes = {tuple(sorted(p.predictor.shape.items())) for p in self.profiles}
        self.macs_shape = dict(next(iter(shapes))) if len(shapes) == 1 else dict(supernet.default_shape)

    # -- objectives ----------------------------------------------------------------------------
    def expand(self, names: Sequence[str] | str) -> list[str]:
        """Objective names with ``latency`` expanded to one per profile (validated)."""
        if isinstance(names, str):
            names = [n for n in names.split(",")]
        names = [n.strip() for n in names]
        if not names or any(not n for n in names):
            raise InputError(f"--objectives must be a comma-separated list from {', '.join(OBJECTIVE_NAMES)}; "
                             f"got {','.join(names)!r}")
        out: list[str] = []
        for name in names:
            base, _, label = name.partition(":")
            if base not in OBJECTIVE_NAMES:
                raise InputError(f"unknown objective {name!r} (known: {', '.join(OBJECTIVE_NAMES)})")
            if base == "latency" and not label:
                if not self.profiles:
                    raise InputError("objective 'latency' needs a device profile: add --profile FILE "
                                     "(make one with `hwnas profile`)")
                out.extend(self._latency_name(p) for p in self.profiles)
            elif label and base != "latency":
                raise InputError(f"objective {name!r}: only latency takes a ':<label>'")
            else:
                out.append(name)
        if len(set(out)) != len(out):
            dup = next(x for x in out if out.count(x) > 1)
            raise InputError(f"objective {dup!r} is listed twice")
        return out

    def build(self, names: Sequence[str] | str) -> list[Objective]:
        """The objectives named (see :meth:`expand`), in order."""
        return [self.objective(n) for n in self.expand(names)]

    def _latency_name(self, ref: ProfileRef) -> str:
        return "latency" if len(self.profiles) == 1 else f"latency:{ref.label}"

    def objective(self, name: str) -> Objective:
        """One objective by its full name (``latency:<label>`` for a given profile)."""
        if name not in self._cache:
            self._cache[name] = self._make(name)
        return self._cache[name]

    def _make(self, name: str) -> Objective:
        base, _, label = name.partition(":")
        space, supernet = self.space, self.supernet
        if base == "latency":
            ref = self._profile(label, name)
            self.used_profiles.add(ref.path)
            predictor = ref.predictor
            return Objective(self._latency_name(ref), False, False, "ms",
                             lambda genes: np.asarray(predictor.predict(np.atleast_2d(genes)), dtype=np.float64),
                             meta={"profile": ref.describe()})
        if base == "params":
            return Objective("params", False, False, "count", RowCache(space, supernet.count_params))
        if base == "macs":
            shape = supernet.resolve_shape(self.macs_shape)
            return Objective("macs", False, False, "count",
                             RowCache(space, lambda c: supernet.count_macs(c, shape)), meta={"shape": shape})
        if base == "accuracy":
            evaluator = self.evaluator
            if evaluator is None:
                from hwnas.evaluation.accuracy import get_evaluator

                evaluator = self.evaluator = get_evaluator(supernet)
                supernet.task()  # the data it is scored on: missing data is refused before any work

            def accuracy(genes: np.ndarray) -> np.ndarray:
                return np.asarray(evaluator.evaluate(configs_of(space, genes)), dtype=np.float64).reshape(-1)

            return Objective("accuracy", True, True, "fraction", accuracy, worst=0.0,
                             meta={"evaluator": str(getattr(evaluator, "description", type(evaluator).__name__))})
        if base == "fidelity":
            if type(supernet).fidelity is Supernet.fidelity:
                supernet.fidelity([])  # raises the hook's InputError naming the space
            supernet.task()  # missing data is refused before any work
            cache = RowCache(space, lambda c: float(np.asarray(supernet.fidelity([c]), dtype=np.float64)[0]))
            return Objective("fidelity", True, True, "cosine", cache, worst=-1.0,
                             meta={"hook": f"{type(supernet).__name__}.fidelity"})
        if base == "loss":
            from hwnas.evaluation.ose_proxy import brief_training_cost, brief_training_loss

            settings = _loss_settings(self.loss_settings)
            task = supernet.task()
            if task is None:
                raise InputError(f"objective 'loss' needs a supernet with a task to train on; space {space.name!r} has none")

            def loss(genes: np.ndarray) -> np.ndarray:
                return np.array([min(brief_training_loss(supernet, c, s) for s in settings)
                                 for c in configs_of(space, genes)], dtype=np.float64)

            # Chance-level cross-entropy is ln(C); twice that bounds any sensible brief training.
            cost = brief_training_cost(supernet, settings)
            return Objective("loss", False, True, "nats", loss, worst=2.0 * math.log(max(int(task.num_classes), 2)),
                             meta={"settings": loss_settings_json(self.loss_settings),
                                   "cost_warning": cost.warning() if cost is not None else None})
        raise InputError(f"unknown objective {name!r} (known: {', '.join(OBJECTIVE_NAMES)})")

    def _profile(self, label: str, name: str) -> ProfileRef:
        if not self.profiles:
            raise InputError(f"{name!r} needs a device profile: add --profile FILE (make one with `hwnas profile`)")
        if not label:
            if len(self.profiles) > 1:
                labels = ", ".join(f"latency:{p.label}" for p in self.profiles)
                raise InputError(f"{name!r} is ambiguous with {len(self.profiles)} profiles; use one of {labels}")
            return self.profiles[0]
        for ref in self.profiles:
            if ref.label == label:
                return ref
        labels = ", ".join(p.label for p in self.profiles)
        raise InputError(f"no profile labelled {label!r} for {name!r} (labels: {labels})")

    # -- constraints ---------------------------------------------------------------------------
    def constraint(self, expr: str) -> Constraint:
        """Parse ``NAME<=NUMBER`` / ``NAME>=NUMBER`` over a cheap objective."""
        match = _CONSTRAINT_RE.match(expr or "")
        if not match:
            raise InputError(f"constraint {expr!r} must look like 'latency<=5' or 'params<=2e6' "
                             "(an objective, <= or >=, a number)")
        name, op, number = match.group("name"), match.group("op"), match.group("value")
        base = name.partition(":")[0]
        if base not in OBJECTIVE_NAMES:
            raise InputError(f"constraint {expr!r}: unknown objective {name!r} (known: {', '.join(OBJECTIVE_NAMES)})")
        if base in EXPENSIVE:
            raise InputError(f"constraint {expr!r}: {base} is expensive and cannot be constrained; "
                             "constrain latency, params or macs")
        try:
            bound = float(number)
        except ValueError:
            raise InputError(f"constraint {expr!r}: {number!r} is not a number") from None
        if not math.isfinite(bound):
            raise InputError(f"constraint {expr!r}: bound must be finite")
        return Constraint(expr.replace(" ", ""), self.objective(name), op, bound)

    def unused_profiles(self) -> list[str]:
        """Profiles no objective or constraint built so far uses."""
        return [p.path for p in self.profiles if p.path not in self.used_profiles]


_CONSTRAINT_RE = re.compile(r"^\s*(?P<name>[A-Za-z]+(?::[^<>=\s]+)?)\s*(?P<op><=|>=)\s*(?P<value>\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``objective op bound`` over cheap objectives: callable on genes → bool [N] (True feasible).

    Attributes:
        expr: the text as given (spaces removed).
        objective: the (cheap) objective constrained.
        op: ``"<="`` or ``">="``.
        bound: in the objective's natural unit.
    """

    expr: str
    objective: Objective
    op: str
    bound: float

    def values(self, genes: np.ndarray) -> np.ndarray:
        return self.objective.evaluate(genes)

    def violation(self, genes: np.ndarray) -> np.ndarray:
        """How far each row is outside the bound, relative to |bound| (0 when feasible), float64 [N]."""
        v = self.values(genes)
        excess = v - self.bound if self.op == "<=" else self.bound - v
        return np.maximum(excess, 0.0) / max(abs(self.bound), 1e-12)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        return self.violation(genes) <= 0.0


def parse_constraints(exprs: Sequence[str], factory: ObjectiveFactory) -> list[Constraint]:
    """:meth:`ObjectiveFactory.constraint` of each expression."""
    return [factory.constraint(e) for e in exprs]
