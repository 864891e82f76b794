"""`hwnas search`: multi-objective search over a space, resumable from its run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from hwnas.commands.common import (
    emit,
    json_option,
    progress_bar,
    stderr,
    supernet_option,
)
from hwnas.errors import InputError


def _format(value: float, unit: str) -> str:
    if unit == "fraction":
        return f"{value:.4f}"
    if unit == "ms":
        return f"{value:.3f}"
    if unit == "count":
        return f"{value / 1e6:.3f} M" if abs(value) >= 1e5 else f"{value:.0f}"
    return f"{value:.4g}"


def _rows(out: Path) -> int:
    """Rows in ``out``/evaluations.jsonl (0 when there is none)."""
    rows_file = out / "evaluations.jsonl"
    return rows_file.read_text().count("\n") if rows_file.exists() else 0


def _parse_settings(items: tuple[str, ...]) -> dict[str, object]:
    """``KEY=VALUE`` strings to a dict; values are read as JSON where they parse (numbers,
    booleans), else kept as strings."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--setting must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


@click.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--algo", required=True, metavar="{linas,nsga2,ose,random}", help="Search algorithm.")
@click.option("--objectives", required=True, metavar="LIST",
              help="Comma-separated: accuracy, latency (one per --profile; latency:<label> picks one), params, "
                   "macs, loss (OSE's brief-training error), fidelity (agreement with the full network, where the "
                   "supernet defines it: minilm-mr).")
@click.option("--evals", required=True, type=int, help="Budget: validated evaluations.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run directory (created; an interrupted run there with the same settings resumes).")
@click.option("--profile", "profiles", multiple=True, type=click.Path(path_type=Path),
              help="Device profile (repeatable): one latency objective each.")
@click.option("--constraint", "constraints", multiple=True, metavar="EXPR",
              help="e.g. 'latency<=5' or 'params<=2e6' (repeatable; cheap objectives only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same run).")
@click.option("--population", type=int, default=None, help="Population / batch size [default: 50].")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="Algorithm setting, e.g. 'epsilon=0.05' for ose or 'inner_evals=5000' for linas (repeatable).")
@click.option("--threads", type=int, default=None,
              help="Torch intra-op threads of the search process (1 to the logical cores) "
                   "[default: physical cores].")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where evaluations run: this process, or Ray actors in parallel (needs hwnas[ray]).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --executor ray: the cluster to join (e.g. auto, ray://head:10001) "
                   "[default: a local Ray instance with this machine's cores].")
@supernet_option
@json_option
def search(space: str, algo: str, objectives: str, evals: int, out: Path, profiles: tuple[Path, ...],
           constraints: tuple[str, ...], seed: int, population: int | None, settings: tuple[str, ...],
           threads: int | None, executor: str, ray_address: str | None, plugin: str | None, as_json: bool) -> None:
    """Search a space for the Pareto front of the objectives; resumable from --out."""
    from hwnas import api
    from hwnas.search.archive import ProgressEvent
    from hwnas.search.executor import EvaluationError

    # every input check first: nothing is written before this passes
    from hwnas.profiling.profiler import resolve_threads

    api.check_executor(executor, ray_address)
    threads = resolve_threads(threads)  # default: physical cores, as the other commands
    prepared = api.prepare_search(space, algo=algo, objectives=objectives, evals=evals, out=out, plugin=plugin,
                                  profiles=profiles, constraints=constraints, seed=seed, population=population,
                                  settings=_parse_settings(settings), threads=threads)
    complete = (prepared.existing or {}).get("status") == "complete"
    for ref in prepared.factory.profiles:
        if ref.predictor is not None and ref.predictor.profile.noise_warning():
            stderr.print(f"warning: {ref.predictor.profile.noise_warning()}", style="yellow", highlight=False)
    if prepared.existing is not None:
        stderr.print(f"{out} holds this search, complete: showing its results" if complete
                     else f"resuming the interrupted search in {out}")
    if executor == "ray" and not complete:
        stderr.print("starting Ray workers (each loads the supernet and its data once)")
    with progress_bar("HV {task.fields[hv]}", "front {task.fields[front]}") as bar:
        task = bar.add_task(f"{algo} on {space}", total=prepared.request.evals, hv="-", front=0)

        def on_progress(event: ProgressEvent) -> None:
            bar.update(task, completed=event.evaluations, hv=f"{event.hypervolume:.5g}", front=event.front_size)

        try:
            result = api.run_search(prepared, progress=on_progress, executor=executor, ray_address=ray_address)
        except KeyboardInterrupt:
            bar.stop()
            click.echo(f"hwnas: interrupted after {_rows(out)} of {evals} evaluations; rerun the same command "
                       "to resume", err=True)
            sys.exit(130)
        except EvaluationError as exc:
            bar.stop()
            click.echo(f"hwnas: failed: {exc}; stopped after {_rows(out)} of {evals} evaluations "
                       f"(kept in {out})", err=True)
            sys.exit(1)

    document = result.to_json()
    units = {o["name"]: o["unit"] for o in result.objectives}
    table = Table(title=f"Pareto front: {len(result.front)} of {result.evaluations} validated "
                        f"({algo}, HV {result.hypervolume:.5g})")
    table.add_column("#", justify="right")
    for o in result.objectives:
        arrow = "↑" if o["maximize"] else "↓"
        table.add_column(f"{o['name']} {arrow} ({o['unit']})", justify="right")
    table.add_column("config")
    for row in result.front:
        table.add_row(str(row["index"]), *(_format(row["objectives"][n], units[n]) for n in units),
                      json.dumps(row["config"], separators=(",", ":")))
    emit(document, as_json, table)
    if not as_json:
        stderr.print(f"run directory: {out} ({result.status}; stop: {result.stop_reason})")
