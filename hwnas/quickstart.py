"""The whole pipeline on this machine's CPU, into one directory: profile, search, export, report.

Four steps, each a library call, each resumable:

1. ``DIR/profile.json`` — a quick profile of the space on the CPU (:class:`Profiler`, resumes);
2. ``DIR/search`` — LINAS over accuracy (the supernet's trained weights, weight sharing) and the
   profile's latency (:func:`hwnas.search.driver.execute`, resumes from its run directory);
3. ``DIR/export`` — ``top`` models spread along the Pareto front as verified ONNX, with INT8
   variants (:func:`hwnas.deploy.pipeline.export_run`; skipped when already there);
4. ``DIR/report`` — plots and report.md (:func:`hwnas.report.build_report`, rebuilt each time).

``DIR/quickstart.json`` (``hwnas-quickstart/1``) records the settings, the time of each step
and the status. Rerunning with the same DIR and settings resumes where it stopped; DIR holding
anything else, or a quickstart with other settings, is refused before any work.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import InputError
from hwnas.fileio import atomic_write_text, now_iso, remove_stale_temporaries
from hwnas.interrupts import terminate_as_interrupt
from hwnas.locking import exclusive
from hwnas.outdir import OutputKind, check_out_dir
from hwnas.supernets.registry import DEFAULT_SPACE

SCHEMA = "hwnas-quickstart/1"
MARKER = "quickstart.json"
STEPS = 4
#: A quickstart directory: its steps' outputs, their lock files (:mod:`hwnas.locking`), and what
#: they leave behind when killed mid-write (temporary files and staging directories).
QUICKSTART_KIND = OutputKind("quickstart", MARKER, SCHEMA, own=re.compile(
    r"^(profile\.json|search|export|report|\.(profile\.json\..*\.tmp|quickstart\.json\..*\.tmp|(export|report)\.partial-.*"
    r"|(profile\.json|search|export|report)\.lock))$"))


class QuickstartEvents:
    """What a quickstart tells its caller while it runs; override what you show (the CLI draws
    progress bars). Every method does nothing by default."""

    def step(self, number: int, text: str) -> None:
        """Step ``number`` of :data:`STEPS` starts (``text`` says what it does)."""

    def note(self, text: str) -> None:
        """A line of detail about the current step."""

    def profile_started(self, items: int) -> None:
        """Profiling measures ``items`` blocks, sub-networks and noise blocks."""

    def profiled(self, stage: str, key: str) -> None:
        """One item measured."""

    def searched(self, event: Any) -> None:
        """One evaluation validated (a :class:`~hwnas.search.archive.ProgressEvent`)."""


@dataclass(frozen=True)
class QuickstartResult:
    """``summary``: what ``hwnas quickstart --json`` prints (paths, settings, per-step seconds,
    wall seconds, front size, the exported models); ``manifest``: the export's manifest.json."""

    summary: dict[str, Any]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class QuickstartPaths:
    """Where the steps write inside ``out``."""

    out: Path

    @property
    def profile(self) -> Path:
        return self.out / "profile.json"

    @property
    def search(self) -> Path:
        return self.out / "search"

    @property
    def export(self) -> Path:
        return self.out / "export"

    @property
    def report(self) -> Path:
        return self.out / "report"


def check_quickstart_dir(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse a DIR that is a file, unwritable, holds foreign files or a quickstart with other
    settings (:func:`hwnas.outdir.check_out_dir`). Returns the existing quickstart.json (None for
    a new or empty DIR)."""
    existing = check_out_dir(out, QUICKSTART_KIND)
    if existing is None:
        return None
    if existing.get("settings") != settings:
        diff = next(k for k in settings if (existing.get("settings") or {}).get(k) != settings[k])
        raise InputError(f"--out {str(out)!r} holds a quickstart with other settings ({diff}: "
                         f"{(existing.get('settings') or {}).get(diff)!r} there vs {settings[diff]!r} now); "
                         "rerun with the same settings to resume, or choose a new directory")
    return existing


def _save(out: Path, record: dict[str, Any]) -> None:
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")


def run_quickstart(out: str | Path, *, space: str = DEFAULT_SPACE, evals: int = 150, top: int = 5,
                   int8: bool = True, threads: int | None = None, seed: int = 0,
                   events: QuickstartEvents | None = None) -> QuickstartResult:
    """Profile, search (LINAS: accuracy vs latency), export and report ``space`` on this CPU.

    Args:
        out: the directory for everything (new or empty; or an earlier quickstart's with the
            same settings, which resumes).
        space: a space whose supernet has an accuracy evaluator (trained weights).
        evals: validated evaluations of the search (at least one LINAS population, 50).
        top: models exported, spread along the front.
        int8: also export INT8 variants.
        threads: for timing and evaluation (default: physical cores).
        events: told about progress (default: nothing shown).
    Returns:
        the summary (paths, settings, per-step seconds, wall seconds, front size, the exported
        models: config, params, test accuracy, predicted and measured ms, INT8 ms and accuracy)
        and the export's manifest.
    Raises:
        InputError: before any work, on bad settings, a foreign DIR or a space without accuracy.
        KeyboardInterrupt: after recording ``"interrupted"`` in quickstart.json.
    """
    from hwnas.checks import check_int
    from hwnas.profiling.profiler import resolve_threads
    from hwnas.search.algorithms import make_algorithm

    events = events or QuickstartEvents()
    out, threads = Path(out), resolve_threads(threads)
    top = check_int("--top", top, 1)
    evals = check_int("--evals", evals, 1)
    population = make_algorithm("linas").min_budget()
    if evals < population:  # refused before the profile is made, not after
        raise InputError(f"--evals {evals} is smaller than one population of linas ({population}); "
                         f"give at least {population}")
    settings = {"space": space, "evals": evals, "top": top, "int8": int8, "threads": threads, "seed": seed,
                "algo": "linas", "objectives": "accuracy,latency", "profile": "quick"}
    check_quickstart_dir(out, settings)
    with exclusive(out), terminate_as_interrupt():  # one quickstart per directory
        return _run_locked(out, space=space, evals=evals, top=top, int8=int8, threads=threads, seed=seed,
                           settings=settings, events=events)


def _run_locked(out: Path, *, space: str, evals: int, top: int, int8: bool, threads: int, seed: int,
                settings: dict[str, Any], events: QuickstartEvents) -> QuickstartResult:
    import torch

    from hwnas.deploy.pipeline import export_run
    from hwnas.evaluation.accuracy import get_evaluator
    from hwnas.profiling.profiler import MeasurePolicy, Profiler
    from hwnas.report import _load_manifest, build_report
    from hwnas.search.driver import SearchRequest, execute, prepare
    from hwnas.supernets.registry import get_supernet

    existing = check_quickstart_dir(out, settings)  # again, under the lock
    remove_stale_temporaries(out / MARKER)  # left by a quickstart killed mid-save
    supernet = get_supernet(space)
    evaluator = get_evaluator(supernet)  # InputError (exit 2) when the space has no trained weights
    torch.set_num_threads(threads)
    paths = QuickstartPaths(out)
    request = SearchRequest(space=space, algo="linas", objectives="accuracy,latency", evals=evals, out=paths.search,
                            profiles=[str(paths.profile.resolve())], seed=seed, evaluator=evaluator,
                            supernet=supernet)
    created = not out.exists()
    out.mkdir(exist_ok=True)
    try:
        profiler = Profiler(supernet, paths.profile, ep="cpu", threads=threads, policy=MeasurePolicy.quick())
    except InputError:
        if created:
            out.rmdir()
        raise
    record = existing or {"schema": SCHEMA, "settings": settings, "steps": {}, "status": "running",
                          "created": now_iso()}
    record["status"] = "running"
    _save(out, record)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def finished(name: str, since: float) -> None:
        timings[name] = round(time.perf_counter() - since, 2)
        record["steps"][name] = {"seconds": timings[name], "finished": now_iso()}
        _save(out, record)

    try:
        t0 = time.perf_counter()
        plural = "s" if threads > 1 else ""
        events.step(1, f"quick profile of {space} on the CPU ({threads} thread{plural}) → {paths.profile}")
        if profiler.profile.complete and not any(profiler.pending().values()):
            # left untouched: the search identifies its profile by the file's hash
            events.note("already complete, kept")
        else:
            measured = profiler.run(progress=events.profiled, on_start=events.profile_started)
            if measured.failures:
                raise RuntimeError(f"profiling failed for {next(iter(measured.failures))}")
        finished("profile", t0)

        t0 = time.perf_counter()
        events.step(2, f"LINAS search, accuracy vs latency, {evals} evaluations → {paths.search}")
        result = execute(prepare(request), events.searched)
        finished("search", t0)
        events.note(f"front: {len(result.front)} of {result.evaluations} validated configurations")

        t0 = time.perf_counter()
        manifest_path = paths.export / "manifest.json"
        if manifest_path.is_file():
            events.step(3, f"export already in {paths.export}, kept")
            manifest = _load_manifest(paths.export)  # checked, not trusted
        else:
            events.step(3, f"export of {min(top, len(result.front))} models of the front"
                           f"{' with INT8 variants' if int8 else ''} → {paths.export}")
            manifest = export_run(paths.search, paths.export, top=top, int8=int8, threads=threads,
                                  evaluator=evaluator, supernet=supernet, progress=events.note)
        finished("export", t0)

        t0 = time.perf_counter()
        events.step(4, f"report → {paths.report}")
        report = build_report(paths.search, out=paths.report, export_dir=paths.export)
        finished("report", t0)
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        _save(out, record)
        raise

    wall = time.perf_counter() - started
    record.update(status="complete", finished=now_iso(), last_wall_seconds=round(wall, 2))
    _save(out, record)
    summary = {
        "out": str(out),
        "profile": str(paths.profile),
        "search": str(paths.search),
        "export": str(paths.export),
        "report": report["markdown"],
        "settings": settings,
        "timings_s": timings,
        "wall_seconds": round(wall, 2),
        "front_size": len(result.front),
        "evaluations": result.evaluations,
        "models": [{
            "file": m["file"], "config": m["config"], "params": m["params"],
            "test_accuracy": m.get("test_accuracy"), "predicted_ms": m.get("predicted_ms"),
            "measured_ms": m.get("measured_ms"),
            "int8_ms": (m.get("int8") or {}).get("measured_ms"),
            "int8_test_accuracy": (m.get("int8") or {}).get("test_accuracy"),
        } for m in manifest["models"]],
    }
    return QuickstartResult(summary, manifest)

