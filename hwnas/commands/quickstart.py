"""`hwnas quickstart`: the whole pipeline on this machine's CPU with the built-in bert-mini.

Four steps, each a library call, each resumable, into one directory:

1. ``DIR/profile.json`` — a quick profile of ``bert-mini`` on the CPU (:class:`Profiler`, resumes);
2. ``DIR/search`` — LINAS over accuracy (the shipped trained supernet, weight sharing) and the
   profile's latency (:func:`hwnas.search.runner.search`, resumes from its run directory);
3. ``DIR/export`` — ``--top`` models spread along the Pareto front as verified ONNX, with INT8
   variants (:func:`hwnas.deploy.pipeline.export_run`; skipped when already there);
4. ``DIR/report`` — plots and report.md (:func:`hwnas.report.build_report`, rebuilt each time).

``DIR/quickstart.json`` records the settings, the time of each step and the status. Rerunning
with the same DIR and settings resumes where it stopped; DIR holding anything else is refused.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from hwnas.commands.common import emit, json_option, progress_bar, stderr
from hwnas.errors import InputError
from hwnas.fileio import now_iso
from hwnas.outdir import OutputKind
from hwnas.outdir import check_out_dir as check_output_dir

SPACE = "bert-mini"
SCHEMA = "hwnas-quickstart/1"
MARKER = "quickstart.json"
#: A quickstart directory: its steps' outputs, and what they leave behind when killed mid-write
#: (temporary files and staging directories).
QUICKSTART_KIND = OutputKind("quickstart", MARKER, SCHEMA, own=re.compile(
    r"^(profile\.json|search|export|report|\.(profile\.json\..*\.tmp|quickstart\.json\..*\.tmp|(export|report)\.partial-.*))$"))


def check_out_dir(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse a DIR that is a file, unwritable, holds foreign files or a quickstart with other
    settings (:func:`hwnas.outdir.check_out_dir`). Returns the existing quickstart.json (None for
    a new or empty DIR)."""
    existing = check_output_dir(out, QUICKSTART_KIND)
    if existing is None:
        return None
    if existing.get("settings") != settings:
        diff = next(k for k in settings if (existing.get("settings") or {}).get(k) != settings[k])
        raise InputError(f"--out {str(out)!r} holds a quickstart with other settings ({diff}: "
                         f"{(existing.get('settings') or {}).get(diff)!r} there vs {settings[diff]!r} now); "
                         "rerun with the same settings to resume, or choose a new directory")
    return existing


def _save(out: Path, record: dict[str, Any]) -> None:
    from hwnas.fileio import atomic_write_text as write_atomic

    write_atomic(out / MARKER, json.dumps(record, indent=2) + "\n")


@click.command()
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory for everything (new; or a previous quickstart's, to resume it).")
@click.option("--evals", type=int, default=150, show_default=True, help="Validated evaluations of the search.")
@click.option("--top", type=int, default=5, show_default=True, help="Models exported, spread along the front.")
@click.option("--int8/--no-int8", default=True, show_default=True, help="Also export INT8 variants.")
@click.option("--threads", type=int, default=None, help="Threads for timing and evaluation [default: physical cores].")
@click.option("--seed", type=int, default=0, show_default=True, help="Search seed.")
@json_option
def quickstart(out: Path, evals: int, top: int, int8: bool, threads: int | None, seed: int, as_json: bool) -> None:
    """Profile, search (LINAS: accuracy vs latency), export and report bert-mini on this CPU."""
    import torch

    from hwnas.commands.export import models_table
    from hwnas.evaluation.accuracy import get_evaluator
    from hwnas.deploy.pipeline import export_run
    from hwnas.profiling.profiler import MeasurePolicy, Profiler, resolve_threads
    from hwnas.report import build_report
    from hwnas.search.runner import SearchRequest, execute, prepare
    from hwnas.supernets.registry import get_supernet

    threads = resolve_threads(threads)
    if isinstance(top, bool) or top < 1:
        raise InputError(f"--top must be a positive integer, got {top!r}")
    settings = {"space": SPACE, "evals": evals, "top": top, "int8": int8, "threads": threads, "seed": seed,
                "algo": "linas", "objectives": "accuracy,latency", "profile": "quick"}
    existing = check_out_dir(out, settings)
    supernet = get_supernet(SPACE)
    evaluator = get_evaluator(supernet)  # InputError (exit 2) when the shipped checkpoint is missing
    torch.set_num_threads(threads)
    profile_path, run_dir = out / "profile.json", out / "search"
    export_dir, report_dir = out / "export", out / "report"
    request = SearchRequest(space=SPACE, algo="linas", objectives="accuracy,latency", evals=evals, out=run_dir,
                            profiles=[str(profile_path.resolve())], seed=seed, evaluator=evaluator,
                            supernet=supernet)
    created = not out.exists()
    out.mkdir(exist_ok=True)
    try:
        profiler = Profiler(supernet, profile_path, ep="cpu", threads=threads, policy=MeasurePolicy.quick())
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

    def step(name: str, seconds: float) -> None:
        timings[name] = round(seconds, 2)
        record["steps"][name] = {"seconds": timings[name], "finished": now_iso()}
        _save(out, record)

    def header(number: int, text: str) -> None:
        stderr.print(f"[bold][{number}/4][/bold] {text}  ({time.perf_counter() - started:.0f} s elapsed)")

    try:
        t0 = time.perf_counter()
        header(1, f"quick profile of {SPACE} on the CPU ({threads} thread{'s' if threads > 1 else ''}) → {profile_path}")
        if profiler.profile.complete and not any(profiler.pending().values()):
            # left untouched: the search identifies its profile by the file's hash
            stderr.print("      already complete, kept")
        else:
            with progress_bar() as bar:
                task = bar.add_task("profiling", total=None, item="")
                prof = profiler.run(progress=lambda stage, key: bar.update(task, advance=1, item=f"{stage} {key}"[:48]),
                                    on_start=lambda n: bar.update(task, total=n))
            if prof.failures:
                raise RuntimeError(f"profiling failed for {next(iter(prof.failures))}")
        step("profile", time.perf_counter() - t0)

        t0 = time.perf_counter()
        header(2, f"LINAS search, accuracy vs latency, {evals} evaluations → {run_dir}")
        prepared = prepare(request)
        with progress_bar() as bar:
            task = bar.add_task("searching", total=evals, item="")
            result = execute(prepared, lambda e: bar.update(
                task, completed=e.evaluations, item=f"HV {e.hypervolume:.4g}, front {e.front_size}"))
        step("search", time.perf_counter() - t0)
        stderr.print(f"      front: {len(result.front)} of {result.evaluations} validated configurations")

        t0 = time.perf_counter()
        manifest_path = export_dir / "manifest.json"
        if manifest_path.is_file():
            header(3, f"export already in {export_dir}, kept")
            manifest = json.loads(manifest_path.read_text())
        else:
            header(3, f"export of {min(top, len(result.front))} models of the front"
                      f"{' with INT8 variants' if int8 else ''} → {export_dir}")
            manifest = export_run(run_dir, export_dir, top=top, int8=int8, threads=threads, evaluator=evaluator,
                                  supernet=supernet, progress=lambda m: stderr.print(f"      {m}", highlight=False))
        step("export", time.perf_counter() - t0)

        t0 = time.perf_counter()
        header(4, f"report → {report_dir}")
        report = build_report(run_dir, out=report_dir, export_dir=export_dir)
        step("report", time.perf_counter() - t0)
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        _save(out, record)
        click.echo(f"hwnas: quickstart interrupted; rerun the same command to resume from {out}", err=True)
        sys.exit(130)

    wall = time.perf_counter() - started
    record.update(status="complete", finished=now_iso(), last_wall_seconds=round(wall, 2))
    _save(out, record)
    for warning in manifest.get("warnings", []):
        stderr.print(f"warning: {warning}", style="yellow", highlight=False)
    document = {
        "out": str(out),
        "profile": str(profile_path),
        "search": str(run_dir),
        "export": str(export_dir),
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
    stderr.print(f"done in {wall:.0f} s — report: {report['markdown']}", highlight=False)
    emit(document, as_json, models_table(manifest, f"exported models ({export_dir})"))
