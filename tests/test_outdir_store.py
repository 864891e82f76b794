"""The output-directory policy (hwnas.outdir), the run store (hwnas.search.store), the one
timestamp form, and ONNX accuracy through the Split protocol (any input dtype)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hwnas.deploy.accuracy import accuracy_source, onnx_predictions, split_accuracy
from hwnas.onnx_export import export_onnx
from hwnas.errors import InputError
from hwnas.fileio import now_iso
from hwnas.outdir import OutputKind, check_out_dir, staged_output
from hwnas.report import build_report
from hwnas.search.store import RUN_KIND, RunDirectory, front_of, inspect_out_dir, read_rows, read_run
from hwnas.task import ArraySplit

ROOT = Path(__file__).resolve().parents[1]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
KIND = OutputKind("thing", "thing.json", "hwnas-thing/1")
OWNED = OutputKind("thing", "thing.json", "hwnas-thing/1", own=re.compile(r"^[a-z]+\.png$"))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (to prove nothing changed)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# hwnas.outdir
# ---------------------------------------------------------------------------------------------
def test_new_empty_and_earlier_output_of_the_kind(tmp_path):
    assert check_out_dir(tmp_path / "new", KIND) is None
    (tmp_path / "empty").mkdir()
    assert check_out_dir(tmp_path / "empty", KIND) is None
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "thing.json").write_text(json.dumps({"schema": "hwnas-thing/1", "n": 3}))
    (earlier / "anything.bin").write_text("x")  # no `own` pattern: any entries beside the marker
    assert check_out_dir(earlier, KIND) == {"schema": "hwnas-thing/1", "n": 3}
    with pytest.raises(InputError, match="not empty \\(it holds an earlier hwnas thing\\)"):
        check_out_dir(earlier, KIND, reuse=False)


@pytest.mark.parametrize("content, needle", [
    (None, "not empty and holds no hwnas thing"),
    ("{broken", "thing.json is unreadable or corrupt"),
    (json.dumps({"schema": "hwnas-other/1"}), "has schema 'hwnas-other/1', not 'hwnas-thing/1'"),
    (json.dumps(["schema"]), "has schema None"),
])
def test_non_empty_dir_without_a_valid_marker_is_refused(tmp_path, content, needle):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    if content is not None:
        (out / "thing.json").write_text(content)
    with pytest.raises(InputError, match=re.escape(needle)):
        check_out_dir(out, KIND)


def test_owned_kind_refuses_foreign_entries_even_with_marker(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thing.json").write_text(json.dumps({"schema": "hwnas-thing/1"}))
    (out / "a.png").write_text("")
    assert check_out_dir(out, OWNED) is not None
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="'notes.txt', which is not part of an hwnas thing"):
        check_out_dir(out, OWNED)
    # own files alone do not make a directory ours: the marker does
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_text("")
    with pytest.raises(InputError, match="holds no hwnas thing"):
        check_out_dir(photos, OWNED)


def test_refused_places_files_and_parents(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="root directory"):
        check_out_dir("/", KIND)
    with pytest.raises(InputError, match="home directory"):
        check_out_dir(Path.home(), KIND)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(InputError, match="current directory"):
        check_out_dir(".", KIND)  # empty, but still the current directory
    link = tmp_path / "link"
    link.symlink_to("/")
    with pytest.raises(InputError, match="root directory"):  # symlinks resolved first
        check_out_dir(link, KIND)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        check_out_dir(a_file, KIND)
    with pytest.raises(InputError, match="cannot be created"):
        check_out_dir(a_file / "sub", KIND)
    with pytest.raises(InputError, match="cannot be created"):
        check_out_dir(tmp_path / "missing" / "sub", KIND)  # the parent must exist


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_parent_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            check_out_dir(locked / "out", KIND)
        with pytest.raises(InputError, match="not writable"):
            check_out_dir(locked, KIND)
    finally:
        locked.chmod(0o700)


def test_staged_output_is_atomic_and_keeps_what_appears_meanwhile(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_output(out, KIND) as staging:
            (staging / "half").write_text("x")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no out, no staging left
    with staged_output(out, KIND) as staging:
        (staging / "thing.json").write_text(json.dumps({"schema": "hwnas-thing/1", "v": 1}))
    assert json.loads((out / "thing.json").read_text())["v"] == 1
    with pytest.raises(InputError, match="earlier hwnas thing"):  # no replace: never overwritten
        with staged_output(out, KIND):
            pass
    with staged_output(out, KIND, replace=True) as staging:
        (staging / "thing.json").write_text(json.dumps({"schema": "hwnas-thing/1", "v": 2}))
    assert json.loads((out / "thing.json").read_text())["v"] == 2
    fresh = tmp_path / "fresh"
    with pytest.raises(InputError, match="holds no hwnas thing"):
        with staged_output(fresh, KIND) as staging:
            fresh.mkdir()
            (fresh / "mine.txt").write_text("user data")  # the user's file, written meanwhile
    assert tree(fresh) == {"mine.txt": b"user data"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]


def test_now_iso_is_utc_seconds():
    assert ISO.match(now_iso())


# ---------------------------------------------------------------------------------------------
# The run store
# ---------------------------------------------------------------------------------------------
HEADER = {"schema": "hwnas-run/1", "status": "running", "space": "toy", "plugin": None, "algo": "random",
          "evals": 4, "seed": 0, "objectives": [{"name": "accuracy", "maximize": True, "unit": "fraction"},
                                                {"name": "params", "maximize": False}],
          "constraints": [], "settings": {}, "space_fingerprint": "f", "profiles": [],
          "reference_point": [0.0, 100.0], "created": "2026-01-01T00:00:00+00:00"}


def make_run(path: Path, n: int = 4, status: str = "complete") -> Path:
    store = RunDirectory.open(path, HEADER)
    for i in range(n):
        store.append({"index": i, "config": {"x": i}, "objectives": {"accuracy": 0.5 + 0.1 * i, "params": 10.0 * i},
                      "validated": True})
    store.write_pareto(["accuracy", "params"], front_of(store.rows, HEADER["objectives"]))  # the true front
    store.write_hypervolume([0.1 * (i + 1) for i in range(n)])
    store.update(status=status)
    store.close()
    return path


def test_store_round_trip_and_completeness_rules(tmp_path):
    run = read_run(make_run(tmp_path / "run"))
    assert run.complete and run.space == "toy" and [r["index"] for r in run.evaluations] == [0, 1, 2, 3]
    assert [p["index"] for p in run.front] == [3, 2, 1, 0] and run.hypervolume[-1] == (4, pytest.approx(0.4))
    assert run.objectives[1] == {"name": "params", "maximize": False, "unit": ""}  # normalised
    assert run.values(run.front).tolist() == [[0.8, 30.0], [0.7, 20.0], [0.6, 10.0], [0.5, 0.0]]
    assert inspect_out_dir(tmp_path / "run")["status"] == "complete"
    with pytest.raises(InputError, match="not --space 'other'"):
        read_run(tmp_path / "run", space="other")

    cut = make_run(tmp_path / "cut", n=3)
    with open(cut / "evaluations.jsonl", "a") as fh:
        fh.write('{"index": 3, "conf')  # killed mid-write
    with pytest.raises(InputError, match="torn by an interrupted write.; 3 of 4 evaluations"):
        read_run(cut)
    snapshot = read_run(cut, require_complete=False)
    assert len(snapshot.evaluations) == 3 and not snapshot.complete
    rows, good = read_rows(cut / "evaluations.jsonl")
    assert len(rows) == 3 and good == len((cut / "evaluations.jsonl").read_bytes().rsplit(b"\n", 1)[0]) + 1
    # reopening for the same search cuts the half line off and resumes at index 3
    store = RunDirectory.open(cut, HEADER)
    assert len(store.rows) == 3 and (cut / "evaluations.jsonl").stat().st_size == good

    bad = make_run(tmp_path / "bad")
    lines = (bad / "evaluations.jsonl").read_text().splitlines()
    lines[1] = "{not json"
    (bad / "evaluations.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 2 is not a JSON row"):
        read_run(bad, require_complete=False)


def test_store_refuses_what_is_not_a_run(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no hwnas run"):
        RunDirectory.open(foreign, HEADER)
    with pytest.raises(InputError, match="no run.json"):
        read_run(foreign)
    assert check_out_dir(make_run(tmp_path / "run"), RUN_KIND)["schema"] == "hwnas-run/1"
    # a search creates missing parents (as it always did); other outputs need an existing parent
    assert inspect_out_dir(tmp_path / "runs" / "a" / "b") is None
    with pytest.raises(InputError, match="cannot be created"):
        check_out_dir(tmp_path / "runs" / "a" / "b", KIND)
    with pytest.raises(InputError, match="cannot be created"):
        inspect_out_dir(tmp_path / "run" / "run.json" / "sub")  # an ancestor is a file


# ---------------------------------------------------------------------------------------------
# Reports never take the user's files for their own
# ---------------------------------------------------------------------------------------------
def test_report_replaces_only_its_own_directory(tmp_path):
    run = make_run(tmp_path / "run")
    summary = build_report(run, out=tmp_path / "report")
    assert ISO.match(summary["created"])
    marker = json.loads((tmp_path / "report" / "report.json").read_text())
    assert marker["schema"] == "hwnas-report/1"
    build_report(run, out=tmp_path / "report")  # a previous report: replaced
    assert (tmp_path / "report" / "report.md").is_file()


def test_cli_report_refuses_a_folder_of_the_users_pngs(tmp_path):
    run = make_run(tmp_path / "run")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.png").write_bytes(b"\x89PNG\r\n\x1a\nmine")
    (photos / "report.md").write_text("my own notes")
    before = tree(photos)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "hwnas.cli", "report", str(run), "--out", str(photos)],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "holds no hwnas report" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert tree(photos) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "run"]  # no staging left


# ---------------------------------------------------------------------------------------------
# ONNX accuracy through Split.feeds: inputs in their own dtype (float here), labels from the split
# ---------------------------------------------------------------------------------------------
def test_onnx_accuracy_reads_float_inputs_through_the_split(tmp_path):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    module = torch.nn.Linear(6, 3).eval()
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(11, 6)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(pixels)).argmax(-1).numpy()
    labels = want.copy()
    labels[:4] = (labels[:4] + 1) % 3  # 4 of 11 wrong
    split = ArraySplit("test", {"pixels": pixels}, labels.astype(np.int64))
    model = export_onnx(module, {"pixels": pixels[:2]}, ["logits"], dynamic_axes={"pixels": {0: "batch"}})
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 4, 11):  # a last batch shorter than the others
        pred = onnx_predictions(session, split, batch)
        assert pred.tolist() == want.tolist()
        assert split_accuracy(pred, split) == pytest.approx(7 / 11)
    supernet = SimpleNamespace(input_names=["pixels"])
    evaluator = SimpleNamespace(task=SimpleNamespace(test=split, name="toy", seed=None))
    source = accuracy_source(supernet, evaluator, batch=4)
    assert source.split is split and source.describe()["examples"] == 11
    assert accuracy_source(SimpleNamespace(input_names=["ids"]), evaluator).split is None  # lacks an input
