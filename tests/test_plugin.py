"""The plug-in API, through the example plug-in (an elastic MLP on scikit-learn's digits) and
through broken plug-ins: profile → predict → search → export from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hwnas.cli import main
from hwnas.errors import InputError
from hwnas.evaluation.accuracy import WeightSharingEvaluator, get_evaluator
from hwnas.examples.mlp_digits import (
    MLP,
    SPACE,
    ElasticMLP,
    TrainSettings,
    digits_splits,
)
from hwnas.supernets.base import Supernet

SPEC = "hwnas.examples.mlp_digits:make_supernets"
SMALLEST = {"D": 1, "W": [4]}
LARGEST = {"D": 3, "W": [256, 256, 256]}
REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True,
                          check=False, timeout=300, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def net() -> ElasticMLP:
    return ElasticMLP()


def test_extracted_equals_shared_forward_and_counts_are_exact(net):
    x = digits_splits()["validation"].x
    for config in SPACE.enumerate():
        module = net.extract(config)
        with torch.no_grad():
            diff = (module(x) - net.forward((x,), config)).abs().max().item()
        assert diff <= 1e-6, (config, diff)
        assert net.count_params(config) == sum(p.numel() for p in module.parameters())
    assert net.count_macs(LARGEST, {"batch": 2}) == 2 * (64 * 256 + 2 * 256 * 256 + 256 * 10)


def test_block_counts_vectorised_equal_the_blocks_of_each_config(net):
    keys = net.all_blocks(net.default_shape)
    assert len(keys) == 20 and "fc/in=64/out=4" in keys and "head/in=256" in keys
    genes = np.random.default_rng(0).integers(0, SPACE.gene_upper_bounds + 1, size=(500, SPACE.n_genes))
    fast = net.block_counts(genes, keys, net.default_shape)
    slow = Supernet.block_counts(net, genes, keys, net.default_shape)  # decodes each config
    assert np.array_equal(fast, slow)
    assert net.blocks({"D": 2, "W": [64, 16]}, {}) == ["fc/in=64/out=64", "fc/in=64/out=16", "head/in=16"]
    with pytest.raises(InputError, match="not in the profile"):
        net.block_counts(genes, keys[1:], net.default_shape)


def test_accuracy_is_a_real_trade_off_and_deterministic(net):
    evaluator = get_evaluator(net)  # hwnas's weight-sharing evaluator on the plug-in's accuracy_task()
    assert isinstance(evaluator, WeightSharingEvaluator)
    small, large = evaluator.evaluate([SMALLEST, LARGEST])
    assert large >= 0.9 and large - small >= 0.1, (small, large)
    configs = list(SPACE.enumerate())
    again = get_evaluator(net).evaluate(configs[::-1])[::-1]
    assert np.array_equal(evaluator.evaluate(configs), again) and again.dtype == np.float64
    test = evaluator.test_accuracy([SMALLEST, LARGEST])
    assert test[1] - test[0] >= 0.1


def test_first_use_inside_inference_mode_still_trains():
    # Searches may call evaluate() inside no_grad/inference_mode; training must still work.
    with torch.inference_mode():
        tiny = ElasticMLP(TrainSettings(steps=3, batch=8))
        assert 0 <= get_evaluator(tiny).evaluate([SMALLEST])[0] <= 1
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = MLP([256, 256, 256])
    assert not torch.equal(initial.head.weight, tiny.module().head.weight)  # it did train
    assert all(p.grad is None for p in tiny.module().parameters())


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """A quick CPU profile of mlp-digits made by `hwnas profile` (one thread; through main() in
    this process, with --quick's interference threshold out of reach and no re-measurement passes:
    the tests here use the profile, they do not test measurement, and a loaded machine made it
    re-measure for half a minute)."""
    from dataclasses import replace

    from inprocess import hwnas
    from hwnas.profiling.profiler import MeasurePolicy

    path = tmp_path_factory.mktemp("profile") / "mlp.json"
    quick = replace(MeasurePolicy.quick(), interference_max=64.0, beside_max=64.0, max_passes=0,
                    wait_seconds=0.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MeasurePolicy, "quick", classmethod(lambda cls: quick))
        result = hwnas("profile", "--supernet", SPEC, "--space", "mlp-digits", "--ep", "cpu", "--quick",
                       "--threads", "1", "--out", str(path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["complete"] and summary["blocks"] == 20 and summary["calibration"] == 10
    return path


def test_profile_and_predict_from_the_cli(net, profile, capsys):
    from hwnas.predictors.latency import LatencyPredictor

    assert json.loads(profile.read_text())["settings"]["shape"] == {"batch": 1}  # no seq_len
    predictor = LatencyPredictor.load(str(profile), net)
    small, large = predictor.predict([SMALLEST, LARGEST])
    assert 0 < small < large
    main(["predict", "--profile", str(profile), "--supernet", SPEC, "--config", json.dumps(LARGEST), "--json"])
    assert json.loads(capsys.readouterr().out)["predicted_ms"] == pytest.approx(large, rel=1e-9)


def test_search_then_export_the_front_from_the_cli(net, profile, tmp_path):
    runs = tmp_path / "run"
    result = run("search", "--supernet", SPEC, "--space", "mlp-digits", "--algo", "nsga2", "--objectives",
                 "accuracy,latency", "--profile", str(profile), "--evals", "60", "--out", str(runs), "--json")
    assert result.returncode == 0, result.stderr
    meta = json.loads((runs / "run.json").read_text())
    assert meta["status"] == "complete" and meta["plugin"] == SPEC and meta["space"] == "mlp-digits"
    rows = [json.loads(line) for line in (runs / "evaluations.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and len({r["key"] for r in rows}) == 60
    # The search ran in another process, which trained the weights again: same accuracies.
    evaluator = get_evaluator(net)
    assert [r["objectives"]["accuracy"] for r in rows] == list(evaluator.evaluate([r["config"] for r in rows]))
    front = json.loads((runs / "pareto.json").read_text())["front"]
    assert front and max(p["objectives"]["accuracy"] for p in front) >= 0.9

    out = tmp_path / "export"
    # run.json names the plug-in, but a run directory never chooses the code hwnas imports
    # export through main() in this process: its weights are trained here already (the search above
    # showed that another process trains the same ones)
    from inprocess import hwnas

    refused = hwnas("export", "--run", str(runs), "--top", "2", "--threads", "1", "--out", str(out))
    assert refused.returncode == 2 and f"--supernet {SPEC}" in refused.stderr and not out.exists()
    result = hwnas("export", "--run", str(runs), "--supernet", SPEC, "--top", "2", "--threads", "1",
                   "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["models"]
    assert len(models) == 2
    test = digits_splits()["test"]
    for model in models:
        assert model["params"] == model["onnx_params"] == net.count_params(model["config"])
        assert model["parity_max_abs_diff"] <= 1e-4
        # test accuracy of the ONNX file itself (float inputs), beside the PyTorch evaluator's
        assert abs(model["test_accuracy"] - evaluator.test_accuracy([model["config"]])[0]) <= 1 / 300
        assert model["evaluator_test_accuracy"] == evaluator.test_accuracy([model["config"]])[0]
        (logits,) = ort.InferenceSession(str(out / model["file"])).run(None, {"pixels": test.x.numpy()})
        assert logits.shape == (300, 10)
        assert (logits.argmax(1) == test.y.numpy()).mean() == pytest.approx(model["test_accuracy"])


BAD_PLUGINS = {
    "does not import": ("import hwnas_no_such_dependency\n", "does not import: ModuleNotFoundError"),
    "syntax error": ("def make(:\n", "does not import: SyntaxError"),
    "no factory": ("make_supernet = 1\n", "has no callable 'make'"),
    "factory raises": ("def make():\n    raise RuntimeError('no GPU here')\n", "raised RuntimeError: no GPU here"),
    "factory exits": ("import sys\ndef make():\n    sys.exit(0)\n", "raised SystemExit"),
    "returns nothing": ("def make():\n    return None\n", "returned NoneType, not a supernet"),
    "misses a method": (
        """
        from hwnas.examples.mlp_digits import SPACE
        class Half:
            space = SPACE
            def forward(self, inputs, config): ...
        def make():
            return Half()
        """, "misses 'extract'"),
    "abstract method": (
        """
        from hwnas.examples.mlp_digits import ElasticMLP
        from hwnas.supernets.base import Supernet
        class NoBlocks(Supernet):
            space = ElasticMLP().space
        def make():
            return [NoBlocks()]
        """, "raised TypeError: Can't instantiate abstract class NoBlocks"),
    "not a Supernet": (
        """
        from hwnas.examples.mlp_digits import SPACE
        class Duck:
            space, input_names, output_names, default_shape = SPACE, ("pixels",), ("logits",), {"batch": 1}
        for name in ("forward", "extract", "blocks", "all_blocks", "build_block", "count_params",
                     "count_macs", "example_inputs", "module"):
            setattr(Duck, name, lambda self, *args: None)
        def make():
            return Duck()
        """, "subclass hwnas.supernets.base.Supernet"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLUGINS))
def test_bad_plugin_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    source, needle = BAD_PLUGINS[case]
    module = "bad_" + case.replace(" ", "_").replace("-", "_").lower()
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["spaces", "--supernet", f"{module}:make"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert needle in lines[0] and module in lines[0], lines[0]


@pytest.mark.parametrize("args, needle", [
    (["spaces", "--supernet", "no-colon"], "must look like 'package.module:factory'"),
    (["spaces", "--supernet", ":make"], "must look like 'package.module:factory'"),
    (["spaces", "--supernet", "hwnas_no_such_module:make"], "'hwnas_no_such_module' does not import"),
    (["export", "--supernet", SPEC, "--space", "mlp-mnist", "--config", "{}", "--out", "o"],
     "has no space 'mlp-mnist' (has: mlp-digits)"),
    (["profile", "--supernet", SPEC, "--space", "mlp-digits", "--seq-len", "8", "--out", "p.json"],
     "space 'mlp-digits' has no shape setting 'seq_len' (has: batch)"),
])
def test_bad_plugin_names_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and needle in lines[0], lines


def test_plugin_in_the_current_directory_in_a_real_process(tmp_path):
    (tmp_path / "my_plugin.py").write_text("def make():\n    raise ValueError('weights file missing')\n")
    # PYTHONSAFEPATH: the interpreter does not put the current directory on sys.path (as with
    # the installed `hwnas` script); hwnas looks there for the plug-in itself.
    result = run("spaces", "--supernet", "my_plugin:make", cwd=tmp_path, env={"PYTHONSAFEPATH": "1"})
    assert result.returncode == 2
    assert result.stderr.strip() == "hwnas: error: plug-in factory 'my_plugin:make' raised ValueError: weights file missing"
