"""Tests for hwnas.profiling.fingerprint."""

import json

from hwnas.profiling.fingerprint import (
    device_fingerprint,
    device_id,
    fingerprint_differences,
)

FIELDS = {
    "cpu_model", "physical_cores", "logical_cores", "memory_gib", "os", "python",
    "onnxruntime", "execution_provider", "ep_options", "intra_op_threads",
}


def test_fields_and_json():
    fp = device_fingerprint("cpu", 2, {"arena": True})
    assert FIELDS <= fp.keys()
    assert fp["execution_provider"] == "cpu" and fp["intra_op_threads"] == 2
    assert fp["ep_options"] == {"arena": True}
    assert json.loads(json.dumps(fp)) == fp


def test_device_id_stable_and_thread_sensitive():
    a, b = device_fingerprint("cpu", 1), device_fingerprint("cpu", 1)
    assert device_id(a) == device_id(b)
    assert device_id(a).startswith("cpu-") and len(device_id(a)) == len("cpu-") + 12
    assert device_id(a) != device_id(device_fingerprint("cpu", 2))


def test_device_id_ignores_run_specific_fields():
    fp = device_fingerprint("cpu", 1)
    assert device_id({**fp, "cpu_affinity": [0], "python": "0.0"}) == device_id(fp)


def test_differences():
    fp = device_fingerprint("cpu", 1)
    assert fingerprint_differences(fp, dict(fp)) == []
    other = {**fp, "cpu_model": "Other CPU"}
    diffs = fingerprint_differences(fp, other)
    assert len(diffs) == 1 and diffs[0].startswith("cpu_model: ")
    assert "'Other CPU' (this machine)" in diffs[0]
