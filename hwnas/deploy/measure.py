"""How exported models are timed on this machine: execution provider, threads, input shape and
the profiler's policy, taken from a run's profile so measured and predicted ms compare. The
timing itself is :func:`hwnas.profiling.profiler.time_whole_model`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from hwnas.errors import InputError
from hwnas.predictors.profiles import ProfileRef
from hwnas.supernets.base import Feeds, Shape, Supernet


@dataclass(frozen=True)
class Measurement:
    """How exported models are timed here: execution provider, intra-op threads, input shape
    (``{"batch", "seq_len"}``) and the profiler's policy (warm-up, repeats, and
    ``calibration_min_seconds`` of timed runs per model, as for a profile's whole sub-networks)."""

    ep: str
    threads: int
    shape: Shape
    policy: Any  # hwnas.profiling.profiler.MeasurePolicy

    def describe(self) -> dict[str, Any]:
        """The manifest's ``measurement``, with this machine's fingerprint."""
        from hwnas.profiling.fingerprint import device_fingerprint, device_id

        fingerprint = device_fingerprint(self.ep, self.threads)  # of the FP32 models; INT8 ones beside them
        return {"ep": self.ep, "threads": self.threads, "shape": self.shape, "policy": asdict(self.policy),
                "device_id": device_id(fingerprint), "device": fingerprint,
                "runner": "hwnas.profiling.timing.time_session (IOBinding, sequential, ORT_ENABLE_ALL)"}


def measurement_for(supernet: Supernet, profiles: Sequence[ProfileRef], ep: str | None = None,
                    threads: int | None = None) -> Measurement:
    """Timing settings: those of the first loaded profile (so measured and predicted ms are
    comparable), overridden by ``ep`` / ``threads``; without a profile: CPU, physical cores,
    the supernet's default shape and the default policy."""
    from hwnas.profiling.profiler import MeasurePolicy, resolve_threads
    from hwnas.profiling.timing import check_ep

    loaded = next((p.predictor.profile for p in profiles if p.predictor is not None), None)
    policy = MeasurePolicy()
    shape = supernet.resolve_shape(None)
    if loaded is not None:
        known = {f.name for f in fields(MeasurePolicy)}
        policy = MeasurePolicy(**{k: v for k, v in dict(loaded.settings.get("policy") or {}).items() if k in known})
        shape = supernet.resolve_shape(loaded.shape)
        ep = ep or loaded.ep
        threads = threads or int(loaded.settings["threads"])
    ep = ep or "cpu"
    try:
        check_ep(ep)
    except InputError as exc:
        raise InputError(f"{exc} (the profile was measured on {ep!r}; pass --ep cpu to time on the CPU)") from None
    return Measurement(ep, resolve_threads(threads), shape, policy)


def time_onnx(model: str | os.PathLike | bytes, feeds: Feeds, measurement: Measurement):
    """Time one ONNX model with the profiler's runner and policy (as
    :func:`hwnas.profiling.profiler.measure_subnet` does, on this file). Returns a Timing (ms)."""
    from hwnas.profiling.profiler import time_whole_model

    return time_whole_model(model, feeds, ep=measurement.ep, threads=measurement.threads, policy=measurement.policy)
