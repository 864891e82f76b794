"""Device fingerprints: what a latency profile was measured on.

A fingerprint is a JSON-serializable dict stored in every profile and run directory. `device_id`
hashes only the fields that change latency, so the same machine, runtime and settings always get
the same id; `fingerprint_differences` says in words why a profile does not match this machine.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess

import onnxruntime
import psutil

# Fields that change latency, in the order they are hashed and compared.
LATENCY_FIELDS = (
    "cpu_model",
    "physical_cores",
    "logical_cores",
    "memory_gib",
    "os_family",
    "onnxruntime",
    "execution_provider",
    "ep_options",
    "intra_op_threads",
    "gpu_name",
    "gpu_memory_gib",
    "driver_version",
    "precision",
)
#: The value a field takes in a fingerprint that predates it (profiles made before INT8 are FP32).
DEFAULTS = {"precision": "fp32"}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _gpu_info() -> dict:
    """Name, memory (GiB) and driver of GPU 0 via nvidia-smi; None fields if unavailable."""
    info = {"gpu_name": None, "gpu_memory_gib": None, "driver_version": None}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        name, mem_mib, driver = (s.strip() for s in out.splitlines()[0].split(","))
        info.update(gpu_name=name, gpu_memory_gib=round(float(mem_mib) / 1024, 1),
                    driver_version=driver)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        pass
    return info


def device_fingerprint(ep: str, threads: int, ep_options: dict | None = None, precision: str = "fp32") -> dict:
    """Describe this machine and the runtime settings a latency is measured under.

    `ep` is "cpu", "cuda" or "openvino"; `threads` the ONNX Runtime intra-op thread count;
    `ep_options` the provider options (default: those hwnas passes to `ep`); `precision` the
    numeric format of the timed models ("fp32", "int8"). GPU fields are
    present only for ep="cuda" (None where nvidia-smi is unavailable). `memory_gib` is total RAM
    in GiB rounded to 0.1.
    """
    fp = {
        "cpu_model": _cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "os_family": platform.system(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "execution_provider": ep,
        "ep_options": dict(ep_options if ep_options is not None else _ep_options(ep)),
        "intra_op_threads": threads,
        "precision": precision,
    }
    if hasattr(psutil.Process, "cpu_affinity"):
        try:
            fp["cpu_affinity"] = sorted(psutil.Process().cpu_affinity())
        except (psutil.Error, OSError):
            pass
    if ep == "cuda":
        fp.update(_gpu_info())
    return fp


def _ep_options(ep: str) -> dict:
    from hwnas.profiling.timing import EP_OPTIONS

    return dict(EP_OPTIONS.get(ep, {}))


def _field(fp: dict, key: str):
    return fp.get(key, DEFAULTS.get(key))


def device_id(fp: dict) -> str:
    """Stable short id "<ep>-<12 hex>" (FP32) or "<ep>-<precision>-<12 hex>" over the
    latency-relevant fields of a fingerprint; the precision is hashed only when it is not FP32,
    so the ids of FP32 profiles made before INT8 existed do not change."""
    key = {k: _field(fp, k) for k in LATENCY_FIELDS if k != "precision"}
    precision = _field(fp, "precision")
    if precision != "fp32":
        key["precision"] = precision
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    ep = fp.get("execution_provider", "cpu")
    return f"{ep}-{digest}" if precision == "fp32" else f"{ep}-{precision}-{digest}"


def fingerprint_differences(expected: dict, actual: dict) -> list[str]:
    """Lines "field: <expected> (profile) vs <actual> (this machine)", one per differing field."""
    return [
        f"{k}: {_field(expected, k)!r} (profile) vs {_field(actual, k)!r} (this machine)"
        for k in LATENCY_FIELDS
        if _field(expected, k) != _field(actual, k)
    ]
