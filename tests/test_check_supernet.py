"""hwnas.supernets.check_supernet on every built-in supernet and the example plug-in, the
invariants it catches, and providers declared as entry points of an installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hwnas.errors import InputError
from hwnas.examples.mlp_digits import ElasticMLP
from hwnas.supernets import SupernetCheckError, check_supernet, get_supernet
from hwnas.supernets.registry import ENTRY_POINT_GROUP, builtin_spaces

PLUGIN = "hwnas.examples.mlp_digits:make_supernets"


@pytest.mark.parametrize("space", ["bert-mini", "bert-linas", "bert-ose"])
def test_builtin_supernets_pass(bert_nets, space):
    report = check_supernet(bert_nets(space), shape={"seq_len": 16}, n_random=1)
    assert report["space"] == space and len(report["configs"]) >= 3
    assert report["max_diff_extract"] <= 1e-4 and report["max_diff_onnx"] <= 1e-4


def test_example_plugin_passes():
    net = get_supernet("mlp-digits", PLUGIN)
    report = check_supernet(net, n_random=4, export_configs=[{"D": 3, "W": [256, 64, 256]}])
    assert report["shape"] == {"batch": 1} and len(report["configs"]) >= 5


class _OffByOneParams(ElasticMLP):
    def count_params(self, config):
        return super().count_params(config) + 1


class _WrongExtract(ElasticMLP):
    def extract(self, config):
        module = super().extract(config)
        with torch.no_grad():
            module.head.bias.add_(0.5)  # what a copy bug in extraction looks like
        return module


class _MiscountedBlocks(ElasticMLP):
    def block_counts(self, genes, keys, shape):
        counts = super().block_counts(genes, keys, shape)
        counts[:, 0] += 1
        return counts


class _BlockNotListed(ElasticMLP):
    def blocks(self, config, shape):
        return [*super().blocks(config, shape), "softmax"]


@pytest.mark.parametrize("broken, message", [
    (_OffByOneParams, r"count_params = \d+ but extract\(config\) has \d+ parameters"),
    (_WrongExtract, r"extract\(config\) differs from forward\(inputs, config\) by 0.5"),
    (_MiscountedBlocks, r"block_counts counts 'fc/in=16/out=16' 1 times, blocks lists it 0 times"),
    (_BlockNotListed, r"block 'softmax' of .* is not in all_blocks"),
])
def test_broken_invariants_are_named(broken, message):
    with pytest.raises(SupernetCheckError, match=message):
        check_supernet(broken(), n_random=1)


def test_missing_protocol_member_is_named():
    net = ElasticMLP()
    net.output_names = None
    with pytest.raises(SupernetCheckError, match="misses 'output_names'"):
        check_supernet(net)
    with pytest.raises(SupernetCheckError, match="no shape setting 'seq_len'"):
        check_supernet(ElasticMLP(), shape={"seq_len": 8})
    assert issubclass(SupernetCheckError, InputError)  # the CLI's exit 2


def _install_entry_point(root, name: str, value: str) -> None:
    """A minimal installed distribution declaring one hwnas.supernets provider."""
    info = root / f"hwnas_test_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hwnas-test-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {value}\n")


def test_entry_point_providers_are_found_like_builtins(tmp_path, monkeypatch):
    _install_entry_point(tmp_path, "digits", PLUGIN)
    _install_entry_point(tmp_path, "broken", "no_such_module_anywhere:factory")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="entry point 'no_such_module_anywhere:factory' skipped"):
        spaces = builtin_spaces()
    assert {"bert-mini", "bert-ose", "bert-linas", "mlp-digits"} <= set(spaces)
    with pytest.warns(UserWarning):
        net = get_supernet("mlp-digits")
    assert isinstance(net, ElasticMLP)
    # and the CLI sees it without --supernet
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-W", "ignore", "-m", "hwnas.cli", "spaces", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = [s["name"] for s in json.loads(result.stdout)["spaces"]]
    assert "mlp-digits" in listed and "bert-mini" in listed
