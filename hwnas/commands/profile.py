"""`hwnas profile`: measure a space on this device."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, progress_bar, supernet_option


@click.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--ep", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="ONNX Runtime execution provider.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Profile file (resumed if it exists).")
@click.option("--threads", type=int, default=None, help="Intra-op threads [default: physical cores].")
@click.option("--batch", type=int, default=None, help="Batch size [default: the space's, 1].")
@click.option("--seq-len", type=int, default=None, help="Sequence length [default: the space's].")
@click.option("--quick", is_flag=True, help="Fewer repeats and calibration sub-networks: a first look in a minute.")
@click.option("--fleet", is_flag=True,
              help="Profile every device of a Ray cluster (nodes labelled with a 'device:NAME' resource), each on "
                   "itself, into --out DIR/NAME.json (needs hwnas[ray]).")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="With --fleet: profile only this device (repeatable) [default: every labelled device].")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --fleet: the cluster to join (e.g. auto, ray://head:10001) [default: a local Ray instance].")
@supernet_option
@json_option
@click.pass_context
def profile(ctx: click.Context, space: str, ep: str, out: Path, threads: int | None, batch: int | None,
            seq_len: int | None, quick: bool, fleet: bool, devices: tuple[str, ...], ray_address: str | None,
            plugin: str | None, as_json: bool) -> None:
    """Measure every block of a space and a calibration set of whole sub-networks on this device."""
    if fleet or devices or ray_address is not None:
        from hwnas.distributed.fleet_command import run_fleet

        explicit_ep = ctx.get_parameter_source("ep") is not click.core.ParameterSource.DEFAULT
        run_fleet(fleet=fleet, space=space, plugin=plugin, ep=ep if explicit_ep else None, out=out, threads=threads,
                  shape={"batch": batch, **({"seq_len": seq_len} if seq_len is not None else {})}, quick=quick,
                  devices=devices, address=ray_address, as_json=as_json)
        return
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
