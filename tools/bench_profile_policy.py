"""Benchmark: the full measurement policy before and after it was shortened — time and accuracy.

    python tools/bench_profile_policy.py --space bert-ose --dir /tmp/policy --held-out 30 \
        --json-out tools/results/bench_profile_policy_bert-ose.json

In one run, on this machine, with nothing else added:

1. a full profile of ``--space`` with each policy, from scratch, into ``DIR/<name>.json``
   (``--order``, default ``before,now``):
   * ``before``: the full policy until 2026-12-02 — per item ≥ 5 warm-up runs and ≥ 0.05 s of
     them per round, ≥ 20 timed runs, ≥ 1 s per block and ≥ 2 s per calibration sub-network
     (spread over the 3 rounds);
   * ``now``: :class:`hwnas.profiling.profiler.MeasurePolicy`'s defaults (the warm-up capped at 2
     runs once it adds up to 0.25 s, ≥ 9 timed runs, ≥ 0.5 s per block, ≥ 1 s per calibration
     sub-network);
2. ``--held-out`` sub-networks that neither calibration set holds, exported and timed after both
   profiles by :func:`hwnas.profiling.profiler.time_models` with the *before* policy (the
   thorough one: the truth does not change with the policy under test);
3. both profiles' predictors scored against those same measurements (within ±5% / ±10%,
   RMSPE, mean relative error, Spearman ρ), beside each profile's wall time split into export,
   session creation, ONNX Runtime runs and waiting out slow spells.

``DIR`` must not hold the profiles (nothing is resumed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_interference import held_out_configs, profile  # noqa: E402
from bench_latency import metrics  # noqa: E402


def policies() -> dict:
    from hwnas.profiling.profiler import MeasurePolicy

    return {"before": MeasurePolicy(warmup_cap_seconds=1e6, repeats=20, min_seconds=1.0, calibration_min_seconds=2.0),
            "now": MeasurePolicy()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--dir", required=True, type=Path, help="where the profiles are written")
    parser.add_argument("--held-out", type=int, default=30)
    parser.add_argument("--order", default="before,now", help="policies in the order they profile (default before,now)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)

    known = policies()
    order = [name.strip() for name in args.order.split(",") if name.strip()]
    bad = [name for name in order if name not in known]
    if bad or sorted(order) != sorted(known):
        parser.error(f"--order {args.order!r}: give each of {', '.join(known)} once" + (f" (unknown: {bad[0]!r})" if bad else ""))
    if args.held_out < 1:
        parser.error(f"--held-out {args.held_out} must be at least 1")
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in order:
        if (args.dir / f"{name}.json").exists():
            parser.error(f"{args.dir / f'{name}.json'} exists; the benchmark profiles from scratch")

    import torch

    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile
    from hwnas.profiling.profiler import MEASURE_NICENESS, export_subnet, time_models
    from hwnas.supernets.registry import get_supernet

    torch.set_num_threads(1)
    supernet = get_supernet(args.space)
    summaries = {}
    for name in order:
        print(f"profiling with the {name!r} policy …", file=sys.stderr, flush=True)
        summaries[name] = profile(supernet, args.dir / f"{name}.json", args.threads, MEASURE_NICENESS, known[name])
        summaries[name]["policy"] = asdict(known[name])
        print(f"  {summaries[name]['seconds']:.0f} s", file=sys.stderr, flush=True)

    profiles = {name: load_profile(args.dir / f"{name}.json", space=args.space) for name in order}
    predictors = {name: LatencyPredictor(p, supernet) for name, p in profiles.items()}
    held_out = held_out_configs(supernet.space, profiles.values(), args.held_out, args.seed)
    first = profiles[order[0]]
    shape, threads = first.shape, int(first.settings["threads"])
    print(f"timing {len(held_out)} held-out sub-networks …", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    exported = {str(i): export_subnet(supernet, c, shape) for i, c in enumerate(held_out)}
    timings = time_models(exported, ep="cpu", threads=threads, policy=known["before"], seed=args.seed)
    y = np.array([timings[str(i)].median_ms for i in range(len(held_out))])
    scores = {name: metrics(np.asarray(p.predict(held_out), dtype=np.float64), y) for name, p in predictors.items()}
    result = {
        "space": args.space,
        "cpu": first.device.get("cpu_model"),
        "threads": threads,
        "shape": shape,
        "order": order,
        "profiles": summaries,
        "held_out": len(held_out),
        "held_out_ms_range": [float(y.min()), float(y.max())],
        "held_out_load_before": load_before,
        "held_out_load_after": os.getloadavg(),
        "held_out_truth": "hwnas.profiling.profiler.time_models with the 'before' policy",
        "predictors": scores,
        "rows": [{"config": c, "measured_ms": float(m), **{name: float(p.predict([c])[0]) for name, p in predictors.items()}}
                 for c, m in zip(held_out, y)],
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(result))
    return 0


def markdown_table(result: dict) -> str:
    rows = ["| policy | wall | export | sessions | ORT runs | waits | marked noisy | within ±5% | within ±10% | RMSPE | mean error | Spearman ρ |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in result["order"]:
        p, m = result["profiles"][name], result["predictors"][name]
        stats, waited = p["stats"] or {}, (p["noise"] or {}).get("waited_seconds", 0.0)
        rows.append(f"| {name} | {p['seconds']:.0f} s | {stats.get('export_seconds', 0):.0f} s | "
                    f"{stats.get('session_seconds', 0):.0f} s | {stats.get('ort_run_seconds', 0):.0f} s | {waited:.0f} s | "
                    f"{p['noisy']} | {m['within_5pct']:.0%} | {m['within_10pct']:.0%} | {m['rmspe']:.1%} | "
                    f"{m['mean_rel_err']:+.1%} | {m['spearman']:.3f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
