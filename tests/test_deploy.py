"""Deployment: export of a run's Pareto front (FP32 + INT8), the report, and bad inputs.

The run directory is written through the run store (:class:`hwnas.search.store.RunDirectory`,
the writer a search uses) with made-up objective values and a synthetic profile of this machine,
so these tests do not depend on the search algorithms.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hwnas.errors import InputError
from hwnas.evaluation.accuracy import WeightSharingEvaluator
from hwnas.deploy.accuracy import accuracy_source
from hwnas.deploy.pipeline import export_run
from hwnas.deploy.select import spread_along_front
from hwnas.predictors.latency import LatencyPredictor
from hwnas.profiling.fingerprint import device_fingerprint, device_id
from hwnas.profiling.profile import Profile
from hwnas.profiling.profiler import MeasurePolicy
from hwnas.report import build_report, nondominated_2d
from hwnas.search.store import RunDirectory, read_run
from hwnas.supernets.bert import make_bert_supernet

SPACE = "bert-mini"


def write_profile(net, path: Path) -> Path:
    """A synthetic profile of this machine (made-up block medians, no calibration set)."""
    shape = {"batch": 1, "seq_len": 32}
    fingerprint = device_fingerprint("cpu", 1)
    blocks = {}
    for key in net.all_blocks(shape):
        parts = dict(p.split("=") for p in key.split("/")[1:])
        ms = 0.03 if key.startswith(("embed", "head")) else 0.02 + 0.02 * int(parts["A"]) + int(parts["I"]) / 5000
        blocks[key] = {"median_ms": ms, "q1_ms": ms, "q3_ms": ms, "p90_ms": ms, "min_ms": ms,
                       "repeats": 10, "warmup": 2, "run_seconds": 0.01}
    settings = {"ep": "cpu", "threads": 1, "shape": shape, "policy": asdict(MeasurePolicy.quick()),
                "calibration_seed": 0}
    Profile(space=SPACE, device={**fingerprint, "id": device_id(fingerprint)}, settings=settings,
            blocks=blocks, complete=True).save(path)
    return path


def write_run(net, run: Path, profile: Path, *, n: int = 10, status: str = "complete", evals: int | None = None) -> Path:
    """A run directory written by the run store: accuracy (made up, deterministic) and latency
    (predictor); ``status`` and ``evals`` as given."""
    space = net.space
    configs = space.sample(n, seed=3, unique=True)
    latency = LatencyPredictor.load(str(profile), net).predict(configs)
    accuracy = [0.55 + 0.05 * c["D"] + 0.01 * sum(c["A"]) / c["D"] for c in configs]
    ref = (0.5, float(max(latency)) * 1.1)
    meta = {"schema": "hwnas-run/1", "status": "running", "space": SPACE, "plugin": None, "algo": "random",
            "evals": evals or n, "seed": 0,
            "objectives": [{"name": "accuracy", "maximize": True, "unit": ""},
                           {"name": "latency", "maximize": False, "unit": "ms"}],
            "profiles": [{"path": str(profile), "label": "here", "device_id": "test"}],
            "reference_point": list(ref), "settings": {}, "versions": {}, "fingerprints": [],
            "created": "2026-01-01T00:00:00+00:00", "finished": None}
    store = RunDirectory.open(run, meta)
    series = []
    for i, (c, acc, ms) in enumerate(zip(configs, accuracy, latency)):
        store.append({"index": i, "config": c, "key": space.key(c),
                      "objectives": {"accuracy": acc, "latency": float(ms)}, "validated": True, "wall_s": 0.1})
        acc_arr = np.array([r["objectives"]["accuracy"] for r in store.rows])
        lat_arr = np.array([r["objectives"]["latency"] for r in store.rows])
        keep = nondominated_2d(lat_arr, acc_arr, True)
        hv, last = 0.0, ref[1]
        for j in keep[::-1]:  # from slowest to fastest
            hv += (last - lat_arr[j]) * (acc_arr[j] - ref[0])
            last = lat_arr[j]
        series.append(float(hv))
    front = sorted((store.rows[j] for j in keep), key=lambda r: r["objectives"]["accuracy"])
    store.write_pareto(["accuracy", "latency"], front)
    store.write_hypervolume(series)
    store.update(status=status)
    store.close()
    return run


def varied_net():
    """bert-mini with the shipped checkpoint, or (until there is one) with random weights large
    enough that predictions vary from example to example, so accuracy checks mean something."""
    net = make_bert_supernet(SPACE)
    module = net.module()
    if net.checkpoint_meta is None:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in module.parameters():
                if p.dim() == 2:
                    p.copy_(torch.randn(p.shape, generator=generator) / p.shape[1] ** 0.5)
    return net


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A run, and its front exported (top 3, with INT8) with the weight-sharing evaluator."""
    net = varied_net()
    root = tmp_path_factory.mktemp("deploy")
    profile = write_profile(net, root / "profile.json")
    run = write_run(net, root / "run", profile)
    evaluator = WeightSharingEvaluator(net)
    manifest = export_run(run, root / "export", top=3, int8=True, evaluator=evaluator, supernet=net)
    return {"net": net, "root": root, "run": run, "profile": profile, "export": root / "export",
            "manifest": manifest, "evaluator": evaluator}


def test_manifest_fields_and_parity(work):
    manifest, run = work["manifest"], read_run(work["run"])
    on_disk = json.loads((work["export"] / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert manifest["schema"] == "hwnas-export/1" and manifest["space"] == SPACE
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", manifest["created"])  # hwnas.fileio.now_iso
    source = manifest["source"]
    assert source["kind"] == "run" and source["front_size"] == len(run.front)
    positions = source["selection"]["front_positions"]
    assert len(positions) == 3 == len(manifest["models"])
    # both ends of the front along the first objective are always exported
    assert positions[0] == 0 and positions[-1] == len(run.front) - 1
    assert manifest["measurement"]["threads"] == 1 and manifest["measurement"]["shape"] == {"batch": 1, "seq_len": 32}
    assert manifest["profiles"][0]["label"] == "here" and manifest["profiles"][0]["same_device"] is True
    for m, pos in zip(manifest["models"], positions):
        row = run.front[pos]
        assert m["config"] == row["config"] and m["run_index"] == row["index"]
        assert m["objectives"] == row["objectives"]
        assert m["parity_max_abs_diff"] <= 1e-4
        assert m["onnx_params"] == m["params"] == work["net"].count_params(m["config"])
        assert m["measured_ms"] > 0 and m["measured"]["repeats"] >= 10
        # the profile's prediction is the run's latency objective (same predictor, same profile)
        assert m["predicted_ms"]["here"] == pytest.approx(row["objectives"]["latency"], rel=1e-9)
        assert m["prediction_error"]["here"] == pytest.approx(
            (m["predicted_ms"]["here"] - m["measured_ms"]) / m["measured_ms"])
        assert (work["export"] / m["file"]).stat().st_size == m["size_bytes"]


def test_onnx_test_accuracy_matches_pytorch_evaluator(work):
    manifest = work["manifest"]
    assert manifest["accuracy"]["method"].startswith("onnxruntime") and manifest["accuracy"]["examples"] == 2000
    assert manifest["accuracy"]["batch"] == 1
    assert len({m["test_accuracy"] for m in manifest["models"]}) > 1  # not a constant classifier
    for m in manifest["models"]:
        assert 0.0 <= m["test_accuracy"] <= 1.0
        # ONNX Runtime on the exported file vs the weight-sharing PyTorch forward: same model
        assert abs(m["test_accuracy"] - m["evaluator_test_accuracy"]) <= 0.002
    assert not [w for w in manifest["warnings"] if "accuracy" in w]


def test_int8_variant_loads_without_hwnas_and_matches_manifest(work):
    manifest, export = work["manifest"], work["export"]
    assert manifest["int8"]["tool"] == "onnxruntime.quantization.quantize_dynamic"
    files = [(m["file"], m["int8"]["file"]) for m in manifest["models"]]
    for m in manifest["models"]:
        q = m["int8"]
        assert q["file"].endswith(".int8.onnx") and (export / q["file"]).is_file()
        assert q["size_bytes"] < 0.6 * m["size_bytes"]  # int8 weights: well under the FP32 file
        assert q["measured_ms"] > 0 and q["speedup_vs_fp32"] == pytest.approx(m["measured_ms"] / q["measured_ms"])
        assert 0 <= q["max_abs_diff_vs_fp32"] < 1.0 and 0.5 <= q["test_agreement_with_fp32"] <= 1.0
        model = onnx.load(str(export / q["file"]))
        onnx.checker.check_model(model)
        assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in model.graph.node)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["hwnas.space"] == SPACE and json.loads(meta["hwnas.config"]) == m["config"]
        assert meta["hwnas.variant"] == "int8-dynamic"
    # a plain process: onnxruntime only, no hwnas. Every file loads and runs; the first model's
    # FP32 and INT8 test accuracies are recomputed independently, one example per call.
    split = accuracy_source(work["net"], work["evaluator"]).split
    feeds = split.feeds(np.arange(len(split)))
    np.savez(work["root"] / "test.npz", labels=split.labels, **{f"in_{k}": v for k, v in feeds.items()})
    first = manifest["models"][0]
    script = f"""
import json, sys, numpy as np, onnxruntime as ort
d = np.load({str(work['root'] / 'test.npz')!r})
so = ort.SessionOptions()
so.intra_op_num_threads = 1
out = {{}}
for name in {[name for pair in files for name in pair]!r}:
    s = ort.InferenceSession({str(export)!r} + '/' + name, so, providers=['CPUExecutionProvider'])
    feed = lambda i: {{k[3:]: d[k][i:i + 1] for k in d.files if k.startswith('in_')}}
    n = len(d['labels']) if name in {[first['file'], first['int8']['file']]!r} else 1
    pred = np.array([s.run(None, feed(i))[0].argmax(-1)[0] for i in range(n)])
    out[name] = float((pred == d['labels'][:n]).mean())
assert not any(m.startswith('hwnas') for m in sys.modules)
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    accuracy = json.loads(result.stdout)
    assert set(accuracy) == {name for pair in files for name in pair}
    assert accuracy[first["file"]] == pytest.approx(first["test_accuracy"], abs=1e-12)
    assert accuracy[first["int8"]["file"]] == pytest.approx(first["int8"]["test_accuracy"], abs=1e-12)


def test_one_profile_ref_for_search_and_export():
    import hwnas.deploy.measure
    import hwnas.deploy.pipeline
    import hwnas.predictors.profiles
    import hwnas.search.objectives

    ref = hwnas.predictors.profiles.ProfileRef
    assert hwnas.search.objectives.ProfileRef is ref is hwnas.deploy.pipeline.ProfileRef
    assert hwnas.deploy.measure.ProfileRef is ref


def test_spread_along_front_picks_ends_then_farthest():
    # a 2-objective front (maximise first, minimise second), sorted by the first objective
    front = np.array([[0.60, 1.0], [0.61, 1.1], [0.62, 1.2], [0.70, 2.0], [0.80, 3.0], [0.81, 3.1]])
    assert spread_along_front(front, [True, False], 2) == [0, 5]
    assert spread_along_front(front, [True, False], 3) == [0, 3, 5]
    assert spread_along_front(front, [True, False], 10) == list(range(6))
    assert len(set(spread_along_front(front, [True, False], 5))) == 5
    with pytest.raises(InputError):
        spread_along_front(front, [True, False], 0)


def test_report_files_for_export_and_run(work):
    summary = build_report(work["export"])
    out = Path(summary["report"])
    names = sorted(p.name for p in out.iterdir())
    for expected in ("report.md", "front_latency.png", "hypervolume.png", "predicted_vs_measured.png", "int8.png"):
        assert expected in names
    import matplotlib.image as mpimg

    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = mpimg.imread(str(png))
        assert image.shape[0] > 300 and image.shape[1] > 400 and image.std() > 0.05  # not blank
    markdown = (out / "report.md").read_text()
    for png in out.glob("*.png"):
        assert f"]({png.name})" in markdown
    for m in work["manifest"]["models"]:
        assert m["file"] in markdown
    # the run directory's own report finds the sibling export; a rerun replaces the report
    again = build_report(work["run"], out=work["root"] / "run-report")
    assert any(p.endswith("front_latency.png") for p in again["plots"]) and again["export"] is not None
    build_report(work["run"], out=work["root"] / "run-report")
    (work["root"] / "run-report" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="'notes.txt', which is not part of an hwnas report"):
        build_report(work["run"], out=work["root"] / "run-report")
    assert (work["root"] / "run-report" / "notes.txt").read_text() == "mine"


def hwnas(*args: str) -> subprocess.CompletedProcess:
    """``hwnas ARGS`` through main() in this process (tests/inprocess.py; an interpreter start
    costs seconds)."""
    from inprocess import hwnas as here

    return here(*args)


def test_bad_runs_are_refused_before_any_work(work, tmp_path):
    net = work["net"]
    running = write_run(net, tmp_path / "running", work["profile"], n=4, status="running")
    short = write_run(net, tmp_path / "short", work["profile"], n=4, evals=6)
    cut = write_run(net, tmp_path / "cut", work["profile"], n=4)
    with open(cut / "evaluations.jsonl", "a") as fh:
        fh.write('{"index": 4, "config": {"D"')  # a search killed mid-write
    no_front = write_run(net, tmp_path / "nofront", work["profile"], n=4)
    (no_front / "pareto.json").unlink()
    cases = [
        (tmp_path / "nope", {}, "does not exist"),
        (tmp_path, {}, "no run.json"),
        (running, {}, "status is 'running'"),
        (short, {}, "4 of 6 evaluations"),
        (cut, {}, "truncated"),
        (no_front, {}, "pareto.json is missing"),
        (work["run"], {"space": "bert-ose"}, "not --space 'bert-ose'"),
        (work["run"], {"top": 0}, "--top"),
    ]
    for run, kwargs, needle in cases:
        with pytest.raises(InputError, match=re.escape(needle)):
            export_run(run, tmp_path / "new", evaluator=None, supernet=net, **kwargs)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        export_run(work["run"], taken, evaluator=None, supernet=net)
    with pytest.raises(InputError, match="neither a run directory"):
        build_report(taken)
    assert (taken / "mine.txt").read_text() == "user data" and [p.name for p in taken.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "nofront", "running", "short", "taken"]


def test_cli_bad_inputs_exit_2_with_one_line(work, tmp_path):
    running = write_run(work["net"], tmp_path / "running", work["profile"], n=4, status="running")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("user data")
    for args, needle in [(["--run", str(running), "--out", str(tmp_path / "new")], "status is 'running'"),
                         (["--run", str(work["run"]), "--out", str(taken)], "not empty")]:
        result = hwnas("export", *args)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (taken / "mine.txt").read_text() == "user data" and [p.name for p in taken.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["running", "taken"]  # no partial export left


def test_cli_export_top1_json_then_report(work, tmp_path):
    out = tmp_path / "e"
    result = hwnas("export", "--run", str(work["run"]), "--top", "1", "--space", SPACE, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert len(manifest["models"]) == 1 and manifest["models"][0]["int8"] is None
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.json", manifest["models"][0]["file"]])
    result = hwnas("report", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert Path(summary["markdown"]).is_file() and summary["run"] == str(work["run"].resolve())


def test_quickstart_refuses_foreign_or_other_settings_dir(tmp_path):
    from hwnas.quickstart import check_quickstart_dir as check_out_dir

    settings = {"space": SPACE, "evals": 150, "top": 5, "int8": True, "threads": 1, "seed": 0}
    assert check_out_dir(tmp_path / "new", settings) is None
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("user data")
    with pytest.raises(InputError, match="not part of an hwnas quickstart"):
        check_out_dir(mine, settings)
    previous = tmp_path / "previous"
    (previous / "search").mkdir(parents=True)
    (previous / ".export.partial-abc").mkdir()  # left by a killed export: ours, allowed
    (previous / "quickstart.json").write_text(json.dumps({"schema": "hwnas-quickstart/1", "settings": settings}))
    assert check_out_dir(previous, settings)["settings"] == settings
    with pytest.raises(InputError, match="evals: 150 there vs 60 now"):
        check_out_dir(previous, {**settings, "evals": 60})
    result = hwnas("quickstart", "--out", str(mine), "--threads", "1")
    assert result.returncode == 2 and "not part of an hwnas quickstart" in result.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # a budget below one LINAS population is refused before anything is profiled or written
    started = time.perf_counter()
    result = hwnas("quickstart", "--out", str(tmp_path / "few"), "--evals", "10", "--threads", "1")
    assert result.returncode == 2 and "--evals 10 is smaller than one population of linas (50)" in result.stderr
    assert not (tmp_path / "few").exists() and time.perf_counter() - started < 60
