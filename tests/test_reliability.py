"""Reliability (issue 16): one writer per output, interruptions anywhere (kill -9, SIGTERM, a torn
last line), and bad files refused with exit 2 naming the file and the field, never trusted.

The lock and kill tests run real ``python -m hwnas.cli`` processes; the searches use the fast
synthetic supernet (``tests/search_synthetic.py``), the export and profile the smallest real spaces.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import killpoints as kp
import numpy as np
import pytest
from search_synthetic import StandIn, SyntheticNet

from hwnas.errors import InputError
from hwnas.locking import exclusive, held_by, lock_path
from hwnas.outdir import OutputKind, staged_output
from hwnas.search.driver import SearchRequest, search
from hwnas.search.store import read_run

TESTS = Path(__file__).parent
REPO = TESTS.parent
N = 40
ENV = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{REPO}")


def _search_args(out):
    return [sys.executable, "-m", "hwnas.cli", "search", "--supernet", "search_synthetic:make", "--space", "synth",
            "--algo", "nsga2", "--objectives", "accuracy,params", "--evals", str(N), "--population", "10",
            "--seed", "3", "--out", str(out)]


def _start(args, delay=0.0, gate=None):
    """Start ``args``; ``gate=(path, k)`` holds the synthetic search before its (k+1)-th evaluation
    while ``path`` exists."""
    env = dict(ENV, HWNAS_SYNTH_DELAY=str(delay))
    if gate is not None:
        gate[0].touch()
        env["HWNAS_SYNTH_GATE"] = f"{gate[0]}:{gate[1]}"
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(out):
    return [json.loads(x) for x in (Path(out) / "evaluations.jsonl").read_text().splitlines()]


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def _wait(condition, proc, timeout=90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError("no progress")


def _count_rows(out):
    path = Path(out) / "evaluations.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The run directory of an uninterrupted search with the CLI's settings (in-process)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    search(SearchRequest(space="synth", algo="nsga2", objectives="accuracy,params", evals=N, out=out, seed=3,
                         population=10, evaluator=StandIn(), supernet=SyntheticNet()))
    return out


@pytest.fixture(scope="module")
def reference(reference_run):
    """Rows of an uninterrupted search with the CLI's settings."""
    return _strip(_rows(reference_run))


# ---------------------------------------------------------------------------------------------
# One writer per output
# ---------------------------------------------------------------------------------------------
def _second(args, capsys):
    """Run ``hwnas`` ARGS in this process (a second writer beside a subprocess); (status, stderr lines)."""
    import hwnas.deploy.pipeline  # noqa: F401  (imports are not what is timed)
    import hwnas.profiling.profiler  # noqa: F401
    import hwnas.search.driver  # noqa: F401
    from hwnas.cli import main

    capsys.readouterr()
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert time.monotonic() - started < 10  # at once, not after the work
    return exit_.value.code, capsys.readouterr().err.strip().splitlines()


def test_a_second_search_on_the_same_out_exits_2_at_once_and_the_first_finishes(tmp_path, reference, capsys):
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = _start(_search_args(out), gate=(gate, 3))
    _wait(lambda: _count_rows(out) >= 3, first)
    code, lines = _second(_search_args(out)[3:], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert str(out) in lines[0] and f"PID {first.pid}" in lines[0], lines
    assert first.poll() is None  # refused while the first was still writing
    gate.unlink()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    rows = _rows(out)
    assert [r["index"] for r in rows] == list(range(N)) and len({r["key"] for r in rows}) == N
    assert _strip(rows) == reference
    assert not lock_path(out).exists()  # a clean exit removes its lock file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # (the gate file removed above)


def test_a_lock_dies_with_its_process_and_readers_refuse_a_running_search(tmp_path, reference):
    out, gate = tmp_path / "run", tmp_path / "gate"
    proc = _start(_search_args(out), gate=(gate, 12))
    _wait(lambda: _count_rows(out) >= 12, proc)
    assert held_by(out) == str(proc.pid)
    with pytest.raises(InputError, match=rf"being written by a running search \(PID {proc.pid}\)"):
        read_run(out, require_complete=False)  # report/export of a running search: refused
    proc.kill()  # SIGKILL mid-run: the kernel drops the lock, the lock file stays behind
    proc.communicate(timeout=60)
    assert lock_path(out).exists() and held_by(out) is None
    # a torn last line, as a kill during the append leaves it
    with open(out / "evaluations.jsonl", "a") as fh:
        fh.write('{"index": %d, "config": {"x0": 1, "x1"' % _count_rows(out))
    rerun = _start(_search_args(out))
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert "dropped a torn last line" in err and "evaluations.jsonl" in err
    assert _strip(_rows(out)) == reference  # exactly N distinct rows, equal to an uninterrupted run's
    assert not lock_path(out).exists()


def test_a_complete_run_whose_last_line_is_damaged_is_resumed_not_stuck(tmp_path, reference, capfd):
    out = tmp_path / "run"

    def request():
        return SearchRequest(space="synth", algo="nsga2", objectives="accuracy,params", evals=N, out=out, seed=3,
                             population=10, evaluator=StandIn(), supernet=SyntheticNet())

    search(request())
    data = (out / "evaluations.jsonl").read_bytes()
    (out / "evaluations.jsonl").write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1] + b'{"index": 39, "con')
    with pytest.raises(InputError, match=r"torn.*39 of 40 evaluations.*rerun the same `hwnas search`"):
        read_run(out)  # what export does: refused as incomplete, saying how to fix it
    result = search(request())
    assert result.status == "complete" and result.evaluations == N
    assert "dropped a torn last line" in capfd.readouterr().err
    assert _strip(_rows(out)) == reference
    assert read_run(out).complete


def test_one_writer_per_profile_and_sigterm_exits_130(tmp_path, capsys):
    out = tmp_path / "p.json"
    args = ["profile", "--space", "mlp-digits", "--supernet", "hwnas.examples.mlp_digits:make_supernets", "--quick",
            "--threads", "1", "--out", str(out)]
    first = _start([sys.executable, "-m", "hwnas.cli", *args])
    _wait(out.exists, first)  # saved after its first measurement
    code, lines = _second(args, capsys)
    assert code == 2 and len(lines) == 1 and f"PID {first.pid}" in lines[0] and str(out) in lines[0], lines
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err  # as search does, not 143
    saved = json.loads(out.read_text())  # what was measured is saved, whole, and resumable
    measured = saved["progress"]  # the rounds measured so far (items are final once all their rounds are)
    assert saved["complete"] is False and (saved["blocks"] or measured["samples"] or measured["references"])
    assert not lock_path(out).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from hwnas import api

    out = tmp_path_factory.mktemp("small") / "run"
    api.search("bert-mini", algo="random", objectives="params,macs", evals=10, population=10, out=out)
    return out


def test_one_writer_per_export_and_sigterm_leaves_nothing(tmp_path, small_run, capsys, monkeypatch):
    out = tmp_path / "ex"
    args = ["export", "--run", str(small_run), "--top", "1", "--threads", "1", "--out", str(out)]
    first = _start([sys.executable, "-m", "hwnas.cli", *args])
    _wait(lambda: any(p.name.startswith(".ex.partial-") for p in tmp_path.iterdir()), first)
    code, lines = _second(args, capsys)
    assert code == 2 and len(lines) == 1 and f"PID {first.pid}" in lines[0] and str(out) in lines[0], lines
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert len(json.loads((out / "manifest.json").read_text())["models"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex"]

    # SIGTERM half-way (here: sent to this process at the first timing step) exits 130, leaving nothing
    from hwnas.deploy import pipeline

    real = pipeline.time_onnx

    def terminated(*a, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "time_onnx", terminated)
    code, lines = _second([*args[:-1], str(tmp_path / "ex2")], capsys)
    assert code == 130 and lines[-1] in ("hwnas: interrupted", "hwnas: aborted"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex"]  # no staging, no lock, no ex2


# ---------------------------------------------------------------------------------------------
# Interruptions anywhere: SIGKILL at seeded points (tests/killpoints.py), then the same command
# ---------------------------------------------------------------------------------------------
DIGITS = "hwnas.examples.mlp_digits:make_supernets"


def _listing(directory):
    return sorted(p.name for p in Path(directory).iterdir())


@pytest.mark.parametrize("seed", [0, 1])
def test_a_search_killed_at_seeded_points_ends_equal_to_an_uninterrupted_run(tmp_path, reference_run, seed):
    """Four SIGKILLs in a row, each resumed by the next process: mid-append (a torn last line),
    before the rename of an atomic write (a stale temporary file), right after an append, and
    from outside once k more rows exist; then the same command to the end."""
    rng = np.random.default_rng(seed)
    work, log = tmp_path / "work", tmp_path / "log"
    work.mkdir()
    out = work / "run"
    args = _search_args(out)[3:]
    points = [kp.KillPoint("append", int(rng.integers(1, 8)), torn=True), kp.KillPoint("replace", int(rng.integers(2, 6))),
              kp.KillPoint("append", int(rng.integers(1, 8))), None]
    done = 0
    for number, point in enumerate(points):
        if point is None:  # from outside, keyed to the rows on disk, while evaluations take 20 ms each
            target = done + int(rng.integers(1, 8))
            outcome = kp.run(args, log, env={"HWNAS_SYNTH_DELAY": "0.02"}, kill_when=lambda: _count_rows(out) >= target)
        else:
            outcome = kp.run(args, log, point=point)
        assert outcome.killed, (point, outcome.log)
        if number == 1:  # the process after the torn append saw and dropped it
            assert "dropped a torn last line" in outcome.log and "evaluations.jsonl" in outcome.log, outcome.log
        assert _count_rows(out) >= done
        done = _count_rows(out)
        assert done < N
    assert (out / "evaluations.jsonl").read_bytes().endswith(b"\n")  # the torn line is gone since
    final = kp.run(args, log)
    assert final.code == 0, final.log
    assert "resuming the interrupted search" in final.log
    assert _strip(_rows(out)) == _strip(_rows(reference_run))  # same rows, same order, no duplicates
    for name in ("pareto.json", "hypervolume.csv"):
        assert (out / name).read_bytes() == (reference_run / name).read_bytes(), name
    header = json.loads((out / "run.json").read_text())
    assert header["status"] == "complete" and header["evaluations"] == N
    assert _listing(out) == ["evaluations.jsonl", "hypervolume.csv", "pareto.json", "run.json"]  # no .tmp
    assert _listing(work) == ["run"]  # no lock file


def _profile_measurements(path):
    """Measurements (rounds of items and reference re-timings) a profile on disk holds in its
    resumable schedule state; 0 while it does not exist or is being replaced."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return 0
    state = doc.get("progress") or {}
    return sum(len(v) for v in state.get("samples", {}).values()) + len(state.get("references", []))


def test_a_profile_killed_at_seeded_points_ends_with_the_keys_of_an_uninterrupted_run(tmp_path):
    """SIGKILL after the k-th save, before the rename of a save (a stale temporary file), from
    outside once more measurements are saved, and again after a save; every rerun resumes the
    saved measurements, and the last ends with exactly the items an uninterrupted profile
    measures, in its order."""
    from hwnas.profiling.profiler import MeasurePolicy, Profiler
    from hwnas.supernets.registry import get_supernet

    expected = Profiler(get_supernet("mlp-digits", DIGITS), tmp_path / "fresh.json", threads=1,
                        policy=MeasurePolicy.quick())
    pending = expected.pending()  # what an uninterrupted profile measures, in order
    work, log = tmp_path / "work", tmp_path / "log"
    work.mkdir()
    out = work / "p.json"
    args = ["profile", "--space", "mlp-digits", "--supernet", DIGITS, "--quick", "--threads", "1", "--out", str(out)]
    rng = np.random.default_rng(16)
    outcome = kp.run(args, log, point=kp.KillPoint("save", int(rng.integers(1, 3))))
    saved = _profile_measurements(out)
    assert outcome.killed and saved > 0 and json.loads(out.read_text())["complete"] is False, outcome.log
    outcome = kp.run(args, log, point=kp.KillPoint("replace", int(rng.integers(1, 3))))  # a save cut before its rename
    assert outcome.killed and any(p.name.endswith(".tmp") for p in work.iterdir()), outcome.log
    assert _profile_measurements(out) >= saved  # the resume kept what was saved
    target = _profile_measurements(out) + int(rng.integers(3, 8))
    outcome = kp.run(args, log, kill_when=lambda: _profile_measurements(out) >= target)  # from outside
    assert outcome.killed and _profile_measurements(out) >= target, outcome.log
    saved = _profile_measurements(out)
    outcome = kp.run(args, log, point=kp.KillPoint("save", 1))
    assert outcome.killed and _profile_measurements(out) >= saved, outcome.log
    final = kp.run(args, log)
    assert final.code == 0, final.log

    doc = json.loads(out.read_text())
    space = expected.supernet.space
    assert list(doc["blocks"]) == pending["blocks"]
    assert [space.key(c["config"]) for c in doc["calibration"]] == [space.key(c) for c in pending["calibration"]]
    assert doc["noise_floor"]["reference_blocks"] == sorted(
        r.split(":", 1)[1] for r in expected.reference_items())
    assert doc["progress"] == {}  # the schedule's state is dropped once every item is final
    assert doc["settings"] == expected.settings and doc["device"]["id"] == expected.device["id"]
    assert doc["complete"] is True and doc["failures"] == {}
    assert _listing(work) == ["p.json"]  # no temporary file, no lock file


def _staged_files(parent):
    return sum(len(list(p.iterdir())) for p in Path(parent).glob(".ex.partial-*"))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A complete mlp-digits search (accuracy, params), made by a forked `hwnas search`."""
    out = tmp_path_factory.mktemp("digits") / "run"
    done = kp.run(["search", "--space", "mlp-digits", "--supernet", DIGITS, "--algo", "random", "--objectives",
                   "accuracy,params", "--evals", "10", "--population", "10", "--out", str(out)], out.parent / "log")
    assert done.code == 0, done.log
    return out


def test_an_int8_export_killed_at_seeded_points_ends_equal_to_an_uninterrupted_export(tmp_path, digits_run):
    """SIGKILL from outside once the staging directory holds k files (k = 1: the FP32 model
    being written; k = 2: it is done and its INT8 variant begun), and just before the staging directory is renamed
    into place (everything written); every rerun starts over, and the last one writes what an
    uninterrupted export writes."""
    import hashlib

    def args(out):
        return ["export", "--run", str(digits_run), "--supernet", DIGITS, "--top", "1", "--int8", "--threads", "1",
                "--out", str(out)]

    log = tmp_path / "log"
    (tmp_path / "ref").mkdir()
    reference = kp.run(args(tmp_path / "ref" / "ex"), log)
    assert reference.code == 0, reference.log
    work = tmp_path / "work"
    work.mkdir()
    out = work / "ex"
    for files in (1, 2):  # the FP32 model being written; its INT8 variant begun
        outcome = kp.run(args(out), log, kill_when=lambda: _staged_files(work) >= files)
        assert outcome.killed and not out.exists(), outcome.log
    outcome = kp.run(args(out), log, point=kp.KillPoint("replace", 1))  # all written, not yet renamed
    assert outcome.killed and not out.exists() and _staged_files(work) == 3, outcome.log
    final = kp.run(args(out), log)
    assert final.code == 0, final.log

    def result(directory):
        manifest = json.loads((directory / "manifest.json").read_text())
        models = [(m["file"], m["config"], m["run_index"], m["int8"]["file"]) for m in manifest["models"]]
        digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.onnx")}
        return models, digests

    assert result(out) == result(tmp_path / "ref" / "ex")  # same models, same ONNX bytes
    assert _listing(out) == _listing(tmp_path / "ref" / "ex") and len(_listing(out)) == 3
    assert _listing(work) == ["ex"]  # no staging directory, no lock file


KIND = OutputKind("thing", "thing.json", "hwnas-thing/1")


def test_staging_left_by_a_killed_writer_is_removed_only_when_nobody_holds_the_lock(tmp_path):
    out = tmp_path / "out"
    stale = tmp_path / ".out.partial-abcd1234"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"x" * 1000)
    other = tmp_path / ".outer.partial-abcd1234"  # another output's: never touched
    other.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hwnas.locking import exclusive\n"
                               f"with exclusive({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"in use by another hwnas process \(PID {holder.pid}\)"):
            with staged_output(out, KIND):
                pass
        assert stale.is_dir()  # a live writer's staging is left alone
    finally:
        holder.kill()
        holder.wait()
    with staged_output(out, KIND) as staging:
        (staging / "thing.json").write_text('{"schema": "hwnas-thing/1"}')
    assert not stale.exists() and other.is_dir() and (out / "thing.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".outer.partial-abcd1234", "out"]


def test_the_lock_is_reentrant_in_one_process_and_exclusive_between_processes(tmp_path):
    out = tmp_path / "x"
    with exclusive(out):
        with exclusive(out):  # a library call locking what its caller locked
            assert lock_path(out).read_text().strip() == str(os.getpid())
        assert held_by(out) is None  # this process is the writer: not "another" one
        probe = subprocess.run([sys.executable, "-c", f"from hwnas.locking import held_by; print(held_by({str(out)!r}))"],
                               env=ENV, capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == str(os.getpid())
    assert not lock_path(out).exists()


# ---------------------------------------------------------------------------------------------
# Full disk
# ---------------------------------------------------------------------------------------------
def _tiny_tmpfs(path):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def test_an_export_into_a_full_file_system_fails_cleanly(tmp_path, small_run, monkeypatch, capsys):
    import errno

    import onnx

    from hwnas.cli import main

    disk = tmp_path / "disk"
    mounted = _tiny_tmpfs(disk)  # a real full file system where we may mount one (root)
    if not mounted:
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(onnx, "save_model", full)
    out = disk / "ex"
    try:
        (disk / "keep.txt").write_text("previous good file\n")
        with pytest.raises(SystemExit) as exit_:
            main(["export", "--run", str(small_run), "--top", "1", "--threads", "1", "--out", str(out)])
        assert exit_.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("hwnas: failed: No space left on device: ") and str(out) in err[-1], err
        # no manifest, no staging directory, no lock file; the file already there is intact
        assert sorted(p.name for p in disk.iterdir()) == ["keep.txt"]
        assert (disk / "keep.txt").read_text() == "previous good file\n"
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


# ---------------------------------------------------------------------------------------------
# Bad files are refused (exit 2, naming the file and the field) and left as they were
# ---------------------------------------------------------------------------------------------
PROFILE = REPO / "profiles" / "bert-mini-cpu.json"
CONFIG = '{"D": 2, "A": [2, 2], "I": [256, 256]}'


def _corrupt_calibration(doc, value):
    doc["calibration"][0]["median_ms"] = value


def _corrupt_block(doc, value):
    doc["blocks"][sorted(doc["blocks"])[0]]["median_ms"] = value


@pytest.mark.parametrize("where,value,field", [
    (_corrupt_calibration, -0.5, "calibration[0].median_ms"),
    (_corrupt_calibration, float("nan"), "calibration[0].median_ms"),
    (_corrupt_block, -1.0, ".median_ms"),
    (_corrupt_block, float("inf"), ".median_ms"),
    (_corrupt_block, "0.2", ".median_ms"),
    (_corrupt_block, 1e308, ".median_ms"),
    (lambda doc, v: doc["calibration"][0].__setitem__("q3_ms", v), -3.0, "calibration[0].q3_ms"),
    (lambda doc, v: doc["calibration"][1].__setitem__("config", v), {"D": 99}, "calibration[1].config"),
], ids=["cal-negative", "cal-nan", "block-negative", "block-inf", "block-string", "block-1e308", "cal-q3-negative",
        "cal-bad-config"])
def test_a_bad_profile_is_refused_by_predict_naming_file_and_field(tmp_path, capsys, where, value, field):
    from hwnas.cli import main

    doc = json.loads(PROFILE.read_text())
    where(doc, value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))  # NaN and Infinity as Python writes them
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--profile", str(path), "--config", CONFIG])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert str(path) in lines[0] and field in lines[0], lines
    assert path.read_bytes() == before


@pytest.mark.parametrize("where,value,field", [
    (_corrupt_calibration, -0.5, "calibration[0].median_ms"),
    (_corrupt_block, float("nan"), ".median_ms"),
    (_corrupt_block, float("-inf"), ".median_ms"),
    (_corrupt_block, 1e308, ".median_ms"),
], ids=["cal-negative", "block-nan", "block-minus-inf", "block-1e308"])
def test_a_bad_profile_at_profile_out_is_refused_and_left_as_it_was(tmp_path, capsys, where, value, field):
    from hwnas.cli import main

    doc = json.loads(PROFILE.read_text())
    where(doc, value)
    doc["complete"] = False  # a profile to resume: it is never resumed, rewritten or marked complete
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "--space", "bert-mini", "--quick", "--threads", "1", "--out", str(path)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and field in lines[0] and str(path) in lines[0], lines
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


def test_a_search_refuses_a_bad_profile_before_any_file(tmp_path, bert_nets):
    from hwnas.search.driver import prepare

    doc = json.loads(PROFILE.read_text())
    _corrupt_calibration(doc, -0.5)  # seen: a search front at -0.396 ms, exit 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=re.escape("calibration[0].median_ms")) as refused:
        prepare(SearchRequest(space="bert-mini", algo="random", objectives="latency,params", evals=10, population=10,
                              out=tmp_path / "run", profiles=[str(bad)], supernet=bert_nets("bert-mini")))
    assert str(bad) in str(refused.value) and _listing(tmp_path) == ["bad.json"]


@pytest.mark.parametrize("text,message", [
    ('{"D": 2, "A": [2, 2], "I": [256, 256], "x": ' + "9" * 100_000 + "}", "characters long"),
    ('{"D": ' + "9" * 5_000 + "}", "a number of 5,000 characters"),
    ("[" * 60_000 + "]" * 60_000, "characters long"),
    ('{"D": ' + "[" * 30 + "]" * 30 + "}", "nested deeper than 8"),
    ('{"D": 2, "D": 3, "A": [2, 2], "I": [256, 256]}', "key 'D' twice"),
    ('{"' + "k" * 120_000 + '": 1}', "characters long"),
    ('{"' + "k" * 50_000 + '": 1}', "longer than 100 characters"),
    ('{"D": "' + "v" * 50_000 + '"}', "a string of 50,000 characters"),
    ('{"D": NaN}', "NaN"),
    ('{"' + "k" * 5_000 + '": [', "not valid JSON"),
], ids=["int-100k-digits", "int-5k-digits", "nested-60k", "nested-30", "duplicate-key", "key-120KB", "key-50KB",
        "string-50KB", "nan", "cut-short"])
def test_hostile_configuration_json_exits_2_fast_without_echoing_it(capsys, text, message):
    from hwnas.cli import main

    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main(["measure", "--space", "bert-mini", "--threads", "1", "--config", text])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and message in lines[0], lines
    assert len(lines[0]) < 400 and time.monotonic() - started < 5


def _synth_request(out):
    return SearchRequest(space="synth", algo="nsga2", objectives="accuracy,params", evals=N, out=out, seed=3,
                         population=10, evaluator=StandIn(), supernet=SyntheticNet())


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("complete") / "run"
    search(_synth_request(out))
    return out


def _edit_row(k, edit):
    def apply(lines):
        row = json.loads(lines[k])
        edit(row)
        lines[k] = json.dumps(row)
        return lines
    return apply


@pytest.mark.parametrize("edit,message", [
    (_edit_row(5, lambda r: r["objectives"].__setitem__("accuracy", float("nan"))), "line 6 is not a JSON row"),
    (_edit_row(5, lambda r: r["objectives"].__setitem__("params", -10.0)), "line 6: field 'objectives.params' is -10.0, negative"),
    (_edit_row(5, lambda r: r["objectives"].__setitem__("accuracy", 1.5)), "'objectives.accuracy' is 1.5, not a fraction"),
    (_edit_row(5, lambda r: r["objectives"].__setitem__("params", "12")), "'objectives.params' is '12', not a finite number"),
    (_edit_row(5, lambda r: r["objectives"].pop("params")), "'objectives.params' is missing"),
    (_edit_row(5, lambda r: r.__setitem__("index", 6)), "line 6: field 'index' is 6, expected 5"),
    (_edit_row(5, lambda r: r.__setitem__("index", True)), "field 'index' is True, not an integer"),
    (lambda lines: lines[:5] + [lines[4]] + lines[6:], "line 6: field 'index' is 4, expected 5"),
    (lambda lines: lines[:5] + ["garbage"] + lines[6:], "line 6 is not a JSON row"),
    (lambda lines: lines[:5] + [""] + lines[5:], "line 6 is not a JSON row"),
])
def test_bad_stored_rows_are_refused_on_resume_and_by_readers(tmp_path, complete_run, edit, message):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(complete_run, out)
    rows_file = out / "evaluations.jsonl"
    rows_file.write_text("\n".join(edit(rows_file.read_text().splitlines())) + "\n")
    header = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**header, "status": "running"}))  # a killed run, to resume
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match=message) as refused:
        search(_synth_request(out))  # stored rows get the same checks as new ones
    assert str(rows_file) in str(refused.value)
    with pytest.raises(InputError, match=message):
        read_run(out, require_complete=False)  # what export and report read
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # left as it was


def test_export_rebuilds_the_front_from_the_rows_and_refuses_an_edited_pareto_json(tmp_path, complete_run, capsys):
    import shutil

    from hwnas.cli import main

    out = tmp_path / "run"
    shutil.copytree(complete_run, out)
    run = read_run(out)
    assert run.front == json.loads((out / "pareto.json").read_text())["front"]  # rebuilt == what search wrote
    pareto = json.loads((out / "pareto.json").read_text())
    forged = {"index": 7, "config": {f"x{i}": 5 for i in range(6)}, "objectives": {"accuracy": 0.999, "params": 1.0}}
    pareto["front"].insert(0, forged)  # a never-evaluated configuration
    (out / "pareto.json").write_text(json.dumps(pareto))
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--run", str(out), "--supernet", "search_synthetic:make", "--out", str(tmp_path / "ex")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and "pareto.json" in lines[0] and "front[0]" in lines[0], lines
    assert not (tmp_path / "ex").exists()

    (out / "pareto.json").unlink()
    assert all(r["objectives"]["accuracy"] < 0.999 for r in read_run(out, require_complete=False).front)
    shutil.copy(complete_run / "pareto.json", out / "pareto.json")
    header = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**header, "evals": N - 5}))  # evals edited below the row count
    with pytest.raises(InputError, match=f"holds {N} rows, more than the budget 'evals' {N - 5}"):
        read_run(out)
    (out / "run.json").write_text(json.dumps(header))
    lines = (out / "evaluations.jsonl").read_text().splitlines()
    twin = json.loads(lines[3])
    twin["index"] = N - 1
    (out / "evaluations.jsonl").write_text("\n".join(lines[:-1] + [json.dumps(twin)]) + "\n")
    with pytest.raises(InputError, match=f"line {N}: field 'config' repeats the configuration of line 4"):
        read_run(out)


@pytest.mark.parametrize("field,value,message", [
    ("evals", "40", "field 'evals' is '40', not a positive integer"),
    ("evals", 39.5, "field 'evals' is 39.5, not a positive integer"),
    ("objectives", "accuracy", "missing or bad field"),
], ids=["evals-string", "evals-float", "objectives-string"])
def test_a_bad_run_json_is_refused_naming_the_field(tmp_path, complete_run, field, value, message):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(complete_run, out)
    header = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**header, field: value}))
    with pytest.raises(InputError, match=message):
        read_run(out)
    (out / "run.json").write_text('{"schema": "hwnas-run/1", "evals": ' + "9" * 100_000 + "}")
    with pytest.raises(InputError, match="run.json' is corrupt"):
        read_run(out)


def test_a_full_disk_during_a_search_fails_naming_the_file_and_the_rerun_completes(tmp_path, reference, monkeypatch,
                                                                                 capsys):
    import errno

    from hwnas.cli import main

    out = tmp_path / "run"
    real_fsync = os.fsync
    appended = []

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("evaluations.jsonl"):
            appended.append(fd)
            if len(appended) > 12:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(SystemExit) as exit_:
        main(_search_args(out)[3:])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"hwnas: failed: No space left on device: {out / 'evaluations.jsonl'}", err
    data = (out / "evaluations.jsonl").read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 12  # the 13th row is not left half there
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    monkeypatch.setattr(os, "fsync", real_fsync)
    main(_search_args(out)[3:])  # space freed: the same command resumes and completes
    assert _strip(_rows(out)) == reference


def test_a_full_disk_while_saving_a_profile_keeps_the_previous_good_file(tmp_path, monkeypatch):
    import errno

    from hwnas.profiling.profile import load_profile

    path = tmp_path / "p.json"
    path.write_bytes(PROFILE.read_bytes())
    profile = load_profile(path)
    profile.blocks[sorted(profile.blocks)[0]]["median_ms"] = 0.123

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error") as failed:
        profile.save(path)
    assert failed.value.filename == str(path)
    assert path.read_bytes() == PROFILE.read_bytes()  # the previous good file, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]  # no temporary file left


def test_report_and_quickstart_outputs_have_one_writer_too(tmp_path, complete_run):
    from hwnas.quickstart import run_quickstart
    from hwnas.report import build_report

    report, quick = tmp_path / "report", tmp_path / "quick"
    holder = subprocess.Popen([sys.executable, "-c", "import time; from hwnas.locking import exclusive\n"
                               f"with exclusive({str(report)!r}), exclusive({str(quick)!r}):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"'{report}' is in use by another hwnas process \(PID {holder.pid}\)"):
            build_report(complete_run, out=report)
        with pytest.raises(InputError, match=rf"'{quick}' is in use by another hwnas process \(PID {holder.pid}\)"):
            run_quickstart(quick, evals=50, threads=1)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".quick.lock", ".report.lock"]  # held, then killed
    build_report(complete_run, out=report)  # a dead holder's lock file blocks nothing
    assert (report / "report.json").is_file() and not (tmp_path / ".report.lock").exists()


def test_a_bad_export_manifest_is_refused_by_report_naming_the_field(tmp_path):
    from hwnas.deploy.pipeline import MANIFEST_SCHEMA
    from hwnas.report import MANIFEST_SCHEMA as REPORT_READS
    from hwnas.report import build_report

    assert REPORT_READS == MANIFEST_SCHEMA
    export = tmp_path / "ex"
    export.mkdir()
    model = {"file": "m.onnx", "config": {"D": 1}, "params": 10, "measured_ms": 0.5, "predicted_ms": {"here": 0.4},
             "test_accuracy": 0.8, "int8": {"measured_ms": 0.3, "test_accuracy": 0.79}}
    for field, value, name in [("measured_ms", -1.0, "models[0].measured_ms"),
                               ("test_accuracy", 3.0, "models[0].test_accuracy"),
                               ("predicted_ms", {"here": "fast"}, "models[0].predicted_ms.here"),
                               ("int8", {"measured_ms": float("inf")}, "models[0].int8.measured_ms"),
                               ("config", None, "models[0].config")]:
        doc = {"schema": MANIFEST_SCHEMA, "models": [{**model, field: value}]}
        (export / "manifest.json").write_text(json.dumps(doc))
        before = (export / "manifest.json").read_bytes()
        with pytest.raises(InputError, match=rf"manifest.json' is corrupt: .*{re.escape(name)}"):
            build_report(export)
        assert (export / "manifest.json").read_bytes() == before and sorted(p.name for p in export.iterdir()) == [
            "manifest.json"]


# ---------------------------------------------------------------------------------------------
# Resource limits
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two logical cores to tell 2 threads from 1")
def test_search_threads_sets_torch_threads_of_the_evaluations_and_is_recorded(tmp_path, capsys):
    import search_synthetic
    import torch

    from hwnas.cli import main

    torch.set_num_threads(1)
    out = tmp_path / "run"
    search_synthetic.TORCH_THREADS.clear()
    main([*_search_args(out)[3:], "--threads", "2"])
    assert search_synthetic.TORCH_THREADS and set(search_synthetic.TORCH_THREADS) == {2}  # where it evaluates
    assert json.loads((out / "run.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == 1  # restored for a library caller
    capsys.readouterr()
    main([*_search_args(out)[3:], "--threads", "1"])  # threads are not part of a run's identity
    assert "complete: showing its results" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "1000"])
def test_search_threads_out_of_range_exits_2_before_any_file(tmp_path, capsys, value):
    from hwnas.cli import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main([*_search_args(out)[3:], "--threads", value])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and "--threads" in lines[-1] and value in lines[-1], lines
    assert _listing(tmp_path) == []


def _first_loss_evaluation(monkeypatch, capfd, request):
    """stderr of a loss search up to its first brief training (which is stopped there)."""
    from hwnas.evaluation import ose_proxy

    seen = []

    def first(supernet, config, setting=None):
        seen.append(capfd.readouterr().err)
        raise KeyboardInterrupt("stopped at the first evaluation")

    monkeypatch.setattr(ose_proxy, "brief_training_loss", first)
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt):
        search(request)
    assert len(seen) == 1
    return seen[0]


def test_a_costly_loss_search_warns_before_its_first_evaluation(tmp_path, monkeypatch, capfd, bert_nets):
    net = bert_nets("bert-linas")
    err = _first_loss_evaluation(monkeypatch, capfd, SearchRequest(
        space="bert-linas", algo="random", objectives="loss,params", evals=10, population=10, out=tmp_path / "run",
        supernet=net))
    largest = net.space.canonical(net.space.from_genes(net.space.gene_upper_bounds, validate=False))
    params = net.brief_training_params(largest)  # BERT-base with the task's embeddings: ~86 M
    assert params > 50e6
    warnings = [line for line in err.splitlines() if line.startswith("hwnas: warning: ")]
    assert len(warnings) == 1, err
    assert f"up to {params / 1e6:.0f} M parameters in space 'bert-linas'" in warnings[0]
    assert f"about {params * 16 / 1e9:.1f} GB of memory" in warnings[0] and "1,280 training examples" in warnings[0]


def test_a_cheap_loss_search_gives_no_cost_warning(tmp_path, monkeypatch, capfd, bert_nets):
    err = _first_loss_evaluation(monkeypatch, capfd, SearchRequest(
        space="bert-mini", algo="random", objectives="loss,params", evals=10, population=10, out=tmp_path / "run",
        supernet=bert_nets("bert-mini")))
    assert "warning" not in err


# ---------------------------------------------------------------------------------------------
# Found when the commands were tried as a hostile user would (issue 16), not covered above
# ---------------------------------------------------------------------------------------------
def test_export_run_never_imports_the_plugin_its_run_json_names(tmp_path, complete_run, monkeypatch, capsys):
    import shutil

    from hwnas.cli import main

    run = tmp_path / "shared-run"
    shutil.copytree(complete_run, run)
    header = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**header, "plugin": "hostile_plugin:make"}))
    ran = tmp_path / "it-ran"
    (tmp_path / "hostile_plugin.py").write_text(
        f"import pathlib\npathlib.Path({str(ran)!r}).write_text('imported')\ndef make():\n    raise SystemExit(0)\n")
    monkeypatch.chdir(tmp_path)  # the module is importable from here and from sys.path
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--run", str(run), "--top", "1", "--out", str(tmp_path / "ex")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and "--supernet hostile_plugin:make" in lines[0], lines
    assert not ran.exists() and "hostile_plugin" not in sys.modules and not (tmp_path / "ex").exists()


def test_an_export_into_a_mount_point_is_refused_before_any_work(tmp_path, small_run, capsys):
    from hwnas.cli import main

    mount = tmp_path / "mnt"
    if not _tiny_tmpfs(mount):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        started = time.monotonic()
        with pytest.raises(SystemExit) as exit_:
            main(["export", "--run", str(small_run), "--top", "1", "--threads", "1", "--out", str(mount)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(lines) == 1 and "is a mount point" in lines[0], lines
        assert time.monotonic() - started < 10 and _listing(mount) == []  # refused before the work
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert _listing(tmp_path) == ["mnt"]


def test_outputs_at_symlinks_land_where_the_links_point(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out in (tmp_path / "link", tmp_path / "dangling"):
        with staged_output(out, KIND) as staging:
            (staging / "thing.json").write_text('{"schema": "hwnas-thing/1"}')
        assert out.is_symlink() and _listing(out) == ["thing.json"]
    assert _listing(tmp_path) == ["dangling", "link", "nowhere", "target"]  # no staging or lock left


def test_a_report_never_replaces_a_folder_with_the_users_notes(tmp_path, complete_run):
    from hwnas.report import build_report

    folder = tmp_path / "mine"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "report.md").write_text("my notes\n")
    (folder / "plot.png").write_bytes(b"\x89PNG mine")
    with pytest.raises(InputError, match="not part of an hwnas report"):
        build_report(complete_run, out=folder)
    assert (folder / "notes" / "report.md").read_text() == "my notes\n" and _listing(folder) == ["notes", "plot.png"]
    assert _listing(tmp_path) == ["mine"]


def test_a_predictor_list_given_as_one_word_names_the_word(tmp_path, capsys):
    from hwnas.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["search", "--supernet", "search_synthetic:make", "--space", "synth", "--algo", "linas", "--objectives",
              "accuracy,params", "--evals", "60", "--out", str(tmp_path / "run"), "--setting", "predictors=foo"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and lines == ["hwnas: error: unknown predictor 'foo' (known: ridge, svr, gbt)"], lines
    assert _listing(tmp_path) == []


def test_binary_files_are_refused_naming_the_file(tmp_path, complete_run, capsys):
    import shutil

    from hwnas.cli import main

    profile = tmp_path / "p.json"
    profile.write_bytes(b"\xff\xfe{}")
    with pytest.raises(SystemExit) as exit_:  # was exit 1 with a UnicodeDecodeError
        main(["predict", "--profile", str(profile), "--config", CONFIG])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and str(profile) in lines[0] and "not UTF-8" in lines[0], lines
    run = tmp_path / "run"
    shutil.copytree(complete_run, run)
    (run / "hypervolume.csv").write_bytes(b"evaluations,hypervolume\n\xff\xfe\n")
    with pytest.raises(SystemExit) as exit_:  # was exit 1 with a UnicodeDecodeError
        main(["report", str(run), "--out", str(tmp_path / "report")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and "hypervolume.csv" in lines[0], lines
    rows = (run / "evaluations.jsonl").read_bytes().split(b"\n")
    (run / "evaluations.jsonl").write_bytes(b"\n".join(rows[:3] + [b"\xff\xfe garbage"] + rows[4:]))
    with pytest.raises(InputError, match="line 4 is not a JSON row"):
        read_run(run)
    assert _listing(tmp_path) == ["p.json", "run"]


def test_a_report_is_not_broken_by_a_sibling_folders_corrupt_manifest(tmp_path, complete_run):
    import shutil

    from hwnas.report import build_report

    run = tmp_path / "run"
    shutil.copytree(complete_run, run)
    for name, data in [("binary", b"\xff\xfe"), ("nested", b"[" * 100_000), ("huge", b"9" * 100_000)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_bytes(data)  # was exit 1 (UnicodeDecodeError)
    summary = build_report(run, out=tmp_path / "report")
    assert summary["export"] is None and (tmp_path / "report" / "report.json").is_file()
