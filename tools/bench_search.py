"""Benchmark the searches: hypervolume vs validated evaluations for LINAS, NSGA-II and random.

On ``bert-mini`` with real accuracy (the shipped trained supernet, weight-sharing evaluation)
and a CPU profile, every algorithm runs over the same seeds at the same budget; each run is a
normal resumable run directory under ``OUT/runs/<algo>-s<seed>``, so an interrupted benchmark
continues where it stopped. The accuracy evaluator is shared by all runs (it caches by
configuration), so a configuration two runs both validate is computed once — each run still
counts it against its own budget.

Outputs (in ``--out``): ``bench_search.json`` (settings, per-run hypervolume series, medians
and quartiles, evaluations to reach NSGA-II's final median hypervolume, LINAS's per-loop cost),
``bench_search.png`` (median hypervolume with the interquartile band; the validated fronts of
one seed), and a Markdown table on stdout.

``--loop-cost`` instead measures one LINAS outer loop (predictor fitting + the inner NSGA-II at
``--inner-evals`` predicted evaluations) for archives of the given sizes, validated with the
real evaluator, and prints a table — the ≤ 4 s-per-loop check.

Examples::

    python tools/bench_search.py --out bench/search                     # defaults: ~20 min here
    python tools/bench_search.py --out bench/search --evals 500 --seeds 5
    python tools/bench_search.py --out bench/loop --loop-cost 50,250,500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's hwnas, as the other tools

from hwnas.errors import InputError  # noqa: E402
from hwnas.search.pareto import hypervolume, non_dominated_mask, to_minimization  # noqa: E402
from hwnas.search.store import read_run  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Benchmark directory (resumable).")
    p.add_argument("--space", default="bert-mini")
    p.add_argument("--profile", type=Path, default=None,
                   help="CPU profile of the space [default: OUT/profile.json, made with --quick if missing].")
    p.add_argument("--objectives", default="accuracy,latency")
    p.add_argument("--algos", default="linas,nsga2,random",
                   help="Comma-separated; ALGO:KEY=VALUE;KEY=VALUE runs a variant with those settings "
                        "(e.g. linas:batch=hypervolume).")
    p.add_argument("--evals", type=int, default=200, help="Budget per run [default: 200].")
    p.add_argument("--seeds", type=_seed_list, default=list(range(5)),
                   help="K for seeds 0..K-1, or a comma-separated list such as 3,4 [default: 5].")
    p.add_argument("--merge", type=Path, default=None, metavar="JSON",
                   help="A bench_search.json of an earlier run of the same benchmark (same space, objectives, "
                        "profile, budget, population and reference point): its seeds that this run does not "
                        "run are added to the statistics.")
    p.add_argument("--population", type=int, default=50)
    p.add_argument("--inner-evals", type=int, default=20_000, help="LINAS inner predicted evaluations.")
    p.add_argument("--threads", type=int, default=1, help="torch threads for accuracy evaluation.")
    p.add_argument("--validation-examples", type=int, default=None, metavar="N",
                   help="bert-mini only: score on a validation split of N sentences instead of 2,000 (the "
                        "synthetic task regenerated with the same training sentences; its test split becomes "
                        "the next 2,000) — to see what a finer accuracy objective changes.")
    p.add_argument("--loop-cost", default=None, metavar="SIZES",
                   help="Measure one LINAS outer loop for archives of these sizes (e.g. 50,250,500) instead.")
    return p.parse_args(argv)


def _seed_list(text: str) -> list[int]:
    """``--seeds``: ``K`` means seeds 0..K-1; ``3,4`` means exactly those seeds."""
    try:
        seeds = [int(x) for x in text.split(",")] if "," in text else list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or a comma-separated list of seeds, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative seeds, got {text!r}")
    return seeds


def merged_seeds(path: Path, doc_now: dict, algos: list[str], seeds_now: list[int]) -> dict:
    """Per-seed hypervolume curves of ``path`` (an earlier bench_search.json) for seeds not in
    ``seeds_now``, as ``{"seeds": [...], "hypervolume": {algo: [[...], ...]}}``, after checking that
    the earlier run measured the same thing (else InputError naming the field that differs)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--merge {path}: cannot read it as JSON ({exc})") from None
    for key in ("space", "objectives", "evals", "population", "inner_evals", "profile", "evaluator"):
        if old.get(key) != doc_now[key]:
            raise InputError(f"--merge {path}: its {key} is {old.get(key)!r}, this run's is {doc_now[key]!r}")
    if not np.allclose(old.get("reference_point", []), doc_now["reference_point"]):
        raise InputError(f"--merge {path}: its reference point {old.get('reference_point')} differs from "
                         f"{doc_now['reference_point']}")
    missing = [a for a in algos if a not in old.get("hypervolume", {})]
    if missing:
        raise InputError(f"--merge {path}: it has no runs of {', '.join(missing)}")
    keep = [i for i, s in enumerate(old["seeds"]) if s not in seeds_now]
    return {"seeds": [old["seeds"][i] for i in keep],
            "hypervolume": {a: [old["hypervolume"][a][i] for i in keep] for a in algos}}


def _setting_value(text: str):
    """A variant's setting from text: int, float, or the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_evaluator(supernet, validation_examples: int | None):
    """The space's accuracy evaluator; with ``validation_examples`` (bert-mini's synthetic task
    only), one on that task regenerated with N validation sentences. Its sentence stream is the
    same, so the training split is the checkpoint's own and the new validation and test splits
    hold no training sentence."""
    from hwnas.evaluation.accuracy import WeightSharingEvaluator, get_evaluator

    if validation_examples is None:
        return get_evaluator(supernet)
    task = supernet.accuracy_task()
    if getattr(task, "name", None) != "sentiment-synth":
        raise SystemExit(f"error: --validation-examples needs bert-mini's synthetic task, not {supernet.name!r}")
    from hwnas.supernets.bert.sentiment import make_task

    bigger = make_task(task.name, seed=task.seed, seq_len=task.seq_len, n_train=len(task.train),
                       n_val=validation_examples, n_test=len(task.test))

    def rows(split) -> set:  # (sentence, label) pairs; the splits' order depends on the sizes
        return set(zip(map(tuple, split.input_ids.tolist()), split.labels.tolist()))

    train = rows(task.train)
    if rows(bigger.train) != train or rows(bigger.validation) & train or rows(bigger.test) & train:
        raise SystemExit("error: the regenerated task's training split differs from the checkpoint's, "
                         "or its validation or test split holds training sentences")
    return WeightSharingEvaluator(supernet, bigger)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_profile(args: argparse.Namespace, supernet) -> Path:
    if args.profile is not None:
        return args.profile
    path = args.out / "profile.json"
    from hwnas.profiling.profile import load_profile

    if path.exists() and load_profile(path).complete:
        return path
    from hwnas.profiling.profiler import MeasurePolicy, Profiler

    log(f"profiling {args.space} on this CPU (--quick) into {path} ...")
    Profiler(supernet, path, ep="cpu", threads=1, shape={}, policy=MeasurePolicy.quick()).run()
    return path


def series_of(out: Path, names: list[str], maximize: list[bool], ref: list[float], budget: int) -> np.ndarray:
    """Hypervolume after each validated evaluation (recomputed against one common reference
    point so that all runs compare), padded with the last value to ``budget``."""
    rows = read_run(out, require_complete=False).evaluations
    F = to_minimization(np.array([[r["objectives"][n] for n in names] for r in rows]), maximize)
    ref_min = to_minimization(np.asarray(ref), maximize)
    hv, front, out_series = 0.0, np.zeros((0, len(names))), []
    for point in F:
        dominated = bool(((front <= point).all(axis=1) & (front < point).any(axis=1)).any()) if len(front) else False
        if not dominated:
            front = np.vstack([front, point])
            front = front[non_dominated_mask(front)]
            hv = hypervolume(front, ref_min)
        out_series.append(hv)
    out_series += [hv] * (budget - len(out_series))
    return np.array(out_series[:budget])


def first_reaching(curve: np.ndarray, target: float) -> int | None:
    """Evaluations (1-based) at which ``curve`` first reaches ``target``; None if never."""
    hit = np.flatnonzero(curve >= target - 1e-12)
    return int(hit[0]) + 1 if hit.size else None


def loop_cost(args: argparse.Namespace, supernet, evaluator, profile: Path) -> None:
    from hwnas.search.algorithms.linas import LINAS
    from hwnas.search.objectives import ObjectiveFactory
    from hwnas.search.problem import Problem

    sizes = [int(x) for x in args.loop_cost.split(",")]
    factory = ObjectiveFactory(supernet, [str(profile)], evaluator)
    problem = Problem(supernet.space, supernet, factory.build(args.objectives), [])
    rng = np.random.default_rng(0)
    genes = problem.sample(max(sizes), rng)
    log(f"validating {len(genes)} configurations with the real evaluator ...")
    t = time.perf_counter()
    F = np.column_stack([o.evaluate(genes) for o in problem.objectives])
    log(f"  {time.perf_counter() - t:.1f} s")
    linas = LINAS(population=args.population, inner_evals=args.inner_evals)
    rows = []
    for n in sizes:
        for repeat in range(3):
            _, _, stats = linas.propose(problem, genes[:n], F[:n], set(problem.keys(genes[:n])),
                                        np.random.default_rng(repeat))
            rows.append({"validated": n, "repeat": repeat, **stats})
            log(f"  n={n} repeat={repeat}: fit {stats['fit_s']:.3f} s + inner {stats['inner_s']:.3f} s "
                f"({stats['inner_evals']} predicted evaluations)")
    doc = {"space": args.space, "objectives": problem.names, "inner_evals": args.inner_evals,
           "population": args.population, "torch_threads": torch.get_num_threads(), "loops": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop_cost.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"LINAS outer-loop cost on {args.space} ({', '.join(problem.names)}; {args.inner_evals} inner "
          f"evaluations, population {args.population}); median of 3 repeats\n")
    print("| validated | predictor fit (s) | inner search (s) | total (s) | chosen |")
    print("|---:|---:|---:|---:|---|")
    for n in sizes:
        sub = [r for r in rows if r["validated"] == n]
        fit = float(np.median([r["fit_s"] for r in sub]))
        inner = float(np.median([r["inner_s"] for r in sub]))
        total = float(np.median([r["fit_s"] + r["inner_s"] for r in sub]))
        chosen = ", ".join(sorted({v["chosen"] for r in sub for v in r["predictors"].values()}))
        print(f"| {n} | {fit:.3f} | {inner:.3f} | {total:.3f} | {chosen} |")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from hwnas.evaluation.accuracy import get_evaluator
    from hwnas.search.driver import SearchRequest, search
    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet(args.space)
    evaluator = make_evaluator(supernet, args.validation_examples)
    args.out.mkdir(parents=True, exist_ok=True)
    profile = ensure_profile(args, supernet)
    if args.loop_cost:
        loop_cost(args, supernet, evaluator, profile)
        return

    variants = {}
    for spec in (a.strip() for a in args.algos.split(",")):
        # "ALGO" or "ALGO:KEY=VALUE;KEY=VALUE" (a variant with its own settings, e.g. linas:batch=hypervolume)
        name, _, rest = spec.partition(":")
        extra = dict(kv.split("=", 1) for kv in rest.split(";") if kv) if rest else {}
        variants[spec] = (name, {k: _setting_value(v) for k, v in extra.items()})
    algos = list(variants)
    seeds = list(args.seeds)
    runs: dict[str, dict[int, Path]] = {a: {} for a in algos}
    walls: dict[str, list[float]] = {a: [] for a in algos}
    total = len(algos) * len(seeds)
    done = 0
    for seed in seeds:
        for algo in algos:
            name, extra = variants[algo]
            out = args.out / "runs" / f"{algo.replace(':', '-').replace(';', '-').replace('=', '_')}-s{seed}"
            settings = {"inner_evals": args.inner_evals, **extra} if name == "linas" else dict(extra)
            start = time.perf_counter()
            result = search(SearchRequest(space=args.space, algo=name, objectives=args.objectives, evals=args.evals,
                                          out=out, profiles=[str(profile)], seed=seed, population=args.population,
                                          settings=settings, evaluator=evaluator, supernet=supernet))
            walls[algo].append(time.perf_counter() - start)
            runs[algo][seed] = out
            done += 1
            log(f"[{done}/{total}] {algo} seed {seed}: HV {result.hypervolume:.5g}, front {len(result.front)}, "
                f"{walls[algo][-1]:.0f} s")

    header = read_run(runs[algos[0]][seeds[0]], require_complete=False).meta
    names = [o["name"] for o in header["objectives"]]
    maximize = [o["maximize"] for o in header["objectives"]]
    ref = header["reference_point"]
    curves = {a: np.stack([series_of(runs[a][s], names, maximize, ref, args.evals) for s in seeds]) for a in algos}
    run_seeds = list(seeds)
    if args.merge is not None:  # seeds measured by an earlier run of the same benchmark
        merged = merged_seeds(args.merge, {
            "space": args.space, "objectives": names, "evals": args.evals, "population": args.population,
            "inner_evals": args.inner_evals, "profile": str(profile), "evaluator": header.get("evaluator"),
            "reference_point": ref}, algos, seeds)
        curves = {a: np.vstack([np.asarray(merged["hypervolume"][a]).reshape(-1, args.evals), curves[a]])
                  for a in algos}
        seeds = merged["seeds"] + seeds
        log(f"merged seeds {merged['seeds']} from {args.merge}")
    stats = {a: {"median": np.median(c, axis=0), "q1": np.percentile(c, 25, axis=0),
                 "q3": np.percentile(c, 75, axis=0)} for a, c in curves.items()}

    reach: dict[str, dict] = {}
    if "nsga2" in algos:
        target = float(stats["nsga2"]["median"][-1])
        for a in algos:
            n_median = first_reaching(stats[a]["median"], target)
            per_seed = [first_reaching(curves[a][i], target) for i in range(len(seeds))]
            reach[a] = {"target": target, "median_curve": n_median, "per_seed": per_seed,
                        "speedup": (args.evals / n_median) if n_median else None}

    loop_costs = []
    for a in algos:
        if variants[a][0] != "linas":
            continue
        for s in run_seeds:  # loop costs of the runs in this directory only
            h = read_run(runs[a][s], require_complete=False).meta
            for lp in (h.get("result") or {}).get("loops", []):
                loop_costs.append(lp["fit_s"] + lp["inner_s"])

    doc = {
        "space": args.space, "objectives": names, "reference_point": ref, "evals": args.evals, "seeds": seeds,
        "merged_from": str(args.merge) if args.merge else None,
        "population": args.population, "inner_evals": args.inner_evals, "profile": str(profile),
        "evaluator": header.get("evaluator"), "torch_threads": torch.get_num_threads(),
        "hypervolume": {a: curves[a].tolist() for a in algos},
        "median": {a: stats[a]["median"].tolist() for a in algos},
        "reach_nsga2_final_median": reach,
        "linas_loop_overhead_s": {"median": float(np.median(loop_costs)), "max": float(np.max(loop_costs)),
                                  "loops": len(loop_costs)} if loop_costs else None,
        "wall_s": {a: walls[a] for a in algos},
    }
    (args.out / "bench_search.json").write_text(json.dumps(doc, indent=1) + "\n")
    units = [o["unit"] for o in header["objectives"]]
    plot(args, curves, stats, runs, [f"{n} ({u})" for n, u in zip(names, units)], names, maximize, seeds, run_seeds[0])

    marks = sorted({max(1, args.evals // 4), args.evals // 2, args.evals})
    print(f"Hypervolume on {args.space} ({', '.join(names)}; reference point {ref}), median [IQR] over "
          f"{len(seeds)} seeds, population {args.population}\n")
    print("| algorithm | " + " | ".join(f"HV @ {m}" for m in marks) + " | evals to reach NSGA-II's final median |")
    print("|---|" + "---:|" * len(marks) + "---:|")
    for a in algos:
        cells = [f"{stats[a]['median'][m - 1]:.5g} [{stats[a]['q1'][m - 1]:.5g}, {stats[a]['q3'][m - 1]:.5g}]"
                 for m in marks]
        r = reach.get(a, {})
        n = r.get("median_curve")
        if not r:
            reach_cell = "—"
        elif not n:
            reach_cell = f"not within {args.evals}"
        else:
            reach_cell = f"{n}" + ("" if a == "nsga2" else f" ({args.evals / n:.1f}x fewer than NSGA-II)")
        print(f"| {a} | " + " | ".join(cells) + f" | {reach_cell} |")
    if doc["linas_loop_overhead_s"]:
        lo = doc["linas_loop_overhead_s"]
        print(f"\nLINAS predictor fit + inner search per outer loop: median {lo['median']:.2f} s, "
              f"max {lo['max']:.2f} s over {lo['loops']} loops ({args.inner_evals} inner evaluations).")
    print(f"\nFiles: {args.out / 'bench_search.json'}, {args.out / 'bench_search.png'}")


def plot(args, curves, stats, runs, labels, names, maximize, seeds, front_seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(1, args.evals + 1)
    for a, s in stats.items():
        axes[0].plot(x, s["median"], label=a)
        axes[0].fill_between(x, s["q1"], s["q3"], alpha=0.2)
    axes[0].set_xlabel("validated evaluations")
    axes[0].set_ylabel("hypervolume")
    axes[0].set_title(f"{args.space}: median and IQR over {len(seeds)} seeds")
    axes[0].legend()
    if len(names) == 2:
        for a in curves:
            rows = read_run(runs[a][front_seed], require_complete=False).evaluations
            F = np.array([[r["objectives"][n] for n in names] for r in rows])
            front = F[non_dominated_mask(to_minimization(F, maximize))]
            front = front[np.argsort(front[:, 1])]
            axes[1].step(front[:, 1], front[:, 0], where="post", marker="o", ms=3, label=a)
        axes[1].set_xlabel(labels[1])
        axes[1].set_ylabel(labels[0])
        axes[1].set_title(f"validated fronts, seed {front_seed}")
        axes[1].legend()
    else:
        axes[1].axis("off")
    fig.tight_layout()
    fig.savefig(args.out / "bench_search.png", dpi=120)


if __name__ == "__main__":
    try:
        main()
    except InputError as exc:
        print(f"bench_search: error: {exc}", file=sys.stderr)
        sys.exit(2)
