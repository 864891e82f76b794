"""``hwnas profile --fleet``: profile every labelled device of a Ray cluster from one command.

A node names the device it is with a custom resource, ``device:<NAME>`` (``ray start
--resources '{"device:xeon-8380": 1}'``). :func:`profile_fleet` sends one profiling job to each
labelled device (or to those named), pinned there by that resource, so each device is measured
on its own hardware with its own execution provider (``--ep`` when given, else CUDA where the
node's ONNX Runtime has it, else CPU). Profiles are written on the driver, one per device:
``DIR/<NAME>.json``.

Resume and faults. The job runs the ordinary :class:`~hwnas.profiling.profiler.Profiler` on a
scratch copy of the device's profile (sent from DIR, so an interrupted device resumes where it
stopped) and streams a snapshot of it back at most every ``snapshot_s`` seconds and at the end;
the driver writes each snapshot atomically. A node that disappears mid-profile therefore leaves
``DIR/<NAME>.json`` holding what had been measured, and rerunning resumes it. A worker that
crashes while its node stays in the cluster is resubmitted, resuming from the last snapshot
(up to ``retries`` times); jobs are not retried by Ray itself because a retry pinned to a node
that left would wait for its resource for ever. A device that fails is reported by name; the
others still arrive.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.distributed import connect, require_ray
from hwnas.errors import InputError
from hwnas.fileio import atomic_write_text

PREFIX = "device:"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class FleetJob:
    """One device's profiling job (picklable): what the node runs.

    Attributes:
        space, plugin: the space (and plug-in ``MODULE:FACTORY``) to profile.
        ep: ``"cpu"``, ``"cuda"`` or None (the node picks: CUDA when available, else CPU).
        threads: intra-op threads, None for the node's physical cores.
        shape: shape overrides, e.g. ``{"batch": 1}``.
        quick: :meth:`~hwnas.profiling.profiler.MeasurePolicy.quick`.
        snapshot_s: least seconds between two snapshots sent back.
    """

    space: str
    plugin: str | None
    ep: str | None = None
    threads: int | None = None
    shape: dict[str, int | None] = field(default_factory=dict)
    quick: bool = False
    snapshot_s: float = 1.0


@dataclass
class DeviceResult:
    """How one device's profiling ended.

    Attributes:
        device: its label (``NAME`` of ``device:NAME``).
        path: its profile file.
        status: ``"complete"``, ``"incomplete"`` (some items failed) or ``"failed"``.
        measured: items measured in this run (0 when the profile was already complete).
        summary: the profile's facts (device id, ep, blocks, calibration, failures) when known.
        error: one line, when it failed.
    """

    device: str
    path: Path
    status: str = "failed"
    measured: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# On the node
# ---------------------------------------------------------------------------------------------
def _node_ep(requested: str | None) -> str:
    if requested is not None:
        return requested
    import onnxruntime as ort

    return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


def profile_on_node(job: FleetJob, device: str, existing: str | None) -> Iterator[tuple[str, Any]]:
    """Profile this node (a Ray streaming-generator task; also callable directly).

    Args:
        job: what to measure.
        device: the device label (names the scratch file).
        existing: the device's profile text so far (resumed), or None.
    Yields:
        ``("start", n_items)`` once; ``("item", "stage key")`` after each item;
        ``("snapshot", profile_text)`` at most every ``job.snapshot_s`` s and after the last
        item; finally ``("done", summary)`` or ``("error", message)``.
    """
    scratch = Path(tempfile.mkdtemp(prefix="hwnas-fleet-")) / f"{device}.json"
    if existing is not None:
        scratch.write_text(existing)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            from hwnas.profiling.profiler import MeasurePolicy, Profiler
            from hwnas.supernets.registry import get_supernet

            ep = _node_ep(job.ep)
            profiler = Profiler(get_supernet(job.space, job.plugin), scratch, ep=ep, threads=job.threads,
                                shape=dict(job.shape), policy=MeasurePolicy.quick() if job.quick else MeasurePolicy())
            result = profiler.run(progress=lambda stage, key: events.put(("item", f"{stage} {key}")),
                                  on_start=lambda n: events.put(("start", n)))
            events.put(("done", {"device_id": result.device["id"], "ep": ep, "threads": profiler.threads,
                                 "complete": result.complete, "blocks": len(result.blocks),
                                 "calibration": len(result.calibration),
                                 "noise_floor": result.noise_floor.get("median_rel_diff"),
                                 "failures": dict(result.failures)}))
        except BaseException as exc:  # noqa: BLE001 (anything: reported to the driver by device name)
            text = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            events.put(("error", text.splitlines()[0][:300] if text else type(exc).__name__))

    thread = threading.Thread(target=work, name=f"profile-{device}", daemon=True)
    thread.start()
    last = time.monotonic()
    try:
        while True:
            kind, payload = events.get()
            if kind in ("done", "error"):
                thread.join()
                if scratch.exists():
                    yield "snapshot", scratch.read_text()
                yield kind, payload
                return
            yield kind, payload
            if kind == "item" and time.monotonic() - last >= job.snapshot_s and scratch.exists():
                last = time.monotonic()
                yield "snapshot", scratch.read_text()  # saved atomically by the profiler
    finally:
        if not thread.is_alive():
            shutil.rmtree(scratch.parent, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# On the driver
# ---------------------------------------------------------------------------------------------
def cluster_devices(ray: Any) -> list[str]:
    """Device labels (``device:NAME`` custom resources) of the live nodes, sorted."""
    names = set()
    for node in ray.nodes():
        if node.get("Alive"):
            names.update(k[len(PREFIX):] for k in node.get("Resources", {}) if k.startswith(PREFIX))
    return sorted(names)


def check_devices(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The devices to profile: ``requested`` (checked against the cluster) or all ``available``.

    Raises:
        InputError: no labelled device in the cluster, a name unknown there, a name that is not
            a plain file name, or a name given twice.
    """
    if not available:
        raise InputError("--fleet found no device in the Ray cluster: start nodes with "
                         "`ray start --resources '{\"device:NAME\": 1}'`")
    for name in requested:
        if not name or set(name) - NAME_CHARS:
            raise InputError(f"--device {name!r} must be letters, digits, '.', '_' or '-'")
        if name not in available:
            raise InputError(f"--device {name!r} is not in the Ray cluster (devices: {', '.join(available)})")
    if len(set(requested)) != len(requested):
        dup = next(n for n in requested if list(requested).count(n) > 1)
        raise InputError(f"--device {dup!r} is given twice")
    for name in available:
        if set(name) - NAME_CHARS:
            raise InputError(f"device label {PREFIX}{name!r} in the cluster cannot name a file; rename it")
    return list(requested) if requested else list(available)


ProgressFn = Callable[[str, str, Any], None]  # (device, "start"|"item"|"done"|"error", payload)


def profile_fleet(job: FleetJob, out_dir: str | Path, devices: Sequence[str] = (), address: str | None = None,
                  progress: ProgressFn | None = None, retries: int = 2) -> list[DeviceResult]:
    """Profile each device of the cluster on itself into ``out_dir``/<device>.json.

    Args:
        job: what to measure (the same on every device, except the ep when ``job.ep`` is None).
        out_dir: the directory of profile files (created).
        devices: labels to profile; empty: every labelled device of the cluster.
        address: Ray cluster to join; None: a local instance (or the Ray already initialised).
        progress: called from the devices' threads as their events arrive.
        retries: resubmissions of a device whose worker crashed while its node stayed.
    Returns:
        one :class:`DeviceResult` per device, in ``devices`` order.
    Raises:
        InputError: Ray missing, no cluster, unknown device, ``out_dir`` not a writable directory.
    """
    ray = require_ray("--fleet")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} must be a directory with --fleet (one profile per device)")
    out.mkdir(parents=True, exist_ok=True)
    owns = connect(ray, address)
    try:
        names = check_devices(list(devices), cluster_devices(ray))
        results = [DeviceResult(name, out / f"{name}.json") for name in names]
        remote = ray.remote(num_returns="streaming", max_retries=0, num_cpus=1)(profile_on_node)
        threads = [threading.Thread(target=_drive_device, args=(ray, remote, job, r, progress, retries),
                                    name=f"fleet-{r.device}", daemon=True) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # wakes for Ctrl-C
        return results
    finally:
        if owns:
            ray.shutdown()


def _drive_device(ray: Any, remote: Any, job: FleetJob, result: DeviceResult, progress: ProgressFn | None,
                  retries: int) -> None:
    """Run one device's job, writing its snapshots, resubmitting after a worker crash."""
    for attempt in range(retries + 1):
        existing = result.path.read_text() if result.path.exists() else None
        stream = remote.options(resources={PREFIX + result.device: 1}).remote(job, result.device, existing)
        try:
            for ref in stream:
                kind, payload = ray.get(ref)
                if kind == "snapshot":
                    atomic_write_text(result.path, payload)
                    continue
                if kind == "item":
                    result.measured += 1
                if kind == "done":
                    result.summary = payload
                    result.status = "complete" if payload["complete"] else "incomplete"
                elif kind == "error":
                    result.error = payload
                if progress is not None:
                    progress(result.device, kind, payload)
            return
        except ray.exceptions.RayError as exc:
            alive = result.device in cluster_devices(ray)
            result.error = (f"worker lost ({type(exc).__name__})" if alive else
                            "its node left the Ray cluster") + f"; {result.path} is resumable"
            if not alive or attempt == retries:
                if progress is not None:
                    progress(result.device, "error", result.error)
                return
        except Exception as exc:  # noqa: BLE001 (writing the profile, a bad message: this device only)
            result.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if progress is not None:
                progress(result.device, "error", result.error)
            return


__all__ = ["DeviceResult", "FleetJob", "check_devices", "cluster_devices", "profile_fleet", "profile_on_node"]
