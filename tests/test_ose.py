"""OSE (de Wynter's FPTAS): W-coefficient, maximum point, ε-intervals, the (1 - ε) bound, the
op-count surrogate, and the OSE algorithm through the search framework."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwnas.errors import InputError
from hwnas.search.algorithms import ose_math as ose
from hwnas.supernets.bert import BertArch, LayerSpec, make_bert_supernet
from hwnas.supernets.bert.ops import bert_op_count


# ---------------------------------------------------------------------------------------------
# W-coefficient and T
# ---------------------------------------------------------------------------------------------
def test_w_coefficient_hand_values():
    # T: p=100, i=10.  (50, 5, 0.5): 0.5·0.5·2 = 0.5;  (25, 2, 0.25): 0.75·0.8·4 = 2.4;
    # (100, 4, 0.1): p equals T's -> 0;  (90, 9, 2.0): 0.1·0.1·0.5 = 0.005.
    w = ose.w_coefficient(100, 10, [50, 25, 100, 90], [5, 2, 4, 9], [0.5, 0.25, 0.1, 2.0])
    np.testing.assert_allclose(w, [0.5, 2.4, 0.0, 0.005], rtol=1e-12)
    # One column per hyperparameter set: W per set, best = max over Θ = c / min ê.
    w2 = ose.w_coefficient(100, 10, [50, 25], [5, 2], [[0.5, 0.25], [1.0, 0.25]])
    np.testing.assert_allclose(w2, [[0.5, 1.0], [0.6, 2.4]])
    # A diverged run (non-finite error) scores 0; non-positive errors and T are rejected.
    assert ose.w_coefficient(100, 10, [50], [5], [np.nan])[0] == 0.0
    with pytest.raises(InputError):
        ose.w_coefficient(100, 10, [50], [5], [0.0])
    with pytest.raises(InputError):
        ose.w_coefficient(0, 10, [50], [5], [1.0])


def test_max_point_is_the_largest_p_and_i():
    p, i = np.array([3.0, 9.0, 9.0, 1.0]), np.array([2.0, 5.0, 7.0, 1.0])
    T = ose.max_point(p, i)
    assert (T.index, T.p, T.i, T.virtual) == (2, 9.0, 7.0, False)
    # No row holds both maxima: T is the component-wise maximum, every W stays >= 0.
    p, i = np.array([9.0, 3.0, 1.0]), np.array([2.0, 8.0, 1.0])
    T = ose.max_point(p, i)
    assert T.virtual and T.index is None and (T.p, T.i) == (9.0, 8.0)
    assert np.all(ose.w_coefficient(T.p, T.i, p, i, np.ones(3)) >= 0)


# ---------------------------------------------------------------------------------------------
# ε-intervals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ose.MODES)
@pytest.mark.parametrize("epsilon", [1.0, 0.5, 0.3, 0.1, 0.05])
def test_one_candidate_per_interval_with_the_best_cheap_factor(mode, epsilon):
    rng = np.random.default_rng(7)
    p = rng.uniform(1, 100, 200)
    p[:20] = p[20]  # ties in parameter size
    i = p * rng.uniform(0.5, 1.5, 200)
    cand, intervals = ose.select_candidates(p, i, epsilon, mode)
    k = ose.n_intervals(epsilon)
    assert intervals.min() == 0 and intervals.max() <= k - 1
    assert intervals[np.argmax(p)] == intervals.max()  # the largest configuration is covered
    # exactly one candidate per non-empty interval, in interval order
    assert list(intervals[cand]) == sorted(set(intervals.tolist()))
    assert len(cand) <= k
    T = ose.max_point(p, i)
    c = ose.cheap_factor(T.p, T.i, p, i)
    for row in cand:
        members = intervals == intervals[row]
        assert c[row] == c[members].max()
    # intervals are contiguous in p
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(intervals[order]) >= 0)
    if mode == "linear":
        for kk in np.unique(intervals):
            span = p[intervals == kk]
            assert span.max() - span.min() <= epsilon * (p.max() - p.min()) + 1e-9
    if mode == "quantile":
        assert np.bincount(intervals).max() == math.ceil(len(p) / k)


def test_n_intervals_and_bad_settings():
    assert [ose.n_intervals(e) for e in (1.0, 0.5, 0.1, 0.3, 0.05)] == [1, 2, 10, 4, 20]
    for bad in (0, -0.1, 1.5, "0.1"):
        with pytest.raises(InputError):
            ose.n_intervals(bad)
    with pytest.raises(InputError):
        ose.assign_intervals([1.0, 2.0], 0.5, "cubic")


# ---------------------------------------------------------------------------------------------
# The paper's guarantee: W(OSE) >= (1 - ε) · W(optimum) on instances with the premise
# ---------------------------------------------------------------------------------------------
def _flat_instance(rng, n, epsilon, mode, adversarial):
    """A table whose brief-training errors vary by at most a factor 1 - ε inside every
    ε-interval (the premise), optionally with the worst case for OSE: its candidate gets the
    largest error allowed and every other row the smallest."""
    p = rng.uniform(1, 100, n)
    i = p * rng.uniform(0.3, 1.7, n)
    intervals = ose.assign_intervals(p, epsilon, mode)
    base = rng.uniform(0.2, 2.0, intervals.max() + 1)[intervals]
    e = base / (1 - epsilon * rng.uniform(0, 1, n))
    if adversarial:
        cand, _ = ose.select_candidates(p, i, epsilon, mode)
        e = base.copy()
        e[cand] = base[cand] / (1 - epsilon)
    return p, i, e


@pytest.mark.parametrize("mode", ose.MODES)
@pytest.mark.parametrize("epsilon", [0.5, 0.25, 0.1, 0.05])
def test_ose_is_within_one_minus_epsilon_of_the_optimum(mode, epsilon):
    rng = np.random.default_rng(11)
    worst = np.inf
    for trial in range(60):
        p, i, e = _flat_instance(rng, int(rng.integers(20, 300)), epsilon, mode, adversarial=trial % 2 == 0)
        assert ose.interval_flatness(p, e, epsilon, mode) >= 1 - epsilon - 1e-12
        configs = list(range(len(p)))
        result = ose.run_ose(configs, p, i, lambda rows: e[rows], epsilon, mode)
        best_row, w = ose.exhaustive_best(p, i, e)
        ratio = result.selected.W / w[best_row]
        assert ratio >= 1 - epsilon - 1e-12
        assert result.selected.W <= w[best_row] + 1e-12
        worst = min(worst, ratio)
    # The adversarial instances get close to the bound, so the bound (not a looser one) is tested.
    assert worst < 1 - epsilon + 0.5 * epsilon


def test_the_bound_needs_the_premise():
    # Interval 0 holds a small, fast row with a bad error and a slightly larger row with a much
    # better error: OSE validates only the first, and lands far below (1 - ε)·optimum.
    p = np.array([10.0, 11.0, 100.0])
    i = np.array([10.0, 11.0, 100.0])
    e = np.array([1.0, 0.1, 1.0])
    epsilon = 0.5
    result = ose.run_ose(["a", "b", "T"], p, i, lambda rows: e[rows], epsilon)
    best_row, w = ose.exhaustive_best(p, i, e)
    assert best_row == 1 and result.selected.config == "a"
    assert result.selected.W / w[best_row] < 1 - epsilon
    assert ose.interval_flatness(p, e, epsilon) < 1 - epsilon


def test_result_table_and_partial_runs():
    p, i = np.array([10.0, 20.0, 30.0, 40.0]), np.array([4.0, 3.0, 2.0, 5.0])
    cand, intervals = ose.select_candidates(p, i, 0.5)
    # 2 intervals: rows {0, 1} and {2, 3}; row 1 has the better cheap factor in the first.
    assert list(cand) == [1, 2]
    errors = {1: [0.5, 0.25], 2: [1.0, 2.0]}
    res = ose.build_result(list("abcd"), p, i, cand, intervals, errors, 0.5, "linear")
    row1 = res.rows[0]
    assert row1.e == 0.25 and row1.W == pytest.approx((20 / 40) * (2 / 5) / 0.25)
    assert row1.W_per_theta == pytest.approx([row1.cheap / 0.5, row1.cheap / 0.25])
    assert res.selected.config == "b" and res.complete
    doc = res.to_json()
    assert doc["selected"]["config"] == "b" and len(doc["w_table"]) == 2
    partial = ose.build_result(list("abcd"), p, i, cand, intervals, {2: 1.0}, 0.5, "linear")
    assert not partial.complete and [r.index for r in partial.rows] == [2]


# ---------------------------------------------------------------------------------------------
# The op-count inference-cost surrogate
# ---------------------------------------------------------------------------------------------
def test_op_count_multiplications_match_the_supernet_macs():
    # Multiplications = the MACs of the matrix products (count_macs) plus the elementwise ones:
    # q scaling (s·n), GELU (3·s·f) and LayerNorms (6·s·h) per layer, embedding LayerNorm (3·s·h).
    net = make_bert_supernet("bert-ose")
    s = 16
    for config in ({"A": 4, "D": 2, "H": 512, "I": 256}, {"A": 16, "D": 12, "H": 1024, "I": 3072}):
        arch = net.arch(config)
        ops = bert_op_count(arch, s)
        h = arch.hidden
        extra = sum(s * l.inner + 3 * s * l.ffn + 6 * s * h for l in arch.layers) + 3 * s * h
        assert ops.mul - extra == net.count_macs(config, {"batch": 1, "seq_len": s})
        assert 1.9 < ops.total / net.count_macs(config, {"batch": 1, "seq_len": s}) < 2.2
        assert bert_op_count(arch, s, batch=3).total == 3 * ops.total


def test_op_count_of_a_tiny_layer_by_hand():
    # One layer, h=2, a=1, d=2, f=2, s=1, 2 labels.
    arch = BertArch(vocab_size=5, max_positions=4, type_vocab_size=2, num_labels=2, hidden=2,
                    layers=(LayerSpec(heads=1, head_dim=2, ffn=2),))
    ops = bert_op_count(arch, 1)
    # layer adds: QKV 12, scores 1, mask 1, softmax 1, context 0, out 4, FFN 8, GELU 2,
    # residuals 4, LayerNorms 14 -> 47; embeddings 4 + 7, head 4 + 4 -> 66
    # layer mults: QKV 12, scale 2, scores 2, context 2, out 4, FFN 8, GELU 6, LN 12 -> 48;
    # embeddings 6, head 8 -> 62
    # other: softmax 2, GELU 2, LN 6 -> 10; embeddings 3, head tanh 2 -> 15
    assert (ops.add, ops.mul, ops.other) == (66, 62, 15)


@pytest.mark.parametrize("space", ["bert-ose", "bert-mini", "bert-linas"])
def test_vectorised_op_count_matches_the_scalar_one(space):
    net = make_bert_supernet(space)
    configs = net.space.sample(20, seed=3)
    genes = np.stack([net.space.to_genes(c) for c in configs])
    shape = net.default_shape
    vec = net.op_counts(genes, shape)
    scalar = [bert_op_count(net.arch(c), shape["seq_len"], shape["batch"]).total for c in configs]
    np.testing.assert_array_equal(vec, scalar)


# ---------------------------------------------------------------------------------------------
# The OSE algorithm on a cheap problem (bert-ose's real params/MACs, a stand-in loss)
# ---------------------------------------------------------------------------------------------
def _stand_in_loss(genes: np.ndarray, space) -> np.ndarray:
    """Deterministic 'brief-training loss': falls with depth and width, a little noise by A."""
    out = []
    for row in np.atleast_2d(genes):
        c = space.from_genes(row)
        out.append(0.25 + 1.0 / (1.0 + c["D"] * c["H"] / 2048) + 0.0003 * c["I"] / 256 + 0.01 * (c["A"] % 3))
    return np.array(out)


def _ose_problem():
    from hwnas.search.objectives import Objective, ObjectiveFactory
    from hwnas.search.problem import Problem

    net = make_bert_supernet("bert-ose")
    factory = ObjectiveFactory(net)
    calls = []

    def loss(genes):
        calls.append(len(genes))
        return _stand_in_loss(genes, net.space)

    objectives = [factory.objective("params"), factory.objective("macs"),
                  Objective("loss", False, True, "nats", loss)]
    return Problem(net.space, net, objectives), calls


def _drive_by_hand(algo, problem, budget, rng):
    """The driver's loop reduced to its contract: ask, serve rows in order from a dict archive
    (cutting the batch after the budget-th distinct configuration, as
    hwnas.search.archive.Archive does), tell what was served."""
    archive: dict[bytes, np.ndarray] = {}
    algo.setup(problem, budget, rng)
    while len(archive) < budget:
        proposal = algo.ask()
        if proposal is None or len(proposal) == 0:
            break
        rows = []
        for row in problem.canonical(proposal.genes):
            key = row.tobytes()
            if key not in archive:
                archive[key] = np.array([o.evaluate(row[None])[0] for o in problem.objectives])
            rows.append(archive[key])
            if len(archive) >= budget:
                break
        F = np.array(rows).reshape(len(rows), len(problem.objectives))
        algo.tell(proposal.genes[: len(F)], F)
    return archive


def _run_ose_algorithm(budget, **settings):
    from hwnas.search.algorithms.ose import OSE

    problem, calls = _ose_problem()
    algo = OSE(**settings)
    archive = _drive_by_hand(algo, problem, budget, np.random.default_rng(0))
    return problem, algo, archive, calls


def test_ose_algorithm_matches_the_pure_algorithm_on_bert_ose():
    problem, algo, archive, _ = _run_ose_algorithm(10, epsilon=0.1, refine=False)
    net = problem.supernet
    configs = list(net.space.enumerate())
    genes = np.stack([net.space.to_genes(c) for c in configs])
    p = np.array([net.count_params(c) for c in configs], dtype=float)
    i = net.op_counts(genes, net.default_shape)
    e = _stand_in_loss(genes, net.space)
    expected = ose.run_ose(configs, p, i, lambda rows: e[rows], 0.1)
    summary = algo.summary()
    result = summary["result"]
    assert summary["pool"] == {"size": 300, "enumerated": True}
    assert summary["cost"]["name"] == "ops"
    assert result["n_intervals"] == len(archive) == len(expected.rows) == 10
    assert result["selected"]["config"] == expected.selected.config
    assert result["selected"]["W"] == pytest.approx(expected.selected.W)
    assert [r["config"] for r in result["w_table"]] == [r.config for r in expected.rows]
    assert summary["paper_pick"]["config"] == {"A": 8, "D": 4, "H": 1024, "I": 768}
    # The W table is JSON-ready (run.json's result).
    import json
    json.dumps(summary)


def test_ose_algorithm_refines_until_the_budget_is_spent_and_replays():
    problem, algo, archive, _ = _run_ose_algorithm(20, epsilon=0.25)
    s = algo.summary()
    assert len(archive) == 20 == s["evaluations"]
    assert [lv["epsilon"] for lv in s["levels"]][:3] == [0.25, 0.125, 0.0625]
    assert s["levels"][0]["complete"] and not s["levels"][-1]["complete"]
    best = max(r["W"] for r in s["w_table_all"])
    assert s["selected"]["W"] == best >= s["result"]["selected"]["W"]
    # Same seed, same run: a replay asks for the same configurations in the same order.
    _, algo2, archive2, _ = _run_ose_algorithm(20, epsilon=0.25)
    assert list(archive2) == list(archive) and algo2.summary() == s


def test_ose_algorithm_refuses_bad_problems_and_budgets():
    from hwnas.search.algorithms.ose import OSE
    from hwnas.search.problem import Problem

    problem, _ = _ose_problem()
    OSE(epsilon=0.1).check(problem, 10)
    with pytest.raises(InputError, match="smaller than the 10"):
        OSE(epsilon=0.1).check(problem, 9)
    with pytest.raises(InputError, match="needs the objectives"):
        OSE().check(Problem(problem.space, problem.supernet, problem.objectives[:2]), 50)
    for bad in ({"epsilon": 0}, {"intervals": "cubic"}, {"cost": "latency"}, {"pool": 0}):
        with pytest.raises(InputError):
            OSE(**bad).check(problem, 50)
    with pytest.raises(InputError, match="has no setting"):
        OSE(eps=0.1)


def test_hwnas_search_algo_ose_through_the_framework(tmp_path, monkeypatch):
    """`hwnas search --algo ose` end to end (driver, run directory, resume of a complete run),
    with a stand-in for the brief training."""
    import json

    from hwnas.search.driver import SearchRequest, search

    def fake_brief_training_loss(supernet, config, setting):
        base = _stand_in_loss(supernet.space.to_genes(config)[None], supernet.space)[0]
        return float(base * (1.0 + 40.0 * abs(setting.lr - 1e-3)))  # lr 1e-3 is the better of Θ

    monkeypatch.setattr("hwnas.evaluation.ose_proxy.brief_training_loss", fake_brief_training_loss)
    out = tmp_path / "run"
    request = SearchRequest(space="bert-ose", algo="ose", objectives="params,macs,loss", evals=12,
                            out=out, settings={"epsilon": 0.1})
    result = search(request)
    header = json.loads((out / "run.json").read_text())
    rows = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
    assert header["status"] == "complete" and header["stop_reason"] == "budget" and len(rows) == 12
    summary = header["result"]
    assert summary["evaluations"] == 12 and len(summary["w_table_all"]) == 12
    assert summary["result"]["complete"] and len(summary["result"]["w_table"]) == 10
    # ê is the best over Θ: the loss objective's value, the lr=1e-3 run here.
    net = make_bert_supernet("bert-ose")
    by_key = {r["key"]: r["objectives"]["loss"] for r in rows}
    for row in summary["w_table_all"]:
        assert row["e"] == pytest.approx(by_key[net.space.key(row["config"])])
        assert row["e"] == pytest.approx(_stand_in_loss(net.space.to_genes(row["config"])[None], net.space)[0])
    # The same selection as the pure algorithm on the full table.
    configs = list(net.space.enumerate())
    genes = np.stack([net.space.to_genes(c) for c in configs])
    p = np.array([net.count_params(c) for c in configs], dtype=float)
    i = net.op_counts(genes, net.default_shape)
    e = _stand_in_loss(genes, net.space)
    expected = ose.run_ose(configs, p, i, lambda r: e[r], 0.1)
    assert summary["result"]["selected"]["config"] == expected.selected.config
    assert result.result["selected"]["W"] >= expected.selected.W
    # Rerunning a complete run changes nothing.
    again = search(request)
    assert again.evaluations == 12 and again.result == result.result
