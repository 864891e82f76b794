"""Each search algorithm on a cheap synthetic problem whose Pareto front is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from search_synthetic import (
    StandIn,
    SyntheticNet,
    accuracy_of,
    all_values,
    params_of,
    values,
)

from hwnas.errors import InputError
from hwnas.predictors.surrogate import ObjectivePredictor
from hwnas.search.algorithms import ALGORITHMS, make_algorithm
from hwnas.search.algorithms.vectorized import nsga2 as inner_nsga2
from hwnas.search.pareto import hypervolume_natural, non_dominated_mask
from hwnas.search.driver import SearchRequest, search

BUDGET = 150
POP = 20
LINAS_FAST = {"inner_evals": 5000, "min_batch": 20}


def run(tmp_path, algo, seed=0, evals=BUDGET, name=None, **extra):
    settings = dict(LINAS_FAST) if algo == "linas" else {}
    settings.update(extra.pop("settings", {}))
    request = SearchRequest(space="synth", algo=algo, objectives="accuracy,params", evals=evals,
                            out=tmp_path / (name or f"{algo}-{seed}"), seed=seed, population=POP,
                            settings=settings, evaluator=StandIn(), supernet=SyntheticNet(), **extra)
    return search(request)


def rows_of(result):
    lines = (result.out / "evaluations.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def truth():
    X = all_values()
    F = np.column_stack([accuracy_of(X), params_of(X)])
    return F


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("algos")
    return {algo: run(base, algo) for algo in ("random", "nsga2", "linas")}


def test_registry_has_the_algorithms():
    assert {"random", "nsga2", "linas"} <= set(ALGORITHMS)
    with pytest.raises(InputError, match="unknown algorithm 'sgd'"):
        make_algorithm("sgd")
    with pytest.raises(InputError, match="no setting 'poppulation'"):
        make_algorithm("nsga2", poppulation=3)


@pytest.mark.parametrize("algo,floor", [("random", 0.85), ("nsga2", 0.85), ("linas", 0.98)])
def test_reaches_a_good_fraction_of_the_true_hypervolume(results, truth, algo, floor):
    result = results[algo]
    true_hv = hypervolume_natural(truth, [True, False], result.reference_point)
    ratio = result.hypervolume / true_hv
    print(f"{algo}: {ratio:.4f} of the true hypervolume after {result.evaluations} evaluations")
    assert result.evaluations == BUDGET and result.status == "complete"
    assert floor <= ratio <= 1.0 + 1e-9


def test_linas_beats_random_and_nsga2_at_the_same_budget(results, truth):
    true_hv = hypervolume_natural(truth, [True, False], results["random"].reference_point)
    gap = {a: 1 - r.hypervolume / true_hv for a, r in results.items()}
    assert gap["linas"] < gap["random"] / 2 and gap["linas"] < gap["nsga2"] / 2


@pytest.mark.parametrize("algo", ["random", "nsga2", "linas"])
def test_rows_are_distinct_exact_and_the_front_is_theirs(results, algo):
    result = results[algo]
    rows = rows_of(result)
    assert [r["index"] for r in rows] == list(range(BUDGET))
    assert len({r["key"] for r in rows}) == BUDGET
    x = np.array([values(r["config"]) for r in rows])
    acc = np.array([r["objectives"]["accuracy"] for r in rows])
    par = np.array([r["objectives"]["params"] for r in rows])
    assert np.array_equal(acc, accuracy_of(x)) and np.array_equal(par, params_of(x))
    on_front = non_dominated_mask(np.column_stack([-acc, par]))
    pareto = json.loads((result.out / "pareto.json").read_text())
    assert sorted(f["index"] for f in pareto["front"]) == sorted(np.flatnonzero(on_front).tolist())
    first = [f["objectives"]["accuracy"] for f in pareto["front"]]
    assert first == sorted(first, reverse=True)  # sorted by the first objective, best first
    hv_rows = (result.out / "hypervolume.csv").read_text().splitlines()
    assert hv_rows[0] == "evaluations,hypervolume" and len(hv_rows) == BUDGET + 1
    series = [float(line.split(",")[1]) for line in hv_rows[1:]]
    assert all(b >= a for a, b in zip(series, series[1:]))  # never decreases
    assert series[-1] == pytest.approx(result.hypervolume)


def test_linas_records_predictions_and_loop_cost(results):
    rows = rows_of(results["linas"])
    predicted = [r for r in rows if "predicted" in r]
    assert len(predicted) == BUDGET - POP  # every row after the first random population
    err = np.array([r["predicted"]["accuracy"] - r["objectives"]["accuracy"] for r in predicted])
    assert np.abs(err).mean() < 0.02  # the predictor knows this smooth function well
    loops = results["linas"].result["loops"]
    assert loops and all(lp["inner_evals"] == LINAS_FAST["inner_evals"] for lp in loops[:-1])


@pytest.mark.parametrize("algo", ["nsga2", "linas", "random"])
def test_same_seed_same_rows_other_seed_other_rows(tmp_path, algo):
    def strip(rows):
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]

    a = strip(rows_of(run(tmp_path, algo, seed=5, evals=60, name="a")))
    b = strip(rows_of(run(tmp_path, algo, seed=5, evals=60, name="b")))
    c = strip(rows_of(run(tmp_path, algo, seed=6, evals=60, name="c")))
    assert a == b
    assert a != c


@pytest.mark.parametrize("algo", ["nsga2", "linas"])
def test_constraints_are_never_violated(tmp_path, algo):
    result = run(tmp_path, algo, evals=60, constraints=["params<=8000"])
    rows = rows_of(result)
    assert len(rows) == 60
    assert max(r["objectives"]["params"] for r in rows) <= 8000


def test_objective_predictor_chooses_by_cross_validation():
    rng = np.random.default_rng(0)
    X = rng.random((120, 4))
    linear = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 3.0
    model = ObjectivePredictor(seed=0).fit(X, linear)
    assert set(model.cv_rmse) == {"ridge", "svr", "gbt"}
    assert model.chosen == "ridge"
    assert np.abs(model.predict(X) - linear).max() < 1e-2
    step = np.where(X[:, 0] > 0.5, 1.0, 0.0) + 0.1 * X[:, 1]
    assert ObjectivePredictor(seed=0).fit(X, step).chosen == "gbt"
    with pytest.raises(InputError, match="unknown predictor"):
        ObjectivePredictor(["lasso"])


def test_vectorised_nsga2_finds_a_simple_front():
    # minimise (x, 1 - x) + a penalty on the other genes: the front is gene 1..5 = 0
    upper = np.array([10, 3, 3, 3, 3, 3])

    def evaluate(g):
        x = g[:, 0] / 10.0
        rest = g[:, 1:].sum(axis=1)
        return np.column_stack([x + rest, 1 - x + rest])

    result = inner_nsga2(evaluate, lambda g: np.zeros(len(g)), lambda g: np.asarray(g, dtype=np.int64),
                         upper, np.random.default_rng(0), pop_size=20, n_evals=2000)
    assert result.evaluations == 2000
    # The whole front (11 points; the population is 20 distinct rows, best first) is found.
    best = result.X[:11]
    assert (best[:, 1:] == 0).all() and sorted(best[:, 0].tolist()) == list(range(11))
    assert (result.X[11:, 1:].sum(axis=1) > 0).all()


# ---------------------------------------------------------------------------------------------
# Ask/tell by hand, and the declarative setting checks
# ---------------------------------------------------------------------------------------------
def synth_problem(constraints=()):
    from hwnas.search.objectives import ObjectiveFactory, parse_constraints
    from hwnas.search.problem import Problem

    net = SyntheticNet()
    factory = ObjectiveFactory(net, [], StandIn())
    objectives = [factory.objective("accuracy"), factory.objective("params")]
    return Problem(net.space, net, objectives, list(parse_constraints(list(constraints), factory)))


@pytest.mark.parametrize("algo", ["random", "nsga2", "linas"])
def test_driving_by_hand_through_ask_tell_gives_the_drivers_rows(tmp_path, algo):
    """The driver is only the loop: asking and telling by hand (no archive, no run directory)
    proposes the same configurations in the same order as evaluations.jsonl of a search."""
    evals = 45
    settings = {**LINAS_FAST, "population": POP} if algo == "linas" else {"population": POP}
    rows = rows_of(run(tmp_path, algo, seed=2, evals=evals))
    problem = synth_problem()
    algorithm = make_algorithm(algo, **settings)
    algorithm.setup(problem, evals, np.random.default_rng(2))
    served: list[list[int]] = []
    while len(served) < evals:
        proposal = algorithm.ask()
        assert proposal is not None and len(proposal) > 0
        assert proposal.genes.dtype == np.int64 and proposal.genes.shape[1] == problem.n_genes
        assert problem.feasible(proposal.genes).all()
        if proposal.predicted is not None:
            assert proposal.predicted.shape == (len(proposal), 2)
        genes = proposal.genes[: evals - len(served)]
        F = np.column_stack([o.evaluate(genes) for o in problem.objectives])
        algorithm.tell(genes, F)
        served.extend(g.tolist() for g in genes)
    assert served == [problem.space.to_genes(r["config"]).tolist() for r in rows]


def test_nsga2_tells_pymoo_infeasible_rows_without_proposing_them():
    problem = synth_problem(["params<=6000"])
    algorithm = make_algorithm("nsga2", population=10)
    algorithm.setup(problem, 200, np.random.default_rng(0))
    saw_infeasible = False
    for _ in range(8):
        proposal = algorithm.ask()
        generation = algorithm._pending
        assert problem.feasible(proposal.genes).all()
        assert len(proposal) == int(generation.feasible.sum())  # only the feasible rows are proposed
        saw_infeasible |= not generation.feasible.all()
        algorithm.tell(proposal.genes, np.column_stack([o.evaluate(proposal.genes) for o in problem.objectives]))
        # pymoo got every row, the infeasible ones with their violation
        np.testing.assert_array_equal(generation.pop.get("G")[:, 0], problem.violation(generation.X))
    assert saw_infeasible
    assert (algorithm._pymoo.pop.get("G") <= 0).all()  # feasibility-first survival dropped them


def test_nsga2_stops_after_a_partial_tell():
    problem = synth_problem()
    algorithm = make_algorithm("nsga2", population=10)
    algorithm.setup(problem, 15, np.random.default_rng(0))
    first = algorithm.ask()
    algorithm.tell(first.genes, np.column_stack([o.evaluate(first.genes) for o in problem.objectives]))
    second = algorithm.ask()
    part = second.genes[:3]
    algorithm.tell(part, np.column_stack([o.evaluate(part) for o in problem.objectives]))
    assert algorithm.ask() is None


@pytest.mark.parametrize("algo,settings,message", [
    ("nsga2", {"population": 1}, "nsga2 setting population must be an integer >= 2, got 1"),
    ("nsga2", {"population": "abc"}, "nsga2 setting population must be an integer >= 2, got 'abc'"),
    ("nsga2", {"population": True}, "must be an integer"),
    ("nsga2", {"mutation_prob": 5}, "nsga2 setting mutation_prob must be a probability in [0, 1], got 5"),
    ("nsga2", {"crossover_eta": float("nan")}, "nsga2 setting crossover_eta must be a number >= 0, got nan"),
    ("nsga2", {"mutation_eta": float("inf")}, "mutation_eta must be a number >= 0"),
    ("linas", {"cv_folds": 1}, "linas setting cv_folds must be an integer >= 2"),
    ("linas", {"features": "genes"}, "linas setting features must be one of supernet, supernet+genes"),
    ("linas", {"predictors": ["lasso"]}, "unknown predictor"),
    ("linas", {"crossover_prob": float("nan")}, "crossover_prob must be a probability"),
    ("random", {"population": 0}, "random setting population must be an integer >= 1"),
    ("ose", {"epsilon": 0}, "ose setting epsilon must be a number in (0, 1], got 0"),
    ("ose", {"epsilon": float("nan")}, "ose setting epsilon must be a number in (0, 1]"),
    ("ose", {"refine": 1}, "ose setting refine must be true or false, got 1"),
    ("ose", {"pool": 2.5}, "ose setting pool must be an integer >= 1"),
])
def test_bad_settings_are_refused_at_construction(algo, settings, message):
    with pytest.raises(InputError) as exc:
        make_algorithm(algo, **settings)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_settings_are_normalised_for_run_json():
    algorithm = make_algorithm("nsga2", population=np.int64(12), crossover_eta=15)
    assert algorithm.settings["population"] == 12 and type(algorithm.settings["population"]) is int
    assert type(algorithm.settings["crossover_eta"]) is float
    json.dumps(algorithm.settings)  # numpy integers would not serialise


def test_checks_reject_bool_nan_inf_and_non_numbers():
    from hwnas.checks import check_choice, check_float, check_int, check_probability

    assert check_int("n", np.int32(3), 1, 5) == 3 and check_probability("p", 1) == 1.0
    assert check_float("x", 0.5, 0, 1, lo_open=True) == 0.5
    for bad in (True, 2.0, "3", None, 0, 6):
        with pytest.raises(InputError, match=r"^n must be an integer in \[1, 5\], got "):
            check_int("n", bad, 1, 5)
    for bad in (False, float("nan"), float("inf"), "0.5", -0.1, 1.5):
        with pytest.raises(InputError, match="^p must be a probability"):
            check_probability("p", bad)
    for bad in (float("nan"), float("-inf"), 0, True, [0.5]):
        with pytest.raises(InputError, match=r"^x must be a number in \(0, 1\], got "):
            check_float("x", bad, 0, 1, lo_open=True)
    with pytest.raises(InputError, match="^mode must be one of a, b, got 1"):
        check_choice("mode", 1, ("a", "b"))
