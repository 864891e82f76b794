"""`hwnas profile`: measure a space on this device."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, progress_bar, supernet_option
from hwnas.distributed.fleet_command import fleet_options


@click.command()
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
@fleet_options
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
