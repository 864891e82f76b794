"""The search driver: checks a request, opens the run directory, drives the algorithm's
ask/tell loop through the :class:`~hwnas.search.archive.Archive`, and writes the Pareto front
and hypervolume.

``prepare(request)`` does every check that can fail on bad input (space, algorithm and its
settings, objectives, profiles, constraints, budget, output directory) and touches no file;
``execute(prepared)`` then runs: ``ask`` a batch → ``archive.evaluate_batch`` → ``tell`` what
was served → repeat until the budget is spent or the algorithm has nothing left to try.
:func:`search` does both.

Resume and determinism. The archive answers a configuration already in evaluations.jsonl
without spending budget, and counts budget as *distinct configurations served to the
algorithm*. The algorithms are deterministic given the seed, so rerunning a killed search
replays the same proposals, gets every earlier evaluation back from the archive, and continues
with the first configuration that was never validated: no evaluation is lost or repeated, and
the rows equal those of an uninterrupted run. (Should a replay ever diverge, rows already in the
archive still count toward the budget, so the total stays exactly ``evals``.)

The reference point for the hypervolume is fixed when the run is created and recorded in
run.json: for an objective with an a-priori worst value (accuracy: 0; OSE loss: 2·ln C) that
value; for the cheap objectives the worst value over a uniform sample (fixed seed 0, whatever
the run's seed) of up to 1,000 valid configurations plus the all-largest and all-smallest gene
vectors, moved 10% of the sampled range further in the worse direction. The point depends only
on the space and the objectives — not on the seed, the algorithm or the constraints — so the
hypervolumes of different runs over the same objectives are comparable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import hwnas
from hwnas.checks import check_int
from hwnas.errors import InputError
from hwnas.fileio import now_iso
from hwnas.interrupts import terminate_as_interrupt
from hwnas.locking import exclusive, refuse_if_locked
from hwnas.search.algorithms import Algorithm, make_algorithm
from hwnas.search.archive import Archive, ProgressEvent
from hwnas.search.executor import Executor
from hwnas.search.objectives import EXPENSIVE, ObjectiveFactory, parse_constraints
from hwnas.search.problem import Problem
from hwnas.search.store import (
    SCHEMA,
    RunDirectory,
    identity_mismatch,
    inspect_out_dir,
)
from hwnas.supernets.base import Supernet

REFERENCE_SAMPLE = 1000
REFERENCE_MARGIN = 0.1


@dataclass
class SearchRequest:
    """What the user asked for (the CLI's flags).

    ``evaluator`` and ``supernet`` let tests and library users pass objects instead of names.
    ``settings`` are extra algorithm settings (e.g. ``{"inner_evals": 5000}`` for LINAS).
    ``threads``: torch intra-op threads of the search process while it runs (1 to the logical
    cores; None: leave torch's setting as it is).
    """

    space: str
    algo: str
    objectives: Sequence[str] | str
    evals: int
    out: Path
    plugin: str | None = None
    profiles: Sequence[str] = ()
    constraints: Sequence[str] = ()
    seed: int = 0
    population: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    loss_settings: Sequence[Any] | None = None
    evaluator: Any = None
    supernet: Supernet | None = None
    threads: int | None = None


@dataclass
class Prepared:
    """A checked request, ready to run."""

    request: SearchRequest
    supernet: Supernet
    problem: Problem
    algorithm: Algorithm
    factory: ObjectiveFactory
    header: dict[str, Any]
    existing: dict[str, Any] | None
    threads: int | None = None


@dataclass
class SearchResult:
    """The outcome of a search (also what ``hwnas search --json`` prints)."""

    out: Path
    status: str
    evaluations: int
    budget: int
    resumed_from: int
    hypervolume: float
    reference_point: list[float]
    objectives: list[dict[str, Any]]
    front: list[dict[str, Any]]
    stop_reason: str | None
    result: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"run": str(self.out), "status": self.status, "evaluations": self.evaluations,
                "evals": self.budget, "resumed_from": self.resumed_from, "hypervolume": self.hypervolume,
                "reference_point": self.reference_point, "objectives": self.objectives,
                "stop_reason": self.stop_reason, "front": self.front, "result": self.result}


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
def space_fingerprint(problem: Problem) -> dict[str, Any]:
    """The space's definition as recorded in run.json (resume refuses another space)."""
    space = problem.space
    return {
        "name": space.name,
        "dimensions": [{"name": d.name, "choices": list(d.choices), "per_layer": d.per_layer}
                       for d in space.dimensions],
        "depth": space.depth,
        "fixed": dict(space.fixed),
        "constraints": [c.description for c in space.constraints],
        # only for spaces with explicit depth groups, so run.json files of the others still match
        **({"depth_groups": space.describe()["depth_groups"]} if space.groups else {}),
    }


def _max_configurations(problem: Problem) -> int | None:
    """Number of valid configurations when cheap to know (None for a large constrained space)."""
    return problem.space.count_valid()


def _versions() -> dict[str, str | None]:
    import platform

    out: dict[str, str | None] = {"hwnas": hwnas.__version__, "python": platform.python_version()}
    for name in ("torch", "onnxruntime", "pymoo"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _host() -> dict[str, Any]:
    from hwnas.profiling.fingerprint import device_fingerprint

    fp = device_fingerprint("cpu", 1)
    for key in ("execution_provider", "ep_options", "intra_op_threads"):
        fp.pop(key, None)
    return fp


def reference_point(problem: Problem, seed: int = 0) -> list[float]:
    """The hypervolume reference point in natural units (see module doc; ``seed`` selects the
    sample, and the driver always uses 0)."""
    objectives = problem.objectives
    need_sample = [i for i, o in enumerate(objectives) if o.worst is None]
    ref = [float(o.worst) if o.worst is not None else float("nan") for o in objectives]
    if not need_sample:
        return ref
    for i in need_sample:
        if objectives[i].expensive:
            raise InputError(f"objective {objectives[i].name!r} has no known worst value for the reference point")
    rng = np.random.default_rng(seed)
    upper = problem.upper
    raw = np.vstack([upper[None, :], np.zeros((1, upper.size), dtype=np.int64),
                     rng.integers(0, upper + 1, size=(20 * REFERENCE_SAMPLE, upper.size))])
    genes = problem.canonical(raw)
    genes = genes[problem.valid(genes)]
    _, first = np.unique(genes, axis=0, return_index=True)
    genes = genes[np.sort(first)][: REFERENCE_SAMPLE + 2]
    if genes.shape[0] == 0:
        raise InputError(f"space {problem.space.name!r}: no valid configuration found to set the reference point")
    for i in need_sample:
        values = np.asarray(objectives[i].evaluate(genes), dtype=np.float64)
        lo, hi = float(np.min(values)), float(np.max(values))
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        ref[i] = hi + REFERENCE_MARGIN * span if not objectives[i].maximize else lo - REFERENCE_MARGIN * span
    return ref


def prepare(request: SearchRequest) -> Prepared:
    """Check everything about a request without writing a file.

    Raises:
        InputError: unknown space, algorithm, objective or setting; latency without a profile;
            a profile of another space; bad constraint; budget below one population or above
            the space's size; unwritable or foreign ``--out``; accuracy without an evaluator.
    """
    evals = check_int("--evals", request.evals, 1)
    seed = check_int("--seed", request.seed, 0)
    threads = None
    if request.threads is not None:
        from hwnas.profiling.profiler import resolve_threads

        threads = resolve_threads(request.threads)  # 1 to the logical cores
    if request.population is not None:
        check_int("--population", request.population, 2)
    settings = dict(request.settings)
    if request.population is not None:
        settings["population"] = request.population
    algorithm = make_algorithm(request.algo, **settings)
    existing = inspect_out_dir(Path(request.out))
    refuse_if_locked(request.out)  # another search is writing there: refused before any work
    if request.supernet is not None:
        supernet = request.supernet
        if supernet.space.name != request.space:
            raise InputError(f"supernet is for space {supernet.space.name!r}, not {request.space!r}")
    else:
        from hwnas.supernets.registry import get_supernet

        supernet = get_supernet(request.space, request.plugin)
    factory = ObjectiveFactory(supernet, list(request.profiles), request.evaluator, request.loss_settings)
    names = factory.expand(request.objectives)
    # Cheap objectives and constraints first: their errors need no evaluator (no checkpoint load).
    for name in names:
        if name.partition(":")[0] not in EXPENSIVE:
            factory.objective(name)
    constraints = parse_constraints(list(request.constraints), factory)
    unused = factory.unused_profiles()
    if unused:
        raise InputError(f"--profile {unused[0]!r} is used by no objective or constraint "
                         "(add 'latency' to --objectives or a latency constraint)")
    objectives = [factory.objective(n) for n in names]
    problem = Problem(supernet.space, supernet, objectives, list(constraints))
    algorithm.check(problem, evals)
    size = _max_configurations(problem)
    if size is not None and evals > size:
        raise InputError(f"--evals {evals} exceeds the {size} valid configurations of space {supernet.space.name!r}")
    header = _header(request, problem, algorithm, factory, seed, evals, existing, threads)
    if existing is not None:
        stored = existing.get("settings")
        if isinstance(stored, dict):
            # A setting added to the algorithm after the run was made, at its default: the run
            # used that default; its run.json keeps the settings it was written with.
            header["settings"] = {k: v for k, v in header.get("settings", {}).items()
                                  if k in stored or k not in algorithm.defaults or v != algorithm.defaults[k]}
        mismatch = identity_mismatch(existing, header)
        if mismatch:
            raise InputError(f"--out {str(request.out)!r} holds a different search ({mismatch}); "
                             "use the same settings to resume it, or a new directory")
    return Prepared(request, supernet, problem, algorithm, factory, header, existing, threads)


def _header(request: SearchRequest, problem: Problem, algorithm: Algorithm, factory: ObjectiveFactory,
            seed: int, evals: int, existing: dict[str, Any] | None, threads: int | None = None) -> dict[str, Any]:
    import torch

    settings = dict(algorithm.settings)
    if any(o.name == "loss" for o in problem.objectives):
        settings["loss_settings"] = problem.objectives[problem.names.index("loss")].meta["settings"]
    profiles = [p.describe() for p in factory.profiles]
    reference = existing["reference_point"] if existing is not None else reference_point(problem, 0)
    fingerprints = [{"role": "profile", "label": p.label, **dict(p.device)} for p in factory.profiles]
    evaluator = next((o.meta.get("evaluator") for o in problem.objectives if "evaluator" in o.meta), None)
    header = {
        "schema": SCHEMA,
        "status": "running",
        "space": problem.space.name,
        "plugin": request.plugin,
        "algo": algorithm.name,
        "evals": evals,
        "seed": seed,
        "objectives": [o.describe() for o in problem.objectives],
        "constraints": [getattr(c, "expr", repr(c)) for c in problem.constraints],
        "profiles": profiles,
        "reference_point": [float(x) for x in reference],
        "settings": json.loads(json.dumps(settings)),
        "space_fingerprint": space_fingerprint(problem),
        "evaluator": evaluator,
        "versions": _versions(),
        "fingerprints": fingerprints,
        "host": _host(),
        # torch intra-op threads of the (last) search process; not part of the run's identity
        "threads": threads if threads is not None else torch.get_num_threads(),
        "created": now_iso(),
        "finished": None,
    }
    return header


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
def _result(prepared: Prepared, run: RunDirectory, archive: Archive) -> SearchResult:
    header = run.header
    return SearchResult(
        out=Path(run.path), status=header["status"], evaluations=archive.evaluations,
        budget=int(header["evals"]), resumed_from=archive.resumed_from, hypervolume=archive.hv,
        reference_point=list(header["reference_point"]), objectives=list(header["objectives"]),
        front=[{"index": r["index"], "config": r["config"], "objectives": r["objectives"]}
               for r in archive.front()],
        stop_reason=header.get("stop_reason"), result=dict(header.get("result") or {}))


def drive(algorithm: Algorithm, problem: Problem, archive: Archive, rng: np.random.Generator) -> str:
    """The ask → validate → tell loop until the budget is spent or nothing is left to try.

    Returns:
        the stop reason: "budget", "nothing left to try" or "budget (replay diverged from the
        archive)".
    """
    algorithm.setup(problem, archive.budget, rng)
    while not archive.exhausted:
        proposal = algorithm.ask()
        if proposal is None or len(proposal) == 0:
            return "nothing left to try"
        F = archive.evaluate_batch(proposal.genes, proposal.predicted)
        algorithm.tell(proposal.genes[: F.shape[0]], F)
    return "budget (replay diverged from the archive)" if archive.diverged else "budget"


def execute(prepared: Prepared, progress: Callable[[ProgressEvent], None] | None = None,
            executor: Executor | None = None) -> SearchResult:
    """Run a prepared search to the end of its budget (or resume it), writing the run directory.

    ``executor`` computes the expensive objectives of new configurations (default: in this
    process, one after another).

    KeyboardInterrupt (SIGINT, or SIGTERM while running) stops it after the last complete
    evaluation, with pareto.json and hypervolume.csv up to date and run.json still "running";
    rerunning the same request resumes it.

    With ``threads`` requested, torch runs with that many intra-op threads until it returns
    (then the previous setting is restored).
    """
    import torch

    request = prepared.request
    out = Path(request.out)
    out.resolve().parent.mkdir(parents=True, exist_ok=True)  # checked writable by prepare()
    previous = torch.get_num_threads()
    if prepared.threads is not None:
        torch.set_num_threads(prepared.threads)
    try:
        with exclusive(out), terminate_as_interrupt():
            return _execute_locked(prepared, progress, executor)
    finally:
        torch.set_num_threads(previous)


def _warn_costs(problem: Problem) -> None:
    """Say, before the first evaluation, what an objective that is costly to evaluate will cost
    (``meta["cost_warning"]``, e.g. OSE's brief training of BERT-base-sized networks)."""
    for objective in problem.objectives:
        note = objective.meta.get("cost_warning")
        if note:
            sys.stderr.write(f"hwnas: warning: {note}\n")
            sys.stderr.flush()


def _execute_locked(prepared: Prepared, progress: Callable[[ProgressEvent], None] | None,
                    executor: Executor | None) -> SearchResult:
    request = prepared.request
    run = RunDirectory.open(request.out, prepared.header)
    archive = Archive(prepared.problem, run, int(run.header["evals"]), progress, executor)
    if progress is not None:
        progress(ProgressEvent(archive.evaluations, archive.budget, archive.hv, len(archive.front_rows)))
    try:
        if run.header.get("status") == "complete":
            return _result(prepared, run, archive)
        archive.write_front()
        if not archive.exhausted:
            _warn_costs(prepared.problem)
        rng = np.random.default_rng(int(run.header["seed"]))
        stop_reason = drive(prepared.algorithm, prepared.problem, archive, rng)
        archive.write_front()
        run.write_hypervolume(archive.hv_series)
        run.update(status="complete", finished=now_iso(), stop_reason=stop_reason,
                   evaluations=archive.evaluations, hypervolume=archive.hv,
                   result=json.loads(json.dumps(prepared.algorithm.summary(), default=float)))
        return _result(prepared, run, archive)
    except KeyboardInterrupt:
        archive.write_front()
        run.write_hypervolume(archive.hv_series)
        raise
    finally:
        run.close()


def search(request: SearchRequest, progress: Callable[[ProgressEvent], None] | None = None,
           executor: Executor | None = None) -> SearchResult:
    """:func:`prepare` then :func:`execute`."""
    return execute(prepare(request), progress, executor)


__all__ = ["Prepared", "ProgressEvent", "SearchRequest", "SearchResult", "drive", "execute", "prepare",
           "reference_point", "search", "space_fingerprint"]
