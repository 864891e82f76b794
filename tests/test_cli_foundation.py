"""The CLI as a user runs it: a real subprocess, real exit codes, stderr lines."""

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True, timeout=300)


def test_spaces_json():
    result = run("spaces", "--json")
    assert result.returncode == 0, result.stderr
    spaces = {s["name"]: s for s in json.loads(result.stdout)["spaces"]}
    assert set(spaces) >= {"bert-ose", "bert-linas", "bert-mini"}
    assert spaces["bert-ose"]["valid_configurations"] == 300
    assert spaces["bert-linas"]["genes"] == 25
    per_layer = {d["name"]: d["genes"] for d in spaces["bert-linas"]["dimensions"]}
    assert per_layer == {"D": 1, "A": 12, "I": 12}


@pytest.mark.parametrize(
    "config, needle",
    [
        ("{bad json", "not valid JSON"),
        ('{"D":2,"A":[1,1],"I":[128,128],"Q":1}', "unknown key 'Q'"),
        ('{"D":7,"A":[1],"I":[128]}', "invalid value 7 for 'D'"),
        ('{"D":2,"A":[1,3],"I":[128,128]}', "invalid value 3 for 'A[1]'"),
    ],
)
def test_export_bad_input_exits_2_with_one_line(tmp_path, config, needle):
    out = tmp_path / "out"
    result = run("export", "--space", "bert-mini", "--config", config, "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert not out.exists()


def test_export_violated_constraint_and_unknown_space(tmp_path):
    result = run("export", "--space", "bert-ose", "--config", '{"A":12,"D":4,"H":1024,"I":768}', "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "violates H divisible by A" in result.stderr
    result = run("export", "--space", "bert-huge", "--config", "{}", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "unknown space 'bert-huge'" in result.stderr


def test_export_json_manifest(tmp_path):
    out = tmp_path / "e"
    result = run("export", "--space", "bert-mini", "--config", '{"D":2,"A":[2,4],"I":[256,512]}', "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["models"][0]["params"] == manifest["models"][0]["onnx_params"]
    assert (out / manifest["models"][0]["file"]).is_file()


def test_missing_option_is_a_usage_error():
    result = run("export", "--space", "bert-mini")
    assert result.returncode == 2 and "Missing option" in result.stderr
