"""INT8 profiles (quantized as export quantizes; never resumed into an FP32 one), execution
provider checks (no silent fallback, the OpenVINO set-up hint, nodes per provider), and the
noisy-profile warning in predict, search and export."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

import hwnas.deploy.quantize
import hwnas.profiling.profiler as profiler_module
from hwnas.deploy.measure import measurement_for
from hwnas.deploy.pipeline import deploy
from hwnas.errors import InputError
from hwnas.onnx_export import export_onnx_bytes
from hwnas.predictors.profiles import load_profiles
from hwnas.profiling import precision
from hwnas.profiling.fingerprint import device_fingerprint, device_id, fingerprint_differences
from hwnas.profiling.profile import load_profile
from hwnas.profiling.profiler import MeasurePolicy, Profiler
from hwnas.profiling.timing import check_ep, nodes_by_provider, require_provider

from inprocess import hwnas as run_here  # noqa: E402 (tests/ is on sys.path under pytest; main() in this process)
from test_deploy import write_profile  # noqa: E402

TINY = MeasurePolicy(warmup=1, repeats=2, min_seconds=0.0, calibration_size=5, calibration_min_seconds=0.0,
                     noise_blocks=2, rounds=2, max_passes=1, interference_max=64.0, beside_max=64.0,
                     warmup_seconds=0.0, wait_seconds=0.0)
SHAPE = {"batch": 1, "seq_len": 8}
OPENVINO = "OpenVINOExecutionProvider" in ort.get_available_providers()


def tiny_model() -> bytes:
    layer = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    return export_onnx_bytes(layer, {"x": torch.zeros(1, 16).numpy()}, ["y"])


def test_int8_profile_quantizes_as_export_does_and_is_kept_apart_from_fp32(tmp_path, bert_nets, monkeypatch):
    assert hwnas.deploy.quantize.quantize_dynamic_int8 is precision.quantize_dynamic_int8  # one quantizer
    quantized: list[list[str]] = []

    def spy(src, dst):
        precision.quantize_dynamic_int8(src, dst)
        quantized.append([n.op_type for n in onnx.load(str(dst)).graph.node])

    monkeypatch.setattr(profiler_module, "quantize_dynamic_int8", spy)
    net = bert_nets("bert-mini")
    out = tmp_path / "int8.json"
    profile = Profiler(net, out, threads=1, shape=SHAPE, policy=TINY, precision="int8").run()
    assert profile.complete and profile.precision == "int8"
    assert len(quantized) == len(profile.blocks) + len(profile.calibration)  # every item, once
    assert all("DynamicQuantizeLinear" in ops for ops in quantized if "MatMul" in ops or "MatMulInteger" in ops)
    assert sum("MatMulInteger" in ops for ops in quantized) >= len(profile.calibration)
    assert profile.settings["quantization"] == precision.INT8_METHOD
    assert profile.device["precision"] == "int8" and "-int8-" in profile.device["id"]
    before = out.read_bytes()
    with pytest.raises(InputError, match="precision: 'int8' in file vs 'fp32' now"):
        Profiler(net, out, threads=1, shape=SHAPE, policy=TINY, precision="fp32")
    assert out.read_bytes() == before
    with pytest.raises(InputError, match="precision 'int4'"):
        Profiler(net, tmp_path / "x.json", threads=1, shape=SHAPE, policy=TINY, precision="int4")


def test_precision_separates_device_ids_and_old_fp32_ids_stay():
    fp32, int8 = device_fingerprint("cpu", 1), device_fingerprint("cpu", 1, precision="int8")
    assert device_id(fp32) != device_id(int8) and device_id(int8).startswith("cpu-int8-")
    old = {k: v for k, v in fp32.items() if k != "precision"}  # a profile made before INT8
    assert device_id(old) == device_id(fp32) and fingerprint_differences(old, fp32) == []
    assert fingerprint_differences(fp32, int8) == ["precision: 'fp32' (profile) vs 'int8' (this machine)"]
    committed = json.loads((Path(__file__).parents[1] / "profiles" / "bert-mini-cpu.json").read_text())
    assert device_id(committed["device"]) == committed["device"]["id"]


def test_int8_export_compares_int8_models_with_the_int8_profile(tmp_path, bert_nets):
    net = bert_nets("bert-mini")
    fp32_path = write_profile(net, tmp_path / "fp32.json")
    data = json.loads(fp32_path.read_text())
    fingerprint = device_fingerprint("cpu", 1, precision="int8")
    data["device"] = {**fingerprint, "id": device_id(fingerprint)}
    data["settings"]["precision"] = "int8"
    for block in data["blocks"].values():
        block["median_ms"] *= 0.5
    int8_path = tmp_path / "int8.json"
    int8_path.write_text(json.dumps(data))
    refs = load_profiles([fp32_path, int8_path], net)
    labels = {ref.predictor.profile.precision: ref.label for ref in refs}
    config = net.space.sample(1, seed=0)[0]
    manifest = deploy(net, [{"config": config}], tmp_path / "models", measurement=measurement_for(net, refs),
                      profiles=refs, int8=True)
    (model,) = manifest["models"]
    assert list(model["predicted_ms"]) == [labels["fp32"]]
    variant = model["int8"]
    assert list(variant["predicted_ms"]) == [labels["int8"]]
    predicted = variant["predicted_ms"][labels["int8"]]
    assert predicted == pytest.approx(refs[1].predictor.predict([config])[0])
    assert variant["prediction_error"][labels["int8"]] == pytest.approx(
        (predicted - variant["measured_ms"]) / variant["measured_ms"])


def test_a_session_that_fell_back_to_the_cpu_is_refused():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: no fallback to provoke")
    # ONNX Runtime only warns about the missing provider and runs on the CPU provider
    session = ort.InferenceSession(tiny_model(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(InputError, match="could not initialise CUDAExecutionProvider.*fell back to "
                                         "CPUExecutionProvider"):
        require_provider(session, "cuda")
    require_provider(session, "cpu")


def test_nodes_by_provider_counts_the_nodes_that_ran():
    counts = nodes_by_provider(tiny_model(), "cpu", 1, {"x": torch.zeros(1, 16).numpy()})
    assert set(counts) == {"CPUExecutionProvider"} and counts["CPUExecutionProvider"] >= 2  # Gemm (+Relu), Gemm


@pytest.mark.skipif(OPENVINO, reason="onnxruntime-openvino is installed here: the provider is present")
def test_openvino_without_the_provider_exits_2_with_the_setup_hint(tmp_path):
    with pytest.raises(InputError, match="OpenVINOExecutionProvider.*pip install onnxruntime-openvino"):
        check_ep("openvino")
    done = run_here("profile", "--space", "bert-mini", "--ep", "openvino", "--quick", "--out", str(tmp_path / "p.json"))
    assert done.returncode == 2, done.stderr
    assert "OpenVINOExecutionProvider" in done.stderr and "onnxruntime-openvino" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.json").exists()


@pytest.mark.skipif(not OPENVINO, reason="needs onnxruntime-openvino (a separate environment, see the README)")
def test_openvino_profile_runs_on_openvino_and_reports_node_placement(tmp_path, bert_nets):
    profile = Profiler(bert_nets("bert-mini"), tmp_path / "ov.json", ep="openvino", threads=1, shape=SHAPE,
                       policy=TINY).run()
    assert profile.complete and profile.device["execution_provider"] == "openvino"
    assert profile.device["ep_options"] == {"device_type": "CPU"}
    assert profile.placement["nodes_by_provider"].get("OpenVINOExecutionProvider", 0) > 0


def test_noisy_profile_is_warned_about_by_predict_search_and_export(tmp_path, bert_nets, capsys):
    from hwnas.cli import main  # in this process: four interpreters importing torch would cost seconds each

    def said(*args: str) -> tuple[str, str]:
        """(stdout, stderr with rich's line wrapping undone) of a command that succeeds."""
        main(list(args))
        out, err = capsys.readouterr()
        return out, " ".join(err.split())

    net = bert_nets("bert-mini")
    path = write_profile(net, tmp_path / "noisy.json")
    data = json.loads(path.read_text())
    data["noise"] = {"noisy": True, "unclean_count": 7, "items": 11, "touched": {"interference": 22},
                     "interference_cores": {"median": 0.98, "max": 1.02}, "reference_drift_max": 0.31,
                     "round_spread_median": 0.04, "round_spread_max": 0.5}
    path.write_text(json.dumps(data))
    assert load_profile(path).noisy
    config = json.dumps(net.space.sample(1, seed=0)[0])
    _, err = said("predict", "--profile", str(path), "--config", config, "--json")
    assert "is noisy: 7 of 11 items" in err and "1.02 cores" in err and "drifted up to 31%" in err
    _, err = said("search", "--space", "bert-mini", "--algo", "random", "--objectives", "params,latency",
                  "--evals", "12", "--population", "12", "--profile", str(path), "--out", str(tmp_path / "run"),
                  "--json")
    assert "is noisy: 7 of 11 items" in err
    _, err = said("export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "models"), "--top", "1",
                  "--threads", "1")
    manifest = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert any("is noisy: 7 of 11 items" in w for w in manifest["warnings"])
    assert "is noisy" in err
    clean = write_profile(net, tmp_path / "clean.json")
    _, err = said("predict", "--profile", str(clean), "--config", config, "--json")
    assert "noisy" not in err


def test_profile_cli_int8_quick_records_precision(tmp_path, monkeypatch):
    # --quick with the interference threshold out of reach and no re-measurement passes (as TINY):
    # this checks what is recorded, and a loaded machine made it re-measure for a minute.
    quick = dataclasses.replace(MeasurePolicy.quick(), interference_max=64.0, beside_max=64.0, max_passes=0,
                                wait_seconds=0.0)
    monkeypatch.setattr(MeasurePolicy, "quick", classmethod(lambda cls: quick))
    out = tmp_path / "p.json"
    done = run_here("profile", "--space", "bert-mini", "--precision", "int8", "--quick", "--threads", "1",
                    "--seq-len", "8", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["precision"] == "int8" and "-int8-" in summary["device_id"] and summary["blocks"] == 11
    bad = run_here("profile", "--space", "bert-mini", "--precision", "int4", "--out", str(tmp_path / "q.json"))
    assert bad.returncode == 2 and "int4" in bad.stderr
    assert os.path.exists(out)


def test_openvino_sessions_are_given_the_thread_count():
    # OpenVINO ignores ONNX Runtime's intra_op_num_threads; without its own option a `--threads 1`
    # profile would time OpenVINO on every core wherever the process cannot be pinned.
    from hwnas.profiling.timing import providers_for

    openvino = {"device_type": "CPU", "num_of_threads": "3"}
    assert providers_for("openvino", 3) == [("OpenVINOExecutionProvider", openvino), ("CPUExecutionProvider", {})]
    assert providers_for("cpu", 3) == [("CPUExecutionProvider", {})]
