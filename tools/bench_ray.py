"""Benchmark ``--executor ray`` against local on a validation-bound search.

``bert-mini`` with real accuracy (the shipped trained supernet, weight-sharing evaluation) and
params: accuracy is what costs, so the search is bound by validation. Paired runs — local and
Ray with ``--actors`` actors on a local Ray instance — alternate their order (local first in
even pairs, Ray first in odd ones) so a drift in the machine's load hits both alike. Every run
is a fresh run directory under ``OUT/<mode>-<pair>``; the rows of each Ray run are checked
equal to its pair's local run.

Measured per run: the search's wall time (Ray: without starting Ray and the actors, which is
reported apart as ``startup_s``), the per-evaluation time (``wall_s`` of the rows: local in the
driver, Ray inside the actor), and for Ray the **overhead per batch**: a batch's wall time on
the driver minus its ideal parallel time (the actors' summed evaluation seconds / actors); it
holds the round trips, scheduling and the tail of a batch whose rows do not divide evenly.

Projection to N nodes of ``c`` cores (``c`` actors each): a batch of ``B`` rows takes
``ceil(B / (N·c)) · t_actor + o`` (``t_actor`` the median per-evaluation time in an actor,
``o`` the median overhead per batch), the driver's own time between batches (``d`` per batch,
measured) is added to both, so the speed-up over local is
``(B · t_local + d) / (ceil(B / (N·c)) · t_actor + o + d)``. It assumes ``o`` does not grow
with N (on a real network each round trip is slower) and that every node is as fast as this
one.

Outputs ``OUT/bench_ray.json`` and a Markdown table on stdout. Example::

    python tools/bench_ray.py --out bench/ray                  # 3 pairs, 100 evals: ~6 min here
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Benchmark directory (run directories, JSON).")
    p.add_argument("--space", default="bert-mini")
    p.add_argument("--objectives", default="accuracy,params")
    p.add_argument("--algo", default="nsga2")
    p.add_argument("--evals", type=int, default=100)
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--pairs", type=int, default=3, help="Paired local/Ray runs [default: 3].")
    p.add_argument("--actors", type=int, default=None, help="Ray actors [default: this machine's cores].")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the local run [default: 1, as each actor uses].")
    p.add_argument("--nodes", default="1,2,4,8,16", help="N of the projection.")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"[bench_ray {time.strftime('%H:%M:%S')}] {message}", flush=True)


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def one_run(args: argparse.Namespace, mode: str, out: Path) -> dict[str, Any]:
    from hwnas.search.driver import SearchRequest, execute, prepare

    shutil.rmtree(out, ignore_errors=True)
    request = SearchRequest(space=args.space, algo=args.algo, objectives=args.objectives, evals=args.evals,
                            out=out, population=args.population, seed=0)
    prepared = prepare(request)
    record: dict[str, Any] = {"mode": mode}
    if mode == "local":
        torch.set_num_threads(args.threads)
        start = time.perf_counter()
        execute(prepared)
        record["search_s"] = time.perf_counter() - start
    else:
        from hwnas.distributed.ray_executor import ray_executor

        start = time.perf_counter()
        executor = ray_executor(prepared, actors=args.actors)
        record["startup_s"] = time.perf_counter() - start
        record["actors"] = len(executor.actors)
        try:
            start = time.perf_counter()
            execute(prepared, None, executor)
            record["search_s"] = time.perf_counter() - start
        finally:
            executor.close()
        actors = record["actors"]
        record["batches"] = [{"rows": b.rows, "wall_s": b.wall_s, "actor_s": b.actor_s,
                              "overhead_s": b.wall_s - b.actor_s / actors} for b in executor.batches]
        record["driver_s"] = record["search_s"] - sum(b.wall_s for b in executor.batches)
    got = rows(out)
    record["evaluations"] = len(got)
    record["per_eval_s"] = float(np.median([r["wall_s"] for r in got]))
    record["rows"] = [(r["key"], r["objectives"]) for r in got]
    return record


def projection(t_local: float, t_actor: float, overhead: float, driver: float, batch: int, per_node: int,
               nodes: list[int]) -> list[dict[str, float]]:
    """Projected speed-up over local for each N (see module doc)."""
    out = []
    for n in nodes:
        ray_batch = math.ceil(batch / (n * per_node)) * t_actor + overhead + driver
        out.append({"nodes": n, "actors": n * per_node, "batch_s": ray_batch,
                    "speedup": (batch * t_local + driver) / ray_batch})
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    log(f"load average before: {load_before}")
    runs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        order = ("local", "ray") if pair % 2 == 0 else ("ray", "local")
        done = {}
        for mode in order:
            log(f"pair {pair}: {mode}")
            done[mode] = one_run(args, mode, args.out / f"{mode}-{pair}")
            log(f"  search {done[mode]['search_s']:.1f} s, per evaluation {done[mode]['per_eval_s']:.3f} s")
        if done["ray"]["rows"] != done["local"]["rows"]:
            raise SystemExit(f"pair {pair}: the Ray run's rows differ from the local run's")
        for mode in order:
            runs.append({"pair": pair, **{k: v for k, v in done[mode].items() if k != "rows"}})
    load_after = os.getloadavg()

    local = [r for r in runs if r["mode"] == "local"]
    ray = [r for r in runs if r["mode"] == "ray"]
    speedups = [lr["search_s"] / rr["search_s"] for lr, rr in zip(local, ray)]
    overheads = [b["overhead_s"] for r in ray for b in r["batches"]]
    n_batches = float(np.median([len(r["batches"]) for r in ray]))
    summary = {
        "local_search_s": float(np.median([r["search_s"] for r in local])),
        "ray_search_s": float(np.median([r["search_s"] for r in ray])),
        "ray_startup_s": float(np.median([r["startup_s"] for r in ray])),
        "speedup_median": float(np.median(speedups)),
        "speedup_min": float(min(speedups)),
        "speedup_max": float(max(speedups)),
        "t_local_s": float(np.median([r["per_eval_s"] for r in local])),
        "t_actor_s": float(np.median([r["per_eval_s"] for r in ray])),
        "overhead_per_batch_s": float(np.median(overheads)),
        "overhead_per_batch_iqr_s": [float(np.percentile(overheads, 25)), float(np.percentile(overheads, 75))],
        "driver_per_batch_s": float(np.median([r["driver_s"] for r in ray])) / max(n_batches, 1.0),
        "actors": ray[0]["actors"],
        "load_before": load_before,
        "load_after": load_after,
    }
    nodes = [int(x) for x in args.nodes.split(",")]
    summary["projection"] = projection(summary["t_local_s"], summary["t_actor_s"], summary["overhead_per_batch_s"],
                                       summary["driver_per_batch_s"], args.population, summary["actors"], nodes)
    document = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "cpu_count": os.cpu_count(), "summary": summary, "runs": runs}
    (args.out / "bench_ray.json").write_text(json.dumps(document, indent=1))

    s = summary
    print(f"\n{args.space} {args.objectives}, {args.algo}, {args.evals} evals, population {args.population}, "
          f"{args.pairs} pairs; {s['actors']} actors vs local at {args.threads} torch thread(s); "
          f"load {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    print("| | local | ray |\n|---|---|---|")
    print(f"| search wall (median) | {s['local_search_s']:.1f} s | {s['ray_search_s']:.1f} s "
          f"(+ {s['ray_startup_s']:.1f} s Ray and actor start) |")
    print(f"| per evaluation (median) | {s['t_local_s']:.3f} s | {s['t_actor_s']:.3f} s in an actor |")
    print(f"| speed-up (median, min–max of pairs) | | {s['speedup_median']:.2f}× "
          f"({s['speedup_min']:.2f}–{s['speedup_max']:.2f}) |")
    print(f"| overhead per batch (median, IQR) | | {s['overhead_per_batch_s']:.3f} s "
          f"({s['overhead_per_batch_iqr_s'][0]:.3f}–{s['overhead_per_batch_iqr_s'][1]:.3f}) |")
    print("\n| nodes | actors | batch time | speed-up over local |\n|---|---|---|---|")
    for p in s["projection"]:
        print(f"| {p['nodes']} | {p['actors']} | {p['batch_s']:.2f} s | {p['speedup']:.1f}× |")


if __name__ == "__main__":
    main()
