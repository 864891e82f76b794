"""``hwnas profile --fleet``: the options, and the command body (checks, a progress bar per
device, the summary).

:func:`fleet_options` decorates the ``profile`` command: it adds ``--fleet``, ``--device`` and
``--ray-address`` and, when one of them is given, hands the command's arguments to
:func:`run_fleet` instead of profiling this machine. Importing this module does not import Ray.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hwnas.commands.common import emit, parse_shape, progress_bar
from hwnas.distributed import require_ray
from hwnas.errors import InputError


def fleet_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the fleet options to ``hwnas profile`` and branch to :func:`run_fleet` when used."""

    @click.option("--fleet", is_flag=True,
                  help="Profile every device of a Ray cluster (nodes started with a 'device:NAME' resource), each on "
                       "itself, into --out DIR/NAME.json; resumable per device (needs hwnas[ray]).")
    @click.option("--device", "devices", multiple=True, metavar="NAME",
                  help="With --fleet: profile only this device (repeatable) [default: every labelled device].")
    @click.option("--ray-address", default=None, metavar="ADDR",
                  help="With --fleet: the cluster to join (e.g. auto, ray://head:10001) [default: the cluster this "
                       "machine is in, else a new local instance].")
    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx: click.Context, /, *args: Any, fleet: bool, devices: tuple[str, ...], ray_address: str | None,
                **kwargs: Any) -> None:
        if not (fleet or devices or ray_address is not None):
            return command(*args, **kwargs)
        explicit_ep = ctx.get_parameter_source("ep") is not click.core.ParameterSource.DEFAULT
        run_fleet(fleet=fleet, space=kwargs["space"], plugin=kwargs.get("plugin"),
                  ep=kwargs.get("ep") if explicit_ep else None, out=kwargs["out"], threads=kwargs.get("threads"),
                  shape=_shape(kwargs), quick=bool(kwargs.get("quick")), devices=devices, address=ray_address,
                  as_json=bool(kwargs.get("as_json")))
        return None

    return wrapper


def _shape(kwargs: dict[str, Any]) -> dict[str, int | None]:
    """Shape overrides from the profile command's ``--shape KEY=VALUE``, ``--batch`` and ``--seq-len``."""
    return {"batch": None, **parse_shape(kwargs.get("shape_items") or (), batch=kwargs.get("batch"),
                                          seq_len=kwargs.get("seq_len"))}


def run_fleet(*, fleet: bool, space: str, plugin: str | None, ep: str | None, out: Path, threads: int | None,
              shape: dict[str, int | None], quick: bool, devices: tuple[str, ...], address: str | None,
              as_json: bool) -> None:
    """Profile the cluster's devices into ``out``/<device>.json; exit 1 when any device failed.

    ``ep`` None lets each node pick its provider (CUDA where available, else CPU).
    """
    if not fleet:
        flag = "--device" if devices else "--ray-address"
        raise InputError(f"{flag} needs --fleet")
    require_ray("--fleet")
    from hwnas.distributed.fleet import FleetJob, profile_fleet
    from hwnas.profiling.profiler import resolve_threads
    from hwnas.supernets.registry import get_supernet

    if threads is not None:
        resolve_threads(threads)  # the usual one-line error before any node is asked
    supernet = get_supernet(space, plugin)  # an unknown space fails here, not on every node
    supernet.example_inputs(supernet.resolve_shape(shape))
    job = FleetJob(space=space, plugin=plugin, ep=ep, threads=threads, shape=dict(shape), quick=quick)

    with progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def on_event(device: str, kind: str, payload: Any) -> None:
            if device not in tasks:
                tasks[device] = bar.add_task(f"{device}: {space}", total=None, item="")
            task = tasks[device]
            if kind == "start":
                bar.update(task, total=payload, completed=0)
            elif kind == "item":
                bar.update(task, advance=1, item=str(payload)[:50])
            elif kind == "done":
                bar.update(task, item="complete" if payload["complete"] else "incomplete")
            elif kind == "error":
                bar.update(task, item="failed")

        results = profile_fleet(job, out, devices=devices, address=address, progress=on_event)

    document = {"space": space, "out": str(out), "devices": [
        {"device": r.device, "profile": str(r.path), "status": r.status, "measured": r.measured,
         "error": r.error, **r.summary} for r in results]}
    table = Table(title=f"fleet profile {out}")
    for column in ("device", "status", "device_id", "ep", "blocks", "calibration", "measured now", "profile"):
        table.add_column(column)
    for r in results:
        s = r.summary
        table.add_row(r.device, r.status, str(s.get("device_id", "-")), str(s.get("ep", "-")),
                      str(s.get("blocks", "-")), str(s.get("calibration", "-")), str(r.measured), str(r.path))
    emit(document, as_json, table)
    bad = False
    for r in results:
        if r.error:
            click.echo(f"hwnas: device {r.device} failed: {r.error}", err=True)
            bad = True
        for key, message in r.summary.get("failures", {}).items():
            click.echo(f"hwnas: device {r.device}: failed {key}: {message}", err=True)
            bad = True
    if bad:
        sys.exit(1)
