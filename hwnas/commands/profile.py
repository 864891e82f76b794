"""`hwnas profile`: measure a space on this device."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, parse_shape, progress_bar, shape_option, supernet_option
from hwnas.commands.fleet import fleet_options


@click.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--ep", type=click.Choice(["cpu", "cuda", "openvino"]), default="cpu", show_default=True,
              help="ONNX Runtime execution provider (openvino: needs onnxruntime-openvino, see the README).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="Time FP32 models, or INT8 ones quantized as `hwnas export --int8` quantizes.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Profile file (resumed if it exists).")
@click.option("--threads", type=int, default=None, help="Intra-op threads [default: physical cores].")
@click.option("--batch", type=int, default=None, help="Batch size [default: the space's, 1]; same as --shape batch=B.")
@click.option("--seq-len", type=int, default=None,
              help="Sequence length [default: the space's]; same as --shape seq_len=L.")
@shape_option
@click.option("--quick", is_flag=True, help="Fewer repeats and calibration sub-networks: a first look in a minute.")
@supernet_option
@json_option
@fleet_options
def profile(space: str, ep: str, precision: str, out: Path, threads: int | None, batch: int | None, seq_len: int | None,
            shape_items: tuple[str, ...], quick: bool, plugin: str | None, as_json: bool) -> None:
    """Measure every block of a space and a calibration set of whole sub-networks on this device."""
    from hwnas import api
    from hwnas.locking import refuse_if_locked
    from hwnas.profiling.profiler import resolve_threads
    from hwnas.profiling.timing import check_ep

    supernet = api.get_supernet(space, plugin)
    shape = supernet.resolve_shape(parse_shape(shape_items, batch=batch, seq_len=seq_len))
    threads = resolve_threads(threads)
    check_ep(ep)  # a missing provider: one error line with the set-up hint, before the progress bar
    refuse_if_locked(out)  # another profiler writes --out: one error line, before the progress bar
    # The bar starts once the profile at --out is checked (a corrupt or foreign one: one error line).
    bar = progress_bar()
    task = bar.add_task(f"profiling {space} ({ep}, {precision}, {threads} threads)", total=None, item="", start=False)

    def on_start(n: int) -> None:
        bar.start()
        bar.start_task(task)
        bar.update(task, total=n)

    try:
        result = api.profile(space, out, ep=ep, threads=threads, shape=shape, quick=quick, supernet=supernet,
                             precision=precision,
                             progress=lambda stage, key: bar.update(task, advance=1, item=f"{stage} {key}"[:60]),
                             on_start=on_start)
    finally:
        bar.stop()
    summary = {
        "profile": str(out),
        "space": space,
        "device_id": result.device["id"],
        "complete": result.complete,
        "blocks": len(result.blocks),
        "calibration": len(result.calibration),
        "precision": result.precision,
        "noise_floor": result.noise_floor.get("median_rel_diff"),
        "noisy": result.noisy,
        "noise": result.noise,
        "placement": result.placement.get("nodes_by_provider"),
        "failures": result.failures,
        "stats": result.stats,
    }
    table = Table(title=f"profile {out}")
    table.add_column("field")
    table.add_column("value")
    for key in ("device_id", "precision", "complete", "blocks", "calibration"):
        table.add_row(key, str(summary[key]))
    if summary["noise_floor"] is not None:
        table.add_row("round spread (median)", f"{summary['noise_floor']:.1%}")
    table.add_row("noisy", "yes (see the warning)" if result.noisy else "no")
    if summary["placement"]:
        table.add_row("nodes by provider", ", ".join(f"{k}: {v}" for k, v in summary["placement"].items()))
    stats = result.stats
    if stats.get("wall_seconds"):
        table.add_row("wall / in ORT runs", f"{stats['wall_seconds']:.1f} s / {stats['ort_run_seconds']:.1f} s")
    emit(summary, as_json, table)
    if result.noise_warning():
        click.echo(f"hwnas: warning: {result.noise_warning()}", err=True)
    if result.failures:
        for key, message in result.failures.items():
            click.echo(f"hwnas: failed {key}: {message}", err=True)
        sys.exit(1)
