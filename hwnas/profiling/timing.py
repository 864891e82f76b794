"""The one ONNX Runtime timing runner (profiler, `hwnas measure`, export verification).

Latency is measured the same way everywhere: fixed intra-op threads, one inter-op thread,
sequential execution, full graph optimisation; warm-up runs, then timed runs with
`time.perf_counter_ns`; the median and spread are reported in milliseconds. Inputs and outputs
are bound once with IOBinding (on the device for CUDA, with synchronisation) so copies are not
timed. There is never a silent fallback: ONNX Runtime only warns when a requested execution
provider is missing and then runs on the CPU provider, so every session's providers are checked
(:func:`require_provider`) and a missing provider is an InputError naming it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import numpy as np
import onnxruntime as ort
import psutil

from hwnas.errors import InputError

EP_NAMES = ("cpu", "cuda", "openvino")
MAX_REPEATS = 100_000  # cap on timed runs when `min_seconds` asks for more than `repeats`

#: ONNX Runtime's name of each execution provider hwnas runs on.
PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "openvino": "OpenVINOExecutionProvider"}
#: Provider options hwnas passes (recorded in the device fingerprint as ``ep_options``).
EP_OPTIONS: dict[str, dict[str, str]] = {"cpu": {}, "cuda": {}, "openvino": {"device_type": "CPU"}}
#: How to get each provider (the error's hint).
SETUP_HINTS = {
    "cuda": "install hwnas[cuda] (onnxruntime-gpu) on a machine with an NVIDIA GPU",
    "openvino": ("install onnxruntime-openvino in its own virtual environment (it replaces the onnxruntime module): "
                 "python -m venv --system-site-packages ~/venv-ov && ~/venv-ov/bin/pip install "
                 "onnxruntime-openvino==1.24.1, then run ~/venv-ov/bin/python -m hwnas.cli (README: OpenVINO)"),
}
_allowed_cores: list[int] | None = None


def _missing(ep: str, what: str) -> InputError:
    return InputError(f"execution provider {ep!r} requested but {what}; {SETUP_HINTS.get(ep, '')} - hwnas never "
                      "falls back to the CPU provider silently")


def check_ep(ep: str) -> None:
    """Raise InputError unless `ep` is a known execution provider usable on this machine (with
    the set-up hint when the installed onnxruntime lacks it)."""
    if ep not in EP_NAMES:
        raise InputError(f"unknown execution provider {ep!r}; choose one of {', '.join(EP_NAMES)}")
    name = PROVIDER_NAMES[ep]
    if name not in ort.get_available_providers():
        raise _missing(ep, f"this onnxruntime ({ort.__version__}) has no {name} "
                           f"(it has {', '.join(ort.get_available_providers())})")


def providers_for(ep: str, threads: int) -> list[tuple[str, dict[str, str]]]:
    """The (provider, options) list a session on `ep` with `threads` threads is made with; the
    CPU provider last, for the nodes the chosen provider does not take.

    OpenVINO runs on its own threads and ignores ONNX Runtime's ``intra_op_num_threads``: it
    is given ``num_of_threads`` (on the 2-core AMD EPYC a 1-thread OpenVINO session of a BERT
    layer ran at 2 threads' speed without it, 11.6-12.5 ms against 21.2-22.6 ms with it, unless
    the process was pinned to one core, which not every OS permits:
    ``tools/probe_openvino_threads.py``)."""
    options = dict(EP_OPTIONS[ep])
    if ep == "openvino":
        options["num_of_threads"] = str(threads)
    chosen = [(PROVIDER_NAMES[ep], options)]
    return chosen if ep == "cpu" else chosen + [("CPUExecutionProvider", {})]


def require_provider(session: ort.InferenceSession, ep: str) -> None:
    """Raise InputError when `session` does not run on `ep`'s provider (ONNX Runtime fell back
    to the CPU provider, e.g. the provider failed to initialise)."""
    name = PROVIDER_NAMES[ep]
    if name not in session.get_providers():
        raise _missing(ep, f"ONNX Runtime could not initialise {name} for this model and fell back to "
                           f"{', '.join(session.get_providers())}")


def make_session(
    model: bytes | str | os.PathLike, ep: str, threads: int
) -> ort.InferenceSession:
    """A session for a serialized model or .onnx path on `ep` with `threads` intra-op threads."""
    check_ep(ep)
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    names, options = zip(*providers_for(ep, threads))
    session = ort.InferenceSession(model, so, providers=list(names), provider_options=list(options))
    require_provider(session, ep)
    return session


def nodes_by_provider(model: bytes | str | os.PathLike, ep: str, threads: int,
                      feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """How many graph nodes ran on each execution provider in one run of `model` on `ep`, from
    ONNX Runtime's session profiling (nodes after graph optimisation; a provider that compiles a
    subgraph, as OpenVINO does, counts as one node per fused subgraph)."""
    import json
    import tempfile

    check_ep(ep)
    with tempfile.TemporaryDirectory(prefix="hwnas-placement-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "run")
        names, options = zip(*providers_for(ep, threads))
        session = ort.InferenceSession(os.fspath(model) if isinstance(model, os.PathLike) else model, so,
                                       providers=list(names), provider_options=list(options))
        require_provider(session, ep)
        session.run(None, feeds)
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    counts: dict[str, int] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            provider = str(event.get("args", {}).get("provider", "unknown"))
            counts[provider] = counts.get(provider, 0) + 1
    return counts


def pin_threads(threads: int) -> list[int] | None:
    """Pin this process to the first `threads` cores it was allowed to use; return them.

    Affects the whole process (ORT's worker threads included). The allowed set is read on the
    first call, so later calls may pin to more cores again. Returns None where the OS does not
    support or permit pinning.
    """
    global _allowed_cores
    if not hasattr(psutil.Process, "cpu_affinity"):
        return None
    try:
        proc = psutil.Process()
        if _allowed_cores is None:
            _allowed_cores = sorted(proc.cpu_affinity())
        cores = _allowed_cores[: max(threads, 1)]
        proc.cpu_affinity(cores)
        return cores
    except (psutil.Error, OSError, ValueError):
        return None


@contextmanager
def pinned(threads: int) -> Iterator[list[int] | None]:
    """Pin this process to its first ``threads`` allowed cores (:func:`pin_threads`) inside the
    block and give it back the affinity it had afterwards, so a profile or measurement made from a
    notebook or a test does not leave the process (and every process it starts) on fewer cores."""
    try:
        before = psutil.Process().cpu_affinity() if hasattr(psutil.Process, "cpu_affinity") else None
    except (psutil.Error, OSError):
        before = None
    try:
        yield pin_threads(threads)
    finally:
        if before is not None:
            try:
                psutil.Process().cpu_affinity(before)
            except (psutil.Error, OSError, ValueError):
                pass


@contextmanager
def raised_priority(niceness: int | None) -> Iterator[int | None]:
    """Measure at scheduling niceness ``niceness`` (lower is a higher priority; -20 the highest)
    inside the block, where this process may raise its priority (root, CAP_SYS_NICE or an
    RLIMIT_NICE that allows it), and give the old niceness back afterwards.

    Why: a CPU-bound program at normal priority on one of the profiler's cores then yields that
    core to the measurement instead of sharing it (on this project's 2-core VM a busy loop on one
    core made a 2-thread bert-ose layer 2.11x slower at niceness 0 and 1.05x at -20:
    ``python tools/bench_session_noise.py priority``). Linux keeps the niceness per thread: it
    applies to this thread and to the threads started from it inside the block, which is where
    ONNX Runtime creates each session's intra-op thread pool.

    Yields the niceness in effect when it was lowered to ``niceness``, else None (not asked for,
    not lower than the current one, or not permitted: measurement goes on at normal priority).
    """
    before = None
    if niceness is not None and hasattr(os, "setpriority"):
        try:
            current = os.getpriority(os.PRIO_PROCESS, 0)
            if niceness < current:
                os.setpriority(os.PRIO_PROCESS, 0, niceness)
                before = current
        except OSError:  # PermissionError: this user may not raise its priority
            before = None
    if before is None:  # the block's own errors must not reach the except above
        yield None
        return
    try:
        yield niceness
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)  # lowering one's priority is always allowed
        except OSError:
            pass


@dataclass(frozen=True)
class Timing:
    """Latency of one model: quantiles of the timed runs in ms.

    `repeats` is the number of timed runs actually done, `warmup` the untimed runs before them,
    `run_seconds` the total wall time in seconds spent inside session runs, warm-up included.
    """

    median_ms: float
    q1_ms: float
    q3_ms: float
    p90_ms: float
    min_ms: float
    repeats: int
    warmup: int
    run_seconds: float

    @property
    def iqr_ms(self) -> float:
        """Interquartile range q3 - q1 in ms."""
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Timing:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def time_session(
    session: ort.InferenceSession,
    feeds: dict[str, np.ndarray],
    *,
    warmup: int,
    repeats: int,
    min_seconds: float = 0.0,
    warmup_seconds: float = 0.0,
    warmup_cap_seconds: float = math.inf,
) -> Timing:
    """Time `session` on `feeds` (input name -> array of the input's shape).

    Runs at least `warmup` untimed runs, continuing until they add up to `warmup_seconds` (a new
    session's first runs are slow for a while: on a 2-core AMD EPYC a 0.4 ms BERT layer's
    session-to-session spread of medians fell from 22% after 2 warm-up runs to 6% after 50); the
    warm-up also ends, after at least 2 runs, once its runs add up to `warmup_cap_seconds` (the
    first runs of a 250 ms BERT sub-network's new sessions were no slower than its later ones:
    `python tools/bench_session_noise.py first-runs`). Then at least `repeats` timed runs, continuing until the timed runs add up to
    `min_seconds` seconds (at most MAX_REPEATS runs).
    """
    if repeats < 1 or warmup < 0:
        raise InputError(f"need repeats >= 1 and warmup >= 0, got {repeats=}, {warmup=}")
    # IOBinding on CPU too: for a 1x64 MatMul+Relu it costs ~3.6 us per run against ~6.4 us
    # for session.run (no per-run numpy conversion of inputs and outputs).
    device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
    io = session.io_binding()
    # A CPU OrtValue wraps the array's memory: keep the values (and so the arrays) alive.
    values = {
        name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), device, 0)
        for name, arr in feeds.items()
    }
    for name, value in values.items():
        io.bind_ortvalue_input(name, value)
    for out in session.get_outputs():
        io.bind_output(out.name, device)
    io.synchronize_inputs()

    def run() -> int:
        t0 = time.perf_counter_ns()
        session.run_with_iobinding(io)
        io.synchronize_outputs()
        return time.perf_counter_ns() - t0

    run_ns, warm_runs = 0, 0
    cap_ns = warmup_cap_seconds * 1e9
    while warm_runs < warmup or (run_ns < warmup_seconds * 1e9 and warm_runs < MAX_REPEATS):
        if warm_runs >= 2 and run_ns >= cap_ns:
            break
        run_ns += run()
        warm_runs += 1
    times: list[int] = []
    min_ns = min_seconds * 1e9
    timed_ns = 0
    while len(times) < repeats or (timed_ns < min_ns and len(times) < MAX_REPEATS):
        dt = run()
        times.append(dt)
        timed_ns += dt
    ms = np.asarray(times, dtype=np.float64) / 1e6
    q1, med, q3, p90 = np.percentile(ms, [25, 50, 75, 90])
    return Timing(
        median_ms=float(med),
        q1_ms=float(q1),
        q3_ms=float(q3),
        p90_ms=float(p90),
        min_ms=float(ms.min()),
        repeats=len(times),
        warmup=warm_runs,
        run_seconds=(run_ns + timed_ns) / 1e9,
    )


def noise_floor(a: Timing, b: Timing) -> float:
    """Relative difference |a - b| / mean(a, b) of the medians of two independent sessions."""
    mean = (a.median_ms + b.median_ms) / 2
    return abs(a.median_ms - b.median_ms) / mean if mean > 0 else 0.0
