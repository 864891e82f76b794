"""The public Python API: what the ``hwnas`` commands do, as functions for notebooks and scripts.

Every command is a thin layer over one of these functions (it parses flags, calls the function,
prints the result), so the two always agree::

    from hwnas import api

    profile = api.profile("bert-mini", "cpu.json", quick=True)      # hwnas profile
    predictor = api.load_predictor("cpu.json")                      # hwnas predict
    predictor.predict([{"D": 3, "A": [4, 4, 4], "I": [512, 512, 512]}])
    result = api.search("bert-mini", algo="linas", objectives="accuracy,latency",
                        profiles=["cpu.json"], evals=100, out="run")  # hwnas search
    manifest = api.export(run="run", out="models", top=3)            # hwnas export
    api.report("run", export="models")                               # hwnas report

Errors in the input (an unknown space, a bad configuration, a foreign output directory) raise
:class:`hwnas.errors.InputError` with a one-line message naming the bad value. Heavy modules
are imported inside the functions, so ``from hwnas import api`` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import Profile
    from hwnas.profiling.timing import Timing
    from hwnas.search.archive import ProgressEvent
    from hwnas.search.driver import Prepared, SearchResult
    from hwnas.space import Config, SearchSpace
    from hwnas.supernets.base import Supernet

PathLike = str | os.PathLike

__all__ = ["check_executor", "export", "fetch", "get_supernet", "load_predictor", "measure", "predict",
           "prepare_search", "profile", "quickstart", "report", "run_search", "search", "spaces"]


def spaces(plugin: str | None = None) -> dict[str, SearchSpace]:
    """Every search space hwnas can find (built-in, installed plug-ins, and ``plugin``'s), by name."""
    from hwnas.supernets.registry import available_supernets

    return {name: net.space for name, net in available_supernets(plugin).items()}


def fetch(name: str, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Bring the files ``name`` needs (e.g. ``"minilm-mr"``: a checkpoint and a data set) into the
    user cache with pip; idempotent, hash-checked. Returns what was fetched and what was there."""
    from hwnas.supernets.assets import fetch as fetch_files

    return fetch_files(name, say)


def get_supernet(space: str, plugin: str | None = None) -> Supernet:
    """A fresh supernet of ``space`` (``plugin``: ``"package.module:factory"``)."""
    from hwnas.supernets.registry import get_supernet as lookup

    return lookup(space, plugin)


def _config(supernet: Supernet, config: Config | str) -> Config:
    from hwnas.space import parse_config

    return parse_config(config, supernet.space) if isinstance(config, str) else supernet.space.validate(config)


def profile(space: str, out: PathLike, *, ep: str = "cpu", threads: int | None = None,
            shape: Mapping[str, int] | None = None, quick: bool = False, plugin: str | None = None,
            supernet: Supernet | None = None, progress: Callable[[str, str], None] | None = None,
            on_start: Callable[[int], None] | None = None, precision: str = "fp32") -> Profile:
    """Profile ``space`` on this device into the profile file ``out`` (resumed if it is there).

    Args:
        ep: ONNX Runtime execution provider (``cpu``, ``cuda``, ``openvino``).
        precision: ``fp32``, or ``int8`` (blocks and calibration sub-networks quantized as
            ``export(int8=True)`` quantizes).
        threads: intra-op threads (default: physical cores).
        shape: shape settings, e.g. ``{"batch": 1, "seq_len": 64}`` (default: the space's).
        quick: the ``--quick`` policy (fewer repeats, 10 calibration sub-networks).
        progress: called as ``progress(stage, key)`` after each measured item;
            ``on_start(n)`` once with the number of items to measure.
    Returns:
        the profile (``profile.failures`` lists what could not be measured, by key;
        ``profile.noisy`` / ``profile.noise_warning()`` say whether interference spoiled it).
    """
    from hwnas.profiling.profiler import MeasurePolicy, Profiler

    supernet = supernet or get_supernet(space, plugin)
    profiler = Profiler(supernet, Path(out), ep=ep, threads=threads, shape=dict(shape or {}),
                        policy=MeasurePolicy.quick() if quick else MeasurePolicy(), precision=precision)
    return profiler.run(progress=progress, on_start=on_start)


def load_predictor(profile_path: PathLike, *, plugin: str | None = None,
                   supernet: Supernet | None = None) -> LatencyPredictor:
    """The calibrated latency predictor of a profile file (its space's supernet is looked up).

    ``predictor.predict(configs)`` gives ms (float64 [N]); ``predictor.device_warnings()`` says
    how this machine differs from the profiled device.
    """
    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile

    loaded = load_profile(profile_path)
    return LatencyPredictor(loaded, supernet or get_supernet(loaded.space, plugin))


def predict(profile_path: PathLike, config: Config | str, *, plugin: str | None = None) -> float:
    """Predicted end-to-end latency (ms) of one configuration on the profiled device."""
    predictor = load_predictor(profile_path, plugin=plugin)
    return float(predictor.predict([_config(predictor.supernet, config)])[0])


def measure(space: str, config: Config | str, *, ep: str = "cpu", threads: int | None = None,
            shape: Mapping[str, int] | None = None, plugin: str | None = None,
            supernet: Supernet | None = None) -> Timing:
    """Export one sub-network and time it here with the profiler's runner (median ms, spread)."""
    from hwnas.profiling.profiler import measure_subnet, resolve_threads

    supernet = supernet or get_supernet(space, plugin)
    return measure_subnet(supernet, _config(supernet, config), ep=ep, threads=resolve_threads(threads),
                          shape=dict(shape or {}))


def prepare_search(space: str, *, algo: str, objectives: Sequence[str] | str, evals: int, out: PathLike,
                   profiles: Sequence[PathLike] = (), constraints: Sequence[str] = (), seed: int = 0,
                   population: int | None = None, settings: Mapping[str, Any] | None = None,
                   plugin: str | None = None, supernet: Supernet | None = None, evaluator: Any = None,
                   threads: int | None = None) -> Prepared:
    """Check a search request without writing a file (arguments as :func:`search`).

    Returns:
        the prepared search; ``prepared.existing`` is the run.json already in ``out`` (a run to
        resume, or a complete one to show), None for a new run.
    """
    from hwnas.search.driver import SearchRequest, prepare

    return prepare(SearchRequest(space=space, algo=algo, objectives=objectives, evals=evals, out=Path(out),
                                 plugin=plugin, profiles=[str(p) for p in profiles], constraints=list(constraints),
                                 seed=seed, population=population, settings=dict(settings or {}),
                                 evaluator=evaluator, supernet=supernet, threads=threads))


def check_executor(executor: str, ray_address: str | None = None) -> None:
    """Refuse an unknown executor, ``ray_address`` without Ray, or Ray not installed (the
    install hint), before any work."""
    from hwnas.errors import InputError

    if executor not in ("local", "ray"):
        raise InputError(f"--executor must be local or ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise InputError(f"--ray-address {ray_address!r} needs --executor ray")
    if executor == "ray":
        from hwnas.distributed import require_ray

        require_ray("--executor ray")


def run_search(prepared: Prepared, *, progress: Callable[[ProgressEvent], None] | None = None,
               executor: str = "local", ray_address: str | None = None) -> SearchResult:
    """Run a prepared search to the end of its budget (or resume it).

    Args:
        executor: ``"local"`` (this process) or ``"ray"`` (each batch in parallel on Ray actors
            that load the supernet once; needs ``hwnas[ray]``; same rows as local).
        ray_address: the Ray cluster to join (default: a local instance with this machine's cores).
    """
    from contextlib import nullcontext

    from hwnas.search.driver import execute

    check_executor(executor, ray_address)
    runner = None
    if executor == "ray":
        if (prepared.existing or {}).get("status") != "complete":  # a finished run starts no workers
            from hwnas.distributed.ray_executor import ray_executor

            runner = ray_executor(prepared, address=ray_address)
    with runner if runner is not None else nullcontext():
        return execute(prepared, progress, runner)


def search(space: str, *, algo: str, objectives: Sequence[str] | str, evals: int, out: PathLike,
           profiles: Sequence[PathLike] = (), constraints: Sequence[str] = (), seed: int = 0,
           population: int | None = None, settings: Mapping[str, Any] | None = None,
           plugin: str | None = None, supernet: Supernet | None = None, evaluator: Any = None,
           progress: Callable[[ProgressEvent], None] | None = None, executor: str = "local",
           ray_address: str | None = None, threads: int | None = None) -> SearchResult:
    """Search ``space`` for the Pareto front of ``objectives`` into the run directory ``out``
    (an interrupted run there with the same settings resumes): :func:`prepare_search`, then
    :func:`run_search`.

    Args:
        algo: ``linas``, ``nsga2``, ``ose`` or ``random``.
        objectives: from ``accuracy``, ``latency`` (one per profile), ``params``, ``macs``, ``loss``.
        evals: the budget of validated evaluations.
        constraints: e.g. ``["latency<=5"]`` over cheap objectives.
        settings: algorithm settings, e.g. ``{"inner_evals": 5000}``.
        executor: ``"local"`` or ``"ray"`` (see :func:`run_search`).
        threads: torch intra-op threads of this process while the search runs (1 to the
            logical cores; recorded in run.json as ``threads``); None leaves torch's setting.
            Ray workers use one thread each.
    Returns:
        the result: status, front (validated, non-dominated), hypervolume, algorithm summary.
    """
    check_executor(executor, ray_address)
    prepared = prepare_search(space, algo=algo, objectives=objectives, evals=evals, out=out, profiles=profiles,
                              constraints=constraints, seed=seed, population=population, settings=settings,
                              plugin=plugin, supernet=supernet, evaluator=evaluator, threads=threads)
    return run_search(prepared, progress=progress, executor=executor, ray_address=ray_address)


def export(run: PathLike | None = None, *, out: PathLike, top: int | None = None, space: str | None = None,
           config: Config | str | None = None, int8: bool = False, ep: str | None = None,
           threads: int | None = None, plugin: str | None = None,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export sub-networks as standalone, verified ONNX models into the new directory ``out``.

    Either ``run`` (a complete search run: its validated Pareto front, or ``top`` models spread
    along it) or ``space`` and ``config`` (one configuration). Each model is checked with
    ``onnx.checker``, matched against PyTorch (≤ 1e-4), timed here beside each profile's
    prediction, and scored on the test split where the supernet has one; ``int8`` adds an ONNX
    Runtime INT8 variant of each. ``plugin`` must be given for a run of a plug-in's space: a
    run directory never chooses the code hwnas imports.

    Returns:
        the manifest (``hwnas-export/1``, also written to ``out/manifest.json``).
    """
    from hwnas.deploy.accuracy import accuracy_source
    from hwnas.deploy.measure import measurement_for
    from hwnas.deploy.pipeline import check_export_dir, deploy, export_run
    from hwnas.errors import InputError

    if run is not None and config is not None:
        raise InputError("give either --run DIR or --space S --config JSON, not both")
    if run is None and config is None:
        raise InputError("missing --run DIR (or --space S --config JSON)")
    if top is not None and run is None:
        raise InputError("--top only applies to --run")
    if run is not None:
        return export_run(run, out, top=top, space=space, plugin=plugin, int8=int8, ep=ep, threads=threads,
                          progress=progress)
    if space is None:
        raise InputError("--config needs --space")
    supernet = get_supernet(space, plugin)
    chosen = _config(supernet, config)
    check_export_dir(out)
    from hwnas.locking import exclusive

    with exclusive(out):
        measurement = measurement_for(supernet, [], ep, threads)
        return deploy(supernet, [{"config": chosen}], Path(out), measurement=measurement,
                      accuracy=accuracy_source(supernet, batch=measurement.shape.get("batch", 1)), int8=int8,
                      extra={"source": {"kind": "configs"}}, progress=progress)


def report(directory: PathLike, *, export: PathLike | None = None, out: PathLike | None = None) -> dict[str, Any]:
    """PNG plots and ``report.md`` for a search run or an export directory, into ``out``
    (default ``DIRECTORY/report``; new, empty, or an earlier report, which is replaced).

    Returns:
        ``{"schema", "report", "markdown", "plots", "run", "export", "created"}``.
    """
    from hwnas.report import build_report

    return build_report(directory, out, export)


def quickstart(out: PathLike, *, space: str | None = None, evals: int = 150, top: int = 5, int8: bool = True,
               threads: int | None = None, seed: int = 0, events: Any = None) -> dict[str, Any]:
    """Profile, search (LINAS: accuracy vs latency), export and report ``space`` (default: the
    built-in default, ``bert-mini``) on this CPU into ``out``; resumable (:mod:`hwnas.quickstart`).

    Returns:
        the summary: paths, settings, per-step seconds, the exported models.
    """
    from hwnas.quickstart import run_quickstart
    from hwnas.supernets.registry import DEFAULT_SPACE

    return run_quickstart(out, space=space or DEFAULT_SPACE, evals=evals, top=top, int8=int8, threads=threads,
                          seed=seed, events=events).summary
