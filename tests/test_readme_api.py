"""The README's Python API example and plug-in snippet, run as written (in a fresh directory)."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(marker: str) -> str:
    """The ```python block that follows ``<!-- marker -->`` in the README."""
    text = README.read_text()
    match = re.search(rf"<!-- {re.escape(marker)} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has no python block after <!-- {marker} -->"
    return match.group(1)


def test_python_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet("python-api"), "README.md:python-api", "exec"), {})
    printed = capsys.readouterr().out
    assert "predicted" in printed and "on the front" in printed
    profile = json.loads((tmp_path / "cpu.json").read_text())
    assert profile["complete"] and profile["space"] == "bert-mini"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "complete" and run["algo"] == "linas"
    manifest = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert len(manifest["models"]) == 2
    for model in manifest["models"]:
        assert (tmp_path / "models" / model["file"]).is_file() and model["parity_max_abs_diff"] <= 1e-4
        assert 0.5 < model["test_accuracy"] <= 1 and model["measured_ms"] > 0
    assert (tmp_path / "run" / "report" / "report.md").is_file()


def test_check_supernet_snippet_runs_as_written():
    exec(compile(snippet("check-supernet"), "README.md:check-supernet", "exec"), {})
