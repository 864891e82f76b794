"""`hwnas predict` and `hwnas measure`: predicted and measured latency of one configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, parse_shape, shape_option, stderr, supernet_option
from hwnas.errors import InputError

if TYPE_CHECKING:
    from hwnas.supernets.base import Supernet


@click.command()
@click.option("--profile", "profile_path", required=True, type=click.Path(path_type=Path), help="Profile file.")
@click.option("--config", "config_text", required=True, metavar="JSON", help="Configuration.")
@click.option("--shape", "shape_items", multiple=True, metavar="KEY=VALUE",
              help="Expected shape setting, repeatable: refused unless it equals the profile's (a profile "
                   "predicts at the shape it was measured at only).")
@supernet_option
@json_option
def predict(profile_path: Path, config_text: str, shape_items: tuple[str, ...], plugin: str | None,
            as_json: bool) -> None:
    """Predicted end-to-end latency (ms) of one configuration on the profiled device.

    The prediction is at the profile's shape (batch, sequence length, ...). --shape only
    checks it: a value that differs from the profile's is refused (exit 2); profile again with
    that --shape to predict there.
    """
    from hwnas import api
    from hwnas.space import parse_config

    predictor = api.load_predictor(profile_path, plugin=plugin)
    profile, supernet = predictor.profile, predictor.supernet
    config = parse_config(config_text, supernet.space)
    _check_profile_shape(supernet, profile.shape, parse_shape(shape_items), profile_path)
    if profile.noise_warning():
        stderr.print(f"warning: {profile.noise_warning()}", style="yellow", highlight=False)
    for line in predictor.device_warnings():
        stderr.print(f"warning: profile was measured on another device: {line}", style="yellow")
    if not predictor.calibrated:
        stderr.print("warning: profile has no calibration set; predicting the raw LUT sum", style="yellow")
    result = {
        "space": profile.space,
        "config": config,
        "profile": str(profile_path),
        "device_id": profile.device.get("id"),
        "shape": profile.shape,
        "predicted_ms": float(predictor.predict([config])[0]),
        "lut_sum_ms": float(predictor.lut_sum([config])[0]),
        "calibration": predictor.choice.name if predictor.choice else None,
    }
    table = Table(title=f"{profile.space} on {result['device_id']}")
    table.add_column("predicted ms")
    table.add_column("LUT sum ms")
    table.add_column("calibration")
    table.add_row(f"{result['predicted_ms']:.3f}", f"{result['lut_sum_ms']:.3f}", str(result["calibration"]))
    emit(result, as_json, table)


def _check_profile_shape(supernet: Supernet, measured: dict[str, int], wanted: dict[str, int], path: Path) -> None:
    """Raise InputError when a ``--shape`` value is not a shape key or differs from the profile's."""
    supernet.resolve_shape(wanted)  # unknown key / bad value: one line naming it
    for key, value in wanted.items():
        if measured.get(key) != value:
            raise InputError(f"--shape {key}={value}: profile {str(path)!r} was measured at {key}={measured.get(key)}; "
                             f"profile again with --shape {key}={value} to predict there")


@click.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--config", "config_text", required=True, metavar="JSON", help="Configuration.")
@click.option("--ep", type=click.Choice(["cpu", "cuda", "openvino"]), default="cpu", show_default=True)
@click.option("--threads", type=int, default=None, help="Intra-op threads [default: physical cores].")
@click.option("--batch", type=int, default=None, help="Batch size [default: the space's]; same as --shape batch=B.")
@click.option("--seq-len", type=int, default=None,
              help="Sequence length [default: the space's]; same as --shape seq_len=L.")
@shape_option
@supernet_option
@json_option
def measure(space: str, config_text: str, ep: str, threads: int | None, batch: int | None, seq_len: int | None,
            shape_items: tuple[str, ...], plugin: str | None, as_json: bool) -> None:
    """Export and time one sub-network for real (median ms and spread)."""
    from hwnas import api
    from hwnas.profiling.profiler import resolve_threads
    from hwnas.space import parse_config

    supernet = api.get_supernet(space, plugin)
    config = parse_config(config_text, supernet.space)
    shape = supernet.resolve_shape(parse_shape(shape_items, batch=batch, seq_len=seq_len))
    threads = resolve_threads(threads)
    stderr.print(f"measuring {json.dumps(config)} on {ep} with {threads} threads …")
    timing = api.measure(space, config, ep=ep, threads=threads, shape=shape, supernet=supernet)
    result = {"space": space, "config": config, "ep": ep, "threads": threads,
              "shape": shape, **timing.to_dict(), "iqr_ms": timing.iqr_ms}
    table = Table(title=f"{space} on {ep} ({threads} threads)")
    for column in ("median ms", "IQR ms", "p90 ms", "repeats"):
        table.add_column(column)
    table.add_row(f"{timing.median_ms:.3f}", f"{timing.iqr_ms:.3f}", f"{timing.p90_ms:.3f}", str(timing.repeats))
    emit(result, as_json, table)
