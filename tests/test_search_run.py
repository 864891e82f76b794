"""The run directory: resume after interruption (in-process, SIGTERM, kill -9), refusal of foreign
or different runs, multi-profile latency objectives, and bad input through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from search_synthetic import StandIn, SyntheticNet

from hwnas.cli import main
from hwnas.errors import InputError
from hwnas.predictors.latency import LatencyPredictor
from hwnas.profiling.profile import Profile
from hwnas.search.archive import Archive
from hwnas.search.driver import SearchRequest, execute, prepare, search
from hwnas.search.executor import LocalExecutor
from hwnas.search.store import RunDirectory, read_run

TESTS = Path(__file__).parent
REPO = TESTS.parent
N = 40


def request(out, algo="nsga2", evaluator=None, **kw):
    settings = {"inner_evals": 1000, "min_batch": 10} if algo == "linas" else {}
    base = dict(space="synth", algo=algo, objectives="accuracy,params", evals=N, out=out, seed=3, population=10,
                settings=settings, evaluator=evaluator or StandIn(), supernet=SyntheticNet())
    base.update(kw)
    return SearchRequest(**base)


def rows(out):
    return [json.loads(x) for x in (Path(out) / "evaluations.jsonl").read_text().splitlines()]


def strip(rs):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("whole")
    return {algo: strip(rows(search(request(base / algo, algo)).out)) for algo in ("nsga2", "linas")}


@pytest.mark.parametrize("algo", ["nsga2", "linas"])
def test_resume_after_interrupt_loses_and_repeats_nothing(tmp_path, uninterrupted, algo):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        search(request(out, algo, StandIn(interrupt_after=17)))
    assert len(rows(out)) == 17
    header = json.loads((out / "run.json").read_text())
    assert header["status"] == "running"
    assert len(json.loads((out / "pareto.json").read_text())["front"]) >= 1
    # kill -9 in the middle of a write: a half line at the end is ignored and cut off
    with open(out / "evaluations.jsonl", "a") as fh:
        fh.write('{"index": 17, "config": {"x0": 1, "x')
    resumed = StandIn()
    result = search(request(out, algo, resumed))
    assert resumed.calls == N - 17  # no evaluation repeated
    assert result.evaluations == N and result.resumed_from == 17 and result.status == "complete"
    assert strip(rows(out)) == uninterrupted[algo]  # the same rows as a run never interrupted
    hv = (out / "hypervolume.csv").read_text().splitlines()
    assert len(hv) == N + 1 and hv[-1].startswith(f"{N},")
    # a complete run reopened does nothing
    again = StandIn()
    assert search(request(out, algo, again)).evaluations == N and again.calls == 0


def test_foreign_and_different_directories_are_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no hwnas run"):
        prepare(request(foreign))
    done = tmp_path / "done"
    search(request(done, evals=10))
    with pytest.raises(InputError, match="holds a different search \\(seed"):
        prepare(request(done, evals=10, seed=4))
    with pytest.raises(InputError, match="holds a different search \\(algo"):
        prepare(request(done, evals=10, algo="random"))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        prepare(request(a_file))
    with pytest.raises(InputError, match="cannot be created"):
        prepare(request(a_file / "sub"))
    (done / "run.json").write_text("{broken")
    with pytest.raises(InputError, match="corrupt"):
        prepare(request(done, evals=10))
    with pytest.raises(InputError, match="not a search run"):
        read_run(foreign)


def test_bad_budget_and_settings_before_any_work(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(InputError, match="smaller than one population"):
        prepare(request(out, evals=5))
    with pytest.raises(InputError, match="exceeds the 46656 valid configurations"):
        prepare(request(out, evals=50_000))
    with pytest.raises(InputError, match="expensive and cannot be constrained"):
        prepare(request(out, constraints=["accuracy>=0.9"]))
    with pytest.raises(InputError, match="must look like"):
        prepare(request(out, constraints=["params<2e6"]))
    with pytest.raises(InputError, match="unknown objective 'flops'"):
        prepare(request(out, objectives="accuracy,flops"))
    with pytest.raises(InputError, match="needs a device profile"):
        prepare(request(out, objectives="accuracy,latency"))
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Several profiles: one latency objective per device
# ---------------------------------------------------------------------------------------------
def make_profile(path: Path, net, device_id: str, scale: float, space: str | None = None) -> Path:
    shape = dict(net.default_shape)
    keys = net.all_blocks(shape)
    blocks = {k: {"median_ms": scale * (0.05 + 0.01 * i)} for i, k in enumerate(keys)}
    Profile(space=space or net.name, device={"id": device_id}, settings={"ep": "cpu", "threads": 1, "shape": shape},
            blocks=blocks, complete=True).save(path)
    return path


@pytest.fixture(scope="module")
def mini_profiles(tmp_path_factory, bert_nets):
    base = tmp_path_factory.mktemp("profiles")
    net = bert_nets("bert-mini")
    return (make_profile(base / "laptop.json", net, "cpu-aaaa", 1.0),
            make_profile(base / "server.json", net, "cpu-bbbb", 0.3))


def test_one_latency_objective_per_profile(tmp_path, bert_nets, mini_profiles):
    net = bert_nets("bert-mini")
    bound = 0.5
    result = search(SearchRequest(space="bert-mini", algo="random", objectives="latency,params", evals=20,
                                  out=tmp_path / "multi", profiles=[str(p) for p in mini_profiles],
                                  constraints=[f"latency:cpu-bbbb<={bound}"], population=10, supernet=net))
    names = [o["name"] for o in result.objectives]
    assert names == ["latency:cpu-aaaa", "latency:cpu-bbbb", "params"]
    run = read_run(result.out)
    header, rs = run.meta, run.evaluations
    assert [p["label"] for p in header["profiles"]] == ["cpu-aaaa", "cpu-bbbb"]
    assert header["constraints"] == [f"latency:cpu-bbbb<={bound}"]
    assert len(header["reference_point"]) == 3
    genes = np.stack([net.space.to_genes(r["config"]) for r in rs])
    for path, name in zip(mini_profiles, names):
        expected = LatencyPredictor.load(str(path), net).predict(genes)
        assert np.allclose([r["objectives"][name] for r in rs], expected, rtol=1e-12)
    assert max(r["objectives"]["latency:cpu-bbbb"] for r in rs) <= bound
    # the two devices disagree by their scale: the objectives are really per device
    a = np.array([r["objectives"]["latency:cpu-aaaa"] for r in rs])
    b = np.array([r["objectives"]["latency:cpu-bbbb"] for r in rs])
    assert np.allclose(b, 0.3 * a)


def test_profile_labels_and_mistakes(tmp_path, bert_nets, mini_profiles):
    net = bert_nets("bert-mini")
    twin = make_profile(tmp_path / "twin.json", net, "cpu-aaaa", 2.0)

    def req(**kw):
        base = dict(space="bert-mini", algo="random", objectives="latency,params", evals=20, out=tmp_path / "x",
                    population=10, supernet=net)
        base.update(kw)
        return SearchRequest(**base)

    same_device = prepare(req(profiles=[str(mini_profiles[0]), str(twin)]))
    assert same_device.problem.names == ["latency:laptop", "latency:twin", "params"]
    with pytest.raises(InputError, match="ambiguous"):
        prepare(req(profiles=[str(p) for p in mini_profiles], constraints=["latency<=1"]))
    with pytest.raises(InputError, match="no profile labelled 'cpu-cccc'"):
        prepare(req(profiles=[str(p) for p in mini_profiles], objectives="latency:cpu-cccc"))
    with pytest.raises(InputError, match="used by no objective"):
        prepare(req(profiles=[str(mini_profiles[0])], objectives="params"))
    other = make_profile(tmp_path / "ose.json", net, "cpu-dddd", 1.0, space="bert-ose")
    with pytest.raises(InputError, match="is for space 'bert-ose', not 'bert-mini'"):
        prepare(req(profiles=[str(other)]))
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# Through the CLI
# ---------------------------------------------------------------------------------------------
def cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


@pytest.mark.parametrize("extra,message", [
    (["--algo", "sgd", "--objectives", "latency,params"], "unknown algorithm 'sgd'"),
    (["--algo", "random", "--objectives", "latency,flops"], "unknown objective 'flops'"),
    (["--algo", "random", "--objectives", "latency,params", "--evals", "10"], "smaller than one population"),
    (["--algo", "random", "--objectives", "accuracy,params", "--space", "bert-ose"], "no accuracy evaluator"),
    (["--algo", "random", "--objectives", "params", "--constraint", "params<=two"], "is not a number"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, mini_profiles, extra, message):
    out = tmp_path / "out"
    args = ["search", "--space", "bert-mini", "--evals", "100", "--out", str(out)]
    if "latency" in " ".join(extra):
        args += ["--profile", str(mini_profiles[0])]
    code, stdout, stderr = cli(args + extra, capsys)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_latency_without_profile_and_foreign_dir(tmp_path, capsys):
    code, _, err = cli(["search", "--space", "bert-mini", "--algo", "linas", "--objectives", "latency,params",
                        "--evals", "100", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "needs a device profile" in err
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x").write_text("x")
    code, _, err = cli(["search", "--space", "bert-mini", "--algo", "random", "--objectives", "params,macs",
                        "--evals", "60", "--out", str(tmp_path / "f")], capsys)
    assert code == 2 and "holds no hwnas run" in err


def test_cli_json_run(tmp_path, capsys, mini_profiles):
    out = tmp_path / "run"
    code = 0
    try:
        main(["search", "--space", "bert-mini", "--algo", "nsga2", "--objectives", "latency,params", "--profile",
              str(mini_profiles[0]), "--evals", "20", "--population", "10", "--out", str(out), "--json"])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, None)
    doc = json.loads(captured.out)
    assert doc["status"] == "complete" and doc["evaluations"] == 20 and doc["front"]
    assert {"run.json", "evaluations.jsonl", "pareto.json", "hypervolume.csv"} <= {p.name for p in out.iterdir()}


def _cli_process(out, delay):
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{REPO}", HWNAS_SYNTH_DELAY=str(delay))
    args = [sys.executable, "-m", "hwnas.cli", "search", "--supernet", "search_synthetic:make", "--space", "synth",
            "--algo", "nsga2", "--objectives", "accuracy,params", "--evals", str(N), "--population", "10",
            "--seed", "3", "--out", str(out)]
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(out, n, proc, timeout=60.0):
    path = Path(out) / "evaluations.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"search ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("search made no progress")


def test_cli_sigterm_then_kill_9_then_resume(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _cli_process(out, delay=0.05)
    _wait_rows(out, 8, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    first = len(rows(out))
    assert 8 <= first < N
    proc = _cli_process(out, delay=0.05)
    _wait_rows(out, first + 8, proc)
    proc.kill()  # SIGKILL: no clean-up at all
    proc.communicate(timeout=60)
    proc = _cli_process(out, delay=0)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert strip(rows(out)) == uninterrupted["nsga2"]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_cli_bad_input_in_a_real_process(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", "search", "--space", "bert-mini", "--algo", "random",
                           "--objectives", "params,flops", "--evals", "60", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hwnas: error: unknown objective 'flops' (known: accuracy, latency, params, macs, loss, fidelity)"]
    assert proc.stdout == "" and not out.exists()


# ---------------------------------------------------------------------------------------------
# The driver's loop: budget, truncated batches, the archive, the executor
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [{"population": 1}, {"mutation_prob": 5}, {"crossover_eta": float("nan")},
                                      {"population": "abc"}])
def test_bad_algorithm_settings_are_refused_in_prepare_and_write_nothing(tmp_path, settings):
    out = tmp_path / "never"
    with pytest.raises(InputError, match="nsga2 setting"):
        prepare(request(out, population=None, settings=settings))
    assert not out.exists()


class TellSpy:
    """Wraps an algorithm and records every proposal and tell."""

    def __init__(self, algorithm):
        self.inner = algorithm
        self.asked, self.told = [], []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def setup(self, problem, budget, rng):
        self.inner.setup(problem, budget, rng)

    def ask(self):
        proposal = self.inner.ask()
        if proposal is not None:
            self.asked.append(proposal.genes.copy())
        return proposal

    def tell(self, genes, F):
        self.told.append((np.array(genes), np.array(F)))
        self.inner.tell(genes, F)


def test_a_batch_cut_at_the_budget_tells_only_the_served_rows(tmp_path):
    prepared = prepare(request(tmp_path / "run", algo="random", evals=25, population=10))
    spy = TellSpy(prepared.algorithm)
    prepared.algorithm = spy
    result = execute(prepared)
    assert result.evaluations == 25 and result.stop_reason == "budget"
    assert [len(a) for a in spy.asked] == [10, 10, 10]
    assert [len(g) for g, _ in spy.told] == [10, 10, 5]
    genes, F = spy.told[-1]
    np.testing.assert_array_equal(genes, spy.asked[-1][:5])
    assert F.shape == (5, 2)
    served = rows(tmp_path / "run")[20:]
    np.testing.assert_array_equal(F[:, 0], [r["objectives"]["accuracy"] for r in served])


class BatchExecutor(LocalExecutor):
    """Counts the configurations handed over per batch."""

    def __init__(self):
        self.batches = []

    def evaluate(self, problem, genes):
        self.batches.append(len(genes))
        yield from super().evaluate(problem, genes)


def test_the_archive_evaluates_at_most_the_budget_and_repeats_nothing(tmp_path):
    prepared = prepare(request(tmp_path / "run", algo="random", evals=4, population=2,
                               constraints=["params<=8000"]))
    run = RunDirectory.open(tmp_path / "run", prepared.header)
    try:
        executor = BatchExecutor()
        archive = Archive(prepared.problem, run, 4, executor=executor)
        g = prepared.problem.sample(6, np.random.default_rng(0))
        F = archive.evaluate_batch(g[[0, 1, 0]])  # a repeat inside the batch is evaluated once
        assert F.shape == (3, 2) and np.array_equal(F[0], F[2]) and executor.batches == [2]
        F = archive.evaluate_batch(g[[1, 2, 3, 4, 5]])  # served: 0, 1, 2, 3 -> cut after g[3]
        assert F.shape == (3, 2) and archive.exhausted and not archive.diverged
        assert executor.batches == [2, 2] and archive.evaluations == 4
        assert [r["config"] for r in run.rows] == prepared.problem.configs(g[:4])
        with pytest.raises(ValueError, match="infeasible"):
            archive.evaluate_batch(np.full((1, g.shape[1]), 5))  # params 11,500 > 8000
    finally:
        run.close()


def test_the_driver_never_evaluates_more_than_evals(tmp_path):
    executor = BatchExecutor()
    evaluator = StandIn()
    result = search(request(tmp_path / "run", algo="nsga2", evals=23, population=10, evaluator=evaluator),
                    executor=executor)
    assert result.evaluations == 23 == evaluator.calls == sum(executor.batches)
    assert len({r["key"] for r in rows(tmp_path / "run")}) == 23
    assert max(executor.batches) <= 10  # a whole batch per call, never more than asked


def test_a_replay_that_diverges_from_the_archive_still_stops_at_evals(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        search(request(a, algo="random", evals=20, population=10, evaluator=StandIn(interrupt_after=10)))
    search(request(b, algo="random", evals=20, population=10, seed=4))
    # Another seed's first rows in a's archive: a's replay asks for none of them.
    lines = (b / "evaluations.jsonl").read_text().splitlines()[:10]
    (a / "evaluations.jsonl").write_text("\n".join(lines) + "\n")
    evaluator = StandIn()
    result = search(request(a, algo="random", evals=20, population=10, evaluator=evaluator))
    assert result.stop_reason == "budget (replay diverged from the archive)"
    assert result.evaluations == 20 and evaluator.calls == 10 and result.resumed_from == 10
