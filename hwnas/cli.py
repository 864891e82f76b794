"""The ``hwnas`` command. Thin: parses arguments, calls the library, prints.

Exit status: 0 success; 2 usage or input error (one line on stderr naming the bad value);
1 anything else. With ``--json`` a command prints one JSON document on stdout; progress and
logs go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hwnas.errors import InputError

stderr = Console(stderr=True)


def emit(document: Any, as_json: bool, table: Table | None = None) -> None:
    """Print ``document`` as JSON on stdout, or ``table`` (human form) on stdout."""
    if as_json:
        click.echo(json.dumps(document, indent=2))
    elif table is not None:
        Console().print(table)


supernet_option = click.option(
    "--supernet", "plugin", default=None, metavar="MODULE:FACTORY",
    help="Load a plug-in supernet; its spaces become available by name.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


@click.group()
@click.version_option(package_name="hwnas")
def cli() -> None:
    """Hardware-aware latency profiling, multi-objective NAS and verified ONNX export."""


@cli.command()
@supernet_option
@json_option
def spaces(plugin: str | None, as_json: bool) -> None:
    """List search spaces with their dimensions, gene counts and valid configurations."""
    from hwnas.supernets.registry import builtin_spaces, load_plugin

    found = dict(builtin_spaces())
    if plugin:
        found.update({name: net.space for name, net in load_plugin(plugin).items()})
    described = [space.describe() for space in found.values()]
    table = Table(title="search spaces")
    for column in ("space", "supernet", "dimensions", "genes", "valid configurations"):
        table.add_column(column)
    for d in described:
        dims = "; ".join(
            f"{x['name']}{'[' + str(x['genes']) + ']' if x['per_layer'] else ''} ∈ {x['choices']}"
            for x in d["dimensions"]
        )
        if d["fixed"]:
            dims += "; " + ", ".join(f"{k}={v}" for k, v in d["fixed"].items())
        table.add_row(d["name"], d["supernet"], dims, str(d["genes"]), f"{d['valid_configurations']:,}")
    emit({"spaces": described}, as_json, table)


@cli.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--config", "config_text", required=True, metavar="JSON", help="Configuration to export.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New output directory.")
@supernet_option
@json_option
def export(space: str, config_text: str, out: Path, plugin: str | None, as_json: bool) -> None:
    """Export one configuration as a standalone, verified ONNX model with manifest.json."""
    from hwnas.export import export_configs, prepare_output_dir
    from hwnas.space import parse_config
    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet(space, plugin)
    config = parse_config(config_text, supernet.space)
    prepare_output_dir(out)
    stderr.print(f"exporting {json.dumps(config)} from {space} …")
    manifest = export_configs(supernet, [config], out)
    table = Table(title=f"exported to {out}")
    for column in ("file", "params", "MACs", "parity (max abs)"):
        table.add_column(column)
    for m in manifest["models"]:
        table.add_row(m["file"], f"{m['params'] / 1e6:.2f} M", f"{m['macs'] / 1e9:.2f} G",
                      f"{m['parity_max_abs_diff']:.2e}")
    emit(manifest, as_json, table)


def progress_bar() -> "Progress":
    """A progress bar with ETA on stderr."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[item]}"),
                    console=stderr, transient=False)


@cli.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--ep", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="ONNX Runtime execution provider.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Profile file (resumed if it exists).")
@click.option("--threads", type=int, default=None, help="Intra-op threads [default: physical cores].")
@click.option("--batch", type=int, default=None, help="Batch size [default: the space's, 1].")
@click.option("--seq-len", type=int, default=None, help="Sequence length [default: the space's].")
@click.option("--quick", is_flag=True, help="Fewer repeats and calibration sub-networks: a first look in a minute.")
@supernet_option
@json_option
def profile(space: str, ep: str, out: Path, threads: int | None, batch: int | None, seq_len: int | None,
            quick: bool, plugin: str | None, as_json: bool) -> None:
    """Measure every block of a space and a calibration set of whole sub-networks on this device."""
    from hwnas.profiling.profiler import MeasurePolicy, Profiler
    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet(space, plugin)
    shape = {"batch": batch}
    if seq_len is not None:
        shape["seq_len"] = seq_len
    profiler = Profiler(supernet, out, ep=ep, threads=threads, shape=shape,
                        policy=MeasurePolicy.quick() if quick else MeasurePolicy())
    with progress_bar() as bar:
        task = bar.add_task(f"profiling {space} ({ep}, {profiler.threads} threads)", total=None, item="")
        result = profiler.run(
            progress=lambda stage, key: bar.update(task, advance=1, item=f"{stage} {key}"[:60]),
            on_start=lambda n: bar.update(task, total=n),
        )
    summary = {
        "profile": str(out),
        "space": space,
        "device_id": result.device["id"],
        "complete": result.complete,
        "blocks": len(result.blocks),
        "calibration": len(result.calibration),
        "noise_floor": result.noise_floor.get("median_rel_diff"),
        "failures": result.failures,
        "stats": result.stats,
    }
    table = Table(title=f"profile {out}")
    table.add_column("field")
    table.add_column("value")
    for key in ("device_id", "complete", "blocks", "calibration", "noise_floor"):
        table.add_row(key, str(summary[key]))
    stats = result.stats
    if stats.get("wall_seconds"):
        table.add_row("wall / in ORT runs", f"{stats['wall_seconds']:.1f} s / {stats['ort_run_seconds']:.1f} s")
    emit(summary, as_json, table)
    if result.failures:
        for key, message in result.failures.items():
            click.echo(f"hwnas: failed {key}: {message}", err=True)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and maps errors to exit statuses."""
    try:
        cli.main(args=argv, prog_name="hwnas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("hwnas: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"hwnas: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except InputError as exc:
        click.echo(f"hwnas: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("hwnas: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 — the last line of defence of a CLI
        if os.environ.get("HWNAS_DEBUG"):
            raise
        click.echo(f"hwnas: failed: {type(exc).__name__}: {exc} (HWNAS_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
