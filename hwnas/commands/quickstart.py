"""`hwnas quickstart`: the whole pipeline on this machine's CPU (:mod:`hwnas.quickstart`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from hwnas.commands.common import emit, json_option, progress_bar, stderr
from hwnas.supernets.registry import DEFAULT_SPACE


class _Terminal:
    """Shows a quickstart's events on stderr: numbered steps, progress bars, details."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _open_bar(self, description: str, total: int | None) -> None:
        self._close_bar()
        self._bar = progress_bar()
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, item="")

    def step(self, number: int, text: str) -> None:
        from hwnas.quickstart import STEPS

        self._close_bar()
        elapsed = time.perf_counter() - self.started
        stderr.print(f"[bold][{number}/{STEPS}][/bold] {text}  ({elapsed:.0f} s elapsed)")

    def note(self, text: str) -> None:
        self._close_bar()
        stderr.print(f"      {text}", highlight=False)

    def profile_started(self, items: int) -> None:
        self._open_bar("profiling", items)

    def profiled(self, stage: str, key: str) -> None:
        self._bar.update(self._task, advance=1, item=f"{stage} {key}"[:48])

    def searched(self, event: Any) -> None:
        if self._bar is None:
            self._open_bar("searching", event.budget)
        self._bar.update(self._task, completed=event.evaluations,
                         item=f"HV {event.hypervolume:.4g}, front {event.front_size}")

    def close(self) -> None:
        self._close_bar()


@click.command()
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory for everything (new; or a previous quickstart's, to resume it).")
@click.option("--space", default=DEFAULT_SPACE, show_default=True,
              help="Space (its supernet needs trained weights: the accuracy objective).")
@click.option("--evals", type=int, default=150, show_default=True, help="Validated evaluations of the search.")
@click.option("--top", type=int, default=5, show_default=True, help="Models exported, spread along the front.")
@click.option("--int8/--no-int8", default=True, show_default=True, help="Also export INT8 variants.")
@click.option("--threads", type=int, default=None, help="Threads for timing and evaluation [default: physical cores].")
@click.option("--seed", type=int, default=0, show_default=True, help="Search seed.")
@json_option
def quickstart(out: Path, space: str, evals: int, top: int, int8: bool, threads: int | None, seed: int,
               as_json: bool) -> None:
    """Profile, search (LINAS: accuracy vs latency), export and report a space on this CPU."""
    from hwnas.commands.export import models_table
    from hwnas.quickstart import run_quickstart

    terminal = _Terminal()
    try:
        result = run_quickstart(out, space=space, evals=evals, top=top, int8=int8, threads=threads, seed=seed,
                                events=terminal)
    except KeyboardInterrupt:
        terminal.close()
        click.echo(f"hwnas: quickstart interrupted; rerun the same command to resume from {out}", err=True)
        sys.exit(130)
    finally:
        terminal.close()
    for warning in result.manifest.get("warnings", []):
        stderr.print(f"warning: {warning}", style="yellow", highlight=False)
    summary = result.summary
    stderr.print(f"done in {summary['wall_seconds']:.0f} s — report: {summary['report']}", highlight=False)
    emit(summary, as_json, models_table(result.manifest, f"exported models ({summary['export']})"))
