"""Tests for hwnas.profiling.timing (CPU here; the CUDA test runs only with onnxruntime-gpu)."""

import os
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwnas.errors import InputError
from hwnas.profiling.timing import (
    Timing,
    check_ep,
    make_session,
    noise_floor,
    pin_threads,
    time_session,
)

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def tiny_model() -> bytes:
    """MatMul (64x64) + Relu on input x of shape [1, 64], serialized."""
    w = numpy_helper.from_array(np.random.default_rng(0).random((64, 64), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def feeds() -> dict:
    return {"x": np.ones((1, 64), dtype=np.float32)}


def time_model(model, feeds, *, ep: str, threads: int, warmup: int, repeats: int, min_seconds: float = 0.0):
    """A new session for ``model`` timed with the profiler's runner."""
    return time_session(make_session(model, ep, threads), feeds, warmup=warmup, repeats=repeats,
                        min_seconds=min_seconds)


def test_time_model_quantiles(tiny_model, feeds):
    t = time_model(tiny_model, feeds, ep="cpu", threads=1, warmup=3, repeats=50)
    assert 0 < t.min_ms <= t.q1_ms <= t.median_ms <= t.q3_ms <= t.p90_ms
    assert t.repeats == 50 and t.warmup == 3
    assert t.run_seconds > 0
    assert t.iqr_ms == pytest.approx(t.q3_ms - t.q1_ms)
    assert Timing.from_dict(t.to_dict()) == t


def test_min_seconds_extends_repeats(tiny_model, feeds):
    t = time_model(tiny_model, feeds, ep="cpu", threads=1, warmup=0, repeats=5, min_seconds=0.02)
    assert t.repeats > 5
    assert t.run_seconds >= 0.02


def test_warmup_cap_stops_warmup_after_two_runs(tiny_model, feeds):
    session = make_session(tiny_model, "cpu", 1)
    # A cap already reached: 2 warm-up runs, not the 5 asked for nor the 0.05 s.
    capped = time_session(session, feeds, warmup=5, warmup_seconds=0.05, warmup_cap_seconds=0.0, repeats=3)
    assert capped.warmup == 2
    # No cap: the count and then the seconds (a ~10 µs model needs far more than 5 runs for 0.05 s).
    full = time_session(session, feeds, warmup=5, warmup_seconds=0.05, repeats=3)
    assert full.warmup > 5
    # A cap above what the warm-up needs changes nothing.
    assert time_session(session, feeds, warmup=5, warmup_cap_seconds=10.0, repeats=3).warmup == 5


def test_model_path(tiny_model, feeds, tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_model)
    assert time_model(path, feeds, ep="cpu", threads=1, warmup=1, repeats=3).repeats == 3


def test_session_settings(tiny_model):
    s = make_session(tiny_model, "cpu", 2)
    assert s.get_providers() == ["CPUExecutionProvider"]
    assert s.get_session_options().intra_op_num_threads == 2
    assert s.get_session_options().inter_op_num_threads == 1


def test_threads_zero(tiny_model):
    with pytest.raises(InputError, match="threads"):
        make_session(tiny_model, "cpu", 0)


def test_unknown_ep(tiny_model, feeds):
    with pytest.raises(InputError, match="'tpu'"):
        time_model(tiny_model, feeds, ep="tpu", threads=1, warmup=0, repeats=1)


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has CUDAExecutionProvider")
def test_cuda_unavailable():
    with pytest.raises(InputError, match="onnxruntime-gpu"):
        check_ep("cuda")


@pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime lacks CUDAExecutionProvider")
def test_cuda_time_model(tiny_model, feeds):
    """CUDA session with IOBinding; skipped on CPU-only onnxruntime (as on the dev machine)."""
    s = make_session(tiny_model, "cuda", 1)
    assert s.get_providers()[0] == "CUDAExecutionProvider"
    t = time_session(s, feeds, warmup=3, repeats=20)
    assert 0 < t.min_ms <= t.median_ms <= t.p90_ms and t.repeats == 20


def test_pin_threads():
    cores = pin_threads(1)
    assert cores is None or len(cores) == 1
    pin_threads(1024)  # restore: pins to every core the process was allowed


def test_noise_floor():
    a = Timing(1.0, 0.9, 1.1, 1.2, 0.8, 10, 1, 0.01)
    b = Timing(3.0, 2.9, 3.1, 3.2, 2.8, 10, 1, 0.03)
    assert noise_floor(a, b) == pytest.approx(1.0)
    assert noise_floor(a, a) == 0.0


def test_pinned_gives_the_process_its_cores_back():
    import psutil

    from hwnas.profiling.timing import pinned

    before = psutil.Process().cpu_affinity()
    with pinned(1) as cores:
        assert psutil.Process().cpu_affinity() == cores and len(cores) == 1
    assert psutil.Process().cpu_affinity() == before


def test_raised_priority_applies_to_threads_started_inside_and_is_given_back():
    import threading

    from hwnas.profiling.timing import raised_priority

    before = os.getpriority(os.PRIO_PROCESS, 0)
    seen = {}

    def worker():  # as ONNX Runtime's intra-op threads, started from the measuring thread
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, 0)

    with raised_priority(before - 5) as granted:
        inside = os.getpriority(os.PRIO_PROCESS, 0)
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    after = os.getpriority(os.PRIO_PROCESS, 0)
    assert after == before
    if granted is None:  # not permitted here (no root / CAP_SYS_NICE): measuring goes on unchanged
        assert inside == before
    else:
        assert granted == inside == seen["thread"] == before - 5
    with raised_priority(before + 1) as granted:  # never lowers the priority it has
        assert granted is None and os.getpriority(os.PRIO_PROCESS, 0) == before
    with raised_priority(None) as granted:
        assert granted is None


def test_at_raised_priority_cpu_used_by_others_is_recorded_but_does_not_touch_rounds():
    from hwnas.profiling.profiler import MeasurePolicy, schedule_rules
    from hwnas.profiling.rounds import Load, Sample, Scheduler, noise_report

    # A program at normal priority uses a core all along, but at a raised priority the
    # measurement is not slowed (what tools/bench_interference.py shows on a real busy loop).
    true_ms = {f"i{k}": 1.0 + k for k in range(6)}
    timer = lambda item: Sample(true_ms[item], 1.0)  # noqa: E731
    policy = MeasurePolicy()
    raised = Scheduler(list(true_ms), [], timer, schedule_rules(policy, -20), probe=lambda: Load(1.0)).run()
    noise = noise_report(raised, list(true_ms), schedule_rules(policy, -20))
    assert not noise["noisy"] and noise["touched"] == {} and noise["interference_cores"]["median"] == 1.0
    normal = Scheduler(list(true_ms), [], timer, schedule_rules(policy, None), probe=lambda: Load(1.0)).run()
    assert noise_report(normal, list(true_ms), schedule_rules(policy, None))["noisy"]
    # A program on the cores beside the measurement's is not kept away by the raised priority:
    # it still touches the rounds it ran beside.
    beside = lambda item: Sample(true_ms[item], 0.0, 1.0)  # noqa: E731
    loaded = Scheduler(list(true_ms), [], beside, schedule_rules(policy, -20), probe=lambda: Load(0.0, 1.0)).run()
    assert noise_report(loaded, list(true_ms), schedule_rules(policy, -20))["touched"] == {"beside": 6 * policy.rounds}


def test_raised_priority_lets_the_blocks_own_errors_through():
    from hwnas.profiling.timing import raised_priority

    before = os.getpriority(os.PRIO_PROCESS, 0)
    for niceness in (before + 1, before - 5):  # not lowered / lowered (where permitted)
        with pytest.raises(OSError, match="disk full"):
            with raised_priority(niceness):
                raise OSError("disk full")
        assert os.getpriority(os.PRIO_PROCESS, 0) == before


TWO_CORES = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores: one measured, one beside it")


def _meter_beside(start_busy, stop_busy):
    """Pinned to the first core, with ``start_busy(core)`` keeping the next core busy: the
    CPU meter's load over 0.6 s, and its probe over 0.4 s."""
    import time

    from hwnas.profiling.profiler import CpuMeter
    from hwnas.profiling.timing import pinned

    allowed = sorted(os.sched_getaffinity(0))
    with pinned(1) as cores:
        assert cores == allowed[:1]
        start_busy(allowed[1])
        try:
            time.sleep(0.4)
            meter = CpuMeter(cores)
            meter.mark()
            time.sleep(0.6)
            return meter.load(), meter.probe(0.4)
        finally:
            stop_busy()


@TWO_CORES
def test_cpu_meter_tells_programs_on_our_cores_from_programs_beside_them():
    import subprocess
    import sys

    from hwnas.profiling.profiler import CpuMeter

    # A real busy loop pinned on the core beside ours: the meter of our core must not count it
    # (it takes none of our CPU), the meter beside must (about one core).
    loops = []
    load, probed = _meter_beside(
        lambda core: loops.append(subprocess.Popen(
            [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True:\n    pass\n"])),
        lambda: [(loop.terminate(), loop.wait()) for loop in loops])
    assert load.beside > 0.7 and load.ours < 0.3, load
    assert probed.beside > 0.7 and probed.ours < 0.3, probed
    assert CpuMeter(None).probe(0.3).beside == 0.0  # metering every core leaves nothing beside


@TWO_CORES
def test_cpu_meter_does_not_count_this_processs_own_threads_beside_as_another_program():
    import threading

    # A thread of this process busy on the core beside (as PyTorch's pool, started before the
    # profiler pinned the process, exports there): not another program.
    stop = threading.Event()

    def spin(core: int) -> None:
        os.sched_setaffinity(0, {core})  # 0: the calling thread
        a = np.ones(2**20)
        b = np.empty_like(a)
        while not stop.is_set():
            np.copyto(b, a)  # without the GIL, as PyTorch's threads work

    threads = []

    def start(core: int) -> None:
        threads.append(threading.Thread(target=spin, args=(core,)))
        threads[0].start()

    def end() -> None:
        stop.set()
        threads[0].join()

    load, _ = _meter_beside(start, end)
    assert load.beside < 0.3, load
