"""Benchmark: accuracy range of a shipped trained supernet and the cost of evaluating it.

    python tools/bench_accuracy.py --n 100 --out R.json
    python tools/bench_accuracy.py --space mbv3-fmnist --n 100 --threads 2 --test --out R.json

Evaluates the largest, the smallest and a seeded uniform sample of ``--n`` sub-networks of
``--space`` (default bert-mini) on the validation split with the inherited weights (the evaluator the searches
use; one call per sub-network, each timed alone and evaluated for the first time), and prints the accuracy
range and the wall time per sub-network (median, quartiles, min, max; for ``mbv3-fmnist`` this
includes the BN recalibration). Torch runs on ``--threads``. ``--test`` also reports the test
split's accuracy range (computed after the timing, not timed). ``--uniform`` also evaluates every
*uniform* sub-network — each dimension at one value in all its layers (e.g. on ``mbv3-fmnist``:
kernel 5, expand 3, depth 4 everywhere) — which shows which dimensions the trained weights serve
well between the two ends the sandwich rule trains at every step::

    python tools/bench_accuracy.py --space mbv3-fmnist --n 0 --uniform --threads 2 --out R.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="sampled sub-networks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--test", action="store_true", help="also the test split's accuracies")
    parser.add_argument("--uniform", action="store_true",
                        help="also every uniform sub-network (one value per dimension in all its layers)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error(f"--n must be ≥ 0, got {args.n}")

    import torch

    from hwnas.evaluation.accuracy import get_evaluator
    from hwnas.profiling.profiler import calibration_configs
    from hwnas.supernets.registry import get_supernet

    torch.set_num_threads(args.threads)
    supernet = get_supernet(args.space)
    evaluator = get_evaluator(supernet)
    space = supernet.space
    smallest, largest = calibration_configs(space, 2)
    ends = {space.key(largest), space.key(smallest)}
    sample = [c for c in space.sample(args.n + 10, seed=args.seed, unique=True) if space.key(c) not in ends]
    configs = [largest, smallest] + sample[: args.n]
    keys = {space.key(c) for c in configs}
    warm = next(c for c in space.sample(50, seed=args.seed + 1) if space.key(c) not in keys)
    evaluator.evaluate([warm])  # loads the checkpoint and the data outside the timing; cached apart
    accuracies, seconds = [], []
    for config in configs:
        t0 = time.perf_counter()
        accuracies.append(float(evaluator.evaluate([config])[0]))
        seconds.append(time.perf_counter() - t0)
    acc = np.array(accuracies)
    sample = acc[2:]
    test = None
    if args.test:
        t = np.asarray(evaluator.test_accuracy(configs), dtype=np.float64)
        test = {"largest": float(t[0]), "smallest": float(t[1]),
                "sample": {"min": float(t[2:].min()), "median": float(np.median(t[2:])), "max": float(t[2:].max()),
                           "mean": float(t[2:].mean()),
                           "below_smallest": int((t[2:] < t[1]).sum())} if args.n else None}
    q1, q3 = np.percentile(seconds, [25, 75])
    result = {
        "space": args.space,
        "cpu": __import__("platform").processor() or None,
        "load_average": list(__import__("os").getloadavg()),
        "evaluator": evaluator.description,
        "threads": args.threads,
        "largest": {"config": largest, "validation": acc[0], "params": supernet.count_params(largest),
                    "seconds": seconds[0]},
        "smallest": {"config": smallest, "validation": acc[1], "params": supernet.count_params(smallest),
                     "seconds": seconds[1]},
        "sample": {"n": len(sample), "seed": args.seed, "min": float(sample.min()), "median": float(np.median(sample)),
                   "max": float(sample.max())} if args.n else None,
        "seconds_per_subnetwork": {"median": float(np.median(seconds)), "q1": float(q1), "q3": float(q3),
                                   "min": float(min(seconds)), "max": float(max(seconds))},
        "test": test,
    }
    if args.uniform:
        result["uniform"] = uniform_table(space, evaluator, args.test)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def uniform_configs(space) -> list[dict]:
    """Every valid configuration with one value per dimension in all its layers (canonical)."""
    import itertools

    dims = list(space.dimensions)
    if int(np.prod([len(d.choices) for d in dims])) > 1000:
        raise SystemExit(f"error: space {space.name!r} has too many uniform configurations for --uniform")
    out, seen = [], set()
    for values in itertools.product(*(d.choices for d in dims)):
        config = {d.name: [v] * d.per_layer if d.per_layer else v for d, v in zip(dims, values)}
        depth = config.get(space.depth) if space.depth else None
        if depth is not None:  # per-layer lists as long as the depth
            config = {k: (v[:depth] if isinstance(v, list) else v) for k, v in config.items()}
        if not space.is_valid(config):
            continue
        config = space.canonical(config)
        if space.key(config) not in seen:
            seen.add(space.key(config))
            out.append(config)
    return out


def uniform_table(space, evaluator, test: bool) -> list[dict]:
    """Validation (and test) accuracy of every uniform configuration, printed as a table."""
    configs = uniform_configs(space)
    valid = evaluator.evaluate(configs)
    tested = evaluator.test_accuracy(configs) if test else None
    rows = []
    print("| " + " | ".join(d.name for d in space.dimensions) + " | validation |" + (" test |" if test else ""))
    print("|" + "---|" * len(space.dimensions) + "---:|" + ("---:|" if test else ""))
    for i, config in enumerate(configs):
        values = {d.name: (config[d.name][0] if isinstance(config[d.name], list) else config[d.name])
                  for d in space.dimensions}
        row = {"values": values, "validation": float(valid[i])}
        if tested is not None:
            row["test"] = float(tested[i])
        rows.append(row)
        print("| " + " | ".join(str(v) for v in values.values()) + f" | {valid[i]:.4f} |"
              + (f" {tested[i]:.4f} |" if tested is not None else ""))
    return rows


if __name__ == "__main__":
    sys.exit(main())
