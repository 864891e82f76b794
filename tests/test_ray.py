"""Scale-out on Ray: ``--executor ray`` equals local, a killed worker loses and repeats nothing,
a failing configuration stops the search cleanly, ``--fleet`` profiles every labelled device.

One real local Ray instance (2 CPUs, two device labels) is shared by the module; tests/ is put
on the workers' PYTHONPATH so they can import the test plug-ins of ``ray_plugin`` (the digits
MLP with briefly trained weights: every Ray worker trains its own copy, and these tests compare
Ray with local runs, not accuracies).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.cli import main

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install -e '.[test,ray]')")

TESTS = Path(__file__).resolve().parent
FAST = "ray_plugin:make_fast"
SLOW = "ray_plugin:make_slow"
FAILING = "ray_plugin:make_failing"
DIGITS = "hwnas.examples.mlp_digits:make_supernets"


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance: 2 CPUs, devices ``cpu-a`` and ``cpu-b`` on its one node."""
    import ray

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), *([saved] if saved else [])])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             resources={"device:cpu-a": 1, "device:cpu-b": 1})
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def rows(out: Path) -> list[tuple[int, str, dict]]:
    """(index, key, objectives) of each row of a run directory."""
    lines = (out / "evaluations.jsonl").read_text().splitlines()
    return [(r["index"], r["key"], r["objectives"]) for r in map(json.loads, lines)]


def search_args(out: Path, plugin: str = SLOW, algo: str = "nsga2", evals: int = 24) -> list[str]:
    return ["search", "--supernet", plugin, "--space", "mlp-digits", "--algo", algo,
            "--objectives", "accuracy,params", "--evals", str(evals), "--population", "10",
            "--out", str(out), "--json"]


# ---------------------------------------------------------------------------------------------
# Without Ray, and the core never imports it
# ---------------------------------------------------------------------------------------------
def test_without_ray_exit_2_with_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    for args in (search_args(tmp_path / "run", DIGITS) + ["--executor", "ray"],
                 ["profile", "--fleet", "--supernet", DIGITS, "--space", "mlp-digits", "--out", str(tmp_path / "p")]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "pip install 'hwnas[ray]'" in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "p").exists()


def test_ray_address_without_ray_executor_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(search_args(tmp_path / "run", DIGITS) + ["--ray-address", "auto"])
    assert exc.value.code == 2 and "--ray-address 'auto' needs --executor ray" in capsys.readouterr().err


def test_core_does_not_import_ray():
    code = ("import sys, hwnas.cli, hwnas.search.driver, hwnas.profiling.profiler, hwnas.commands.search, "
            "hwnas.commands.profile; assert 'ray' not in sys.modules, 'ray imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------
@needs_ray
def test_ray_search_equals_local(ray_cluster, tmp_path, capsys):
    from hwnas.distributed.ray_executor import ray_executor
    from hwnas.search.driver import SearchRequest, execute, prepare

    # nsga2 as a user runs it (`--executor ray`: its own workers); random and linas through one
    # executor built as the CLI builds it (each Ray worker start costs seconds).
    main(search_args(tmp_path / "nsga2-local", FAST))
    main(search_args(tmp_path / "nsga2-ray", FAST) + ["--executor", "ray"])
    capsys.readouterr()
    shared = None
    try:
        for algo in ("random", "linas"):
            request = {"space": "mlp-digits", "algo": algo, "objectives": "accuracy,params", "evals": 24,
                       "plugin": FAST, "population": 10}
            execute(prepare(SearchRequest(out=tmp_path / f"{algo}-local", **request)))
            prepared = prepare(SearchRequest(out=tmp_path / f"{algo}-ray", **request))
            shared = shared or ray_executor(prepared)
            execute(prepared, None, shared)
    finally:
        if shared is not None:
            shared.close()
    for algo in ("nsga2", "random", "linas"):
        local, remote = tmp_path / f"{algo}-local", tmp_path / f"{algo}-ray"
        assert len(rows(local)) == 24 and rows(remote) == rows(local), algo  # same rows, same order
        assert json.loads((remote / "pareto.json").read_text()) == json.loads((local / "pareto.json").read_text())
        assert json.loads((remote / "run.json").read_text())["status"] == "complete"
    # Rerunning a complete ray run changes nothing (and starts no actors).
    before = (tmp_path / "random-ray" / "evaluations.jsonl").read_bytes()
    main(search_args(tmp_path / "random-ray", FAST, algo="random") + ["--executor", "ray"])
    assert (tmp_path / "random-ray" / "evaluations.jsonl").read_bytes() == before


@needs_ray
def test_killed_worker_is_retried_nothing_lost_or_repeated(ray_cluster, tmp_path):
    from hwnas.distributed.ray_executor import ray_executor
    from hwnas.search.driver import SearchRequest, execute, prepare

    def request(out: Path, plugin: str) -> SearchRequest:
        return SearchRequest(space="mlp-digits", algo="nsga2", objectives="accuracy,params", evals=24,
                             out=out, plugin=plugin, population=10, seed=3)

    execute(prepare(request(tmp_path / "local", FAST)))  # the same accuracies as SLOW, without its delay
    prepared = prepare(request(tmp_path / "ray", SLOW))
    with ray_executor(prepared, actors=2, max_restarts=2, max_task_retries=2) as executor:
        pids = executor.pids()
        killed: list[int] = []

        def kill_mid_batch(event) -> None:
            if event.row is not None and event.evaluations == 13 and not killed:  # mid 2nd batch
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        result = execute(prepared, kill_mid_batch, executor)
        after = executor.pids()
    assert killed and after[0] != pids[0] and after[1] == pids[1]  # actor 0 was restarted
    got = rows(tmp_path / "ray")
    assert result.evaluations == 24 and len({key for _, key, _ in got}) == 24
    assert [i for i, _, _ in got] == list(range(24))
    assert got == rows(tmp_path / "local")


@needs_ray
def test_failing_configuration_stops_cleanly_keeping_earlier_rows(ray_cluster, tmp_path, capsys):
    import ray_plugin

    outcomes = {}
    for mode in ("local", "ray"):
        out = tmp_path / mode
        with pytest.raises(SystemExit) as exc:
            main(search_args(out, FAILING) + ["--executor", mode])
        err = capsys.readouterr().err
        assert exc.value.code == 1
        assert f"evaluating configuration {ray_plugin.FAIL_KEY} failed: RuntimeError: planted failure" in err, err
        assert json.loads((out / "run.json").read_text())["status"] == "running"  # resumable
        outcomes[mode] = rows(out)
    assert len(outcomes["local"]) == 8 and outcomes["ray"] == outcomes["local"]  # the rows before it, no more


@needs_ray
def test_input_error_in_a_worker_exits_2_as_locally(ray_cluster, tmp_path, capsys):
    # mlp-digits has no brief-training loss: evaluating `loss` raises InputError, locally and in an actor.
    for mode in ("local", "ray"):
        args = search_args(tmp_path / mode, FAST, evals=10)
        args[args.index("accuracy,params")] = "accuracy,loss"
        with pytest.raises(SystemExit) as exc:
            main(args + ["--executor", mode])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "has no brief-training loss" in err, (mode, err)


# ---------------------------------------------------------------------------------------------
# Fleet profiling
# ---------------------------------------------------------------------------------------------
def fleet(out: Path, *extra: str) -> list[str]:
    return ["profile", "--fleet", "--supernet", FAST, "--space", "mlp-digits", "--quick", "--out", str(out),
            "--json", *extra]


@needs_ray
def test_fleet_profiles_each_device_and_resumes(ray_cluster, tmp_path, capsys):
    from hwnas.profiling.profile import load_profile

    out = tmp_path / "fleet"
    main(fleet(out))
    first = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    assert set(first) == {"cpu-a", "cpu-b"} and all(d["status"] == "complete" for d in first.values())
    profiles = {n: load_profile(out / f"{n}.json", space="mlp-digits") for n in first}
    assert all(p.complete and len(p.blocks) == 20 and len(p.calibration) == 10 for p in profiles.values())

    # cpu-b "interrupted": three blocks missing. A rerun measures those three on cpu-b, nothing on cpu-a.
    data = json.loads((out / "cpu-b.json").read_text())
    dropped = sorted(data["blocks"])[:3]
    for key in dropped:
        del data["blocks"][key]
    data["complete"] = False
    (out / "cpu-b.json").write_text(json.dumps(data))
    main(fleet(out))
    second = {d["device"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    # "measured" counts measurements: each dropped block in every round (plus reference blocks
    # and any re-measured round), nothing on cpu-a
    from hwnas.profiling.profiler import MeasurePolicy

    assert second["cpu-a"]["measured"] == 0 and second["cpu-b"]["measured"] >= 3 * MeasurePolicy.quick().rounds
    again = {n: load_profile(out / f"{n}.json", space="mlp-digits") for n in second}
    assert again["cpu-a"].blocks == profiles["cpu-a"].blocks  # nothing re-measured
    assert again["cpu-b"].complete and set(again["cpu-b"].blocks) == set(profiles["cpu-b"].blocks)
    assert all(again["cpu-b"].blocks[k] == profiles["cpu-b"].blocks[k] for k in profiles["cpu-b"].blocks
               if k not in dropped)

    # A device that fails (its file made with other settings) is reported by name; the other arrives.
    data = json.loads((out / "cpu-b.json").read_text())
    data["settings"]["threads"] = 99
    (out / "cpu-b.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exc:
        main(fleet(out))
    captured = capsys.readouterr()
    assert exc.value.code == 1
    third = {d["device"]: d for d in json.loads(captured.out)["devices"]}
    assert third["cpu-a"]["status"] == "complete" and third["cpu-b"]["status"] == "failed"
    assert "hwnas: device cpu-b failed:" in captured.err and "other settings" in captured.err


@needs_ray
def test_fleet_unknown_device_exit_2(ray_cluster, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(fleet(tmp_path / "f", "--device", "cpu-z"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--device 'cpu-z' is not in the Ray cluster (devices: cpu-a, cpu-b)" in err


def test_fleet_node_lost_mid_profile_leaves_last_snapshot_resumable(tmp_path):
    """The driver side of a node that disappears mid-profile (no Ray needed: a fake stream)."""
    from hwnas.distributed.fleet import DeviceResult, FleetJob, _drive_device

    class Lost(Exception):
        pass

    class FakeRay:
        class exceptions:  # noqa: N801 (mirrors ray.exceptions)
            RayError = Lost

        def __init__(self) -> None:
            self.submitted = 0
            self.alive = True

        def get(self, item):
            return item

        def nodes(self):
            return [{"Alive": self.alive, "Resources": {"device:cpu-a": 1.0}}]

    fake = FakeRay()

    class Remote:
        def options(self, **kw):
            assert kw == {"resources": {"device:cpu-a": 1}}
            return self

        def remote(self, job, device, existing):
            fake.submitted += 1

            def stream():
                yield ("start", 5)
                yield ("item", "block a")
                yield ("snapshot", '{"partial": 1}')
                yield ("item", "block b")
                fake.alive = False  # the node leaves the cluster
                raise Lost("node died")

            return stream()

    result = DeviceResult("cpu-a", tmp_path / "cpu-a.json")
    events = []
    _drive_device(fake, Remote(), FleetJob("mlp-digits", None), result, lambda *e: events.append(e), retries=2)
    assert fake.submitted == 1  # not resubmitted: its node is gone (a retry would wait for ever)
    assert json.loads(result.path.read_text()) == {"partial": 1}  # what was measured is kept
    assert result.status == "failed" and "its node left the Ray cluster" in result.error
    assert "resumable" in result.error and events[-1][1] == "error"

    # A worker crash on a node that stays is resubmitted (resuming from the snapshot) up to `retries`.
    class Crashing(Remote):
        def remote(self, job, device, existing):
            fake.submitted += 1
            assert existing == '{"partial": 1}'  # resumed from what arrived

            def stream():
                raise Lost("worker crashed")
                yield  # pragma: no cover

            return stream()

    fake.alive, fake.submitted = True, 0
    result = DeviceResult("cpu-a", tmp_path / "cpu-a.json")
    _drive_device(fake, Crashing(), FleetJob("mlp-digits", None), result, None, retries=2)
    assert fake.submitted == 3 and "worker lost" in result.error and result.status == "failed"
