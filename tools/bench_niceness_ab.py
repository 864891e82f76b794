#!/usr/bin/env python
"""Benchmark: does measuring at niceness -20 change how well ``time_models`` repeats itself?

    python tools/bench_niceness_ab.py --space bert-mini --models 10

Exports ``--models`` seeded sub-networks, then times all of them with
:func:`hwnas.profiling.profiler.time_models` twice at niceness -20 and twice at normal priority,
alternating (-20, normal, -20, normal), and prints each setting's repeat agreement (share of
models whose two medians are within 10%), the median |difference|, and the median ratio of the
two settings' mean medians. Needs root or CAP_SYS_NICE for -20; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.profiling.profiler import MeasurePolicy, export_subnet, time_models  # noqa: E402
from hwnas.supernets.registry import get_supernet  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args(argv)
    net = get_supernet(args.space)
    configs = net.space.sample(args.models, seed=args.seed)
    models = {str(i): export_subnet(net, c, net.default_shape) for i, c in enumerate(configs)}
    medians: dict[str, list[list[float]]] = {"-20": [], "normal": []}
    for repeat in range(2):
        for label, niceness in (("-20", -20), ("normal", None)):
            timed = time_models(models, ep="cpu", threads=args.threads, policy=MeasurePolicy(), seed=repeat,
                                niceness=niceness)
            medians[label].append([timed[k].median_ms for k in models])
            print(f"niceness {label:6s} repeat {repeat}: " + " ".join(f"{m:.3f}" for m in medians[label][-1]),
                  flush=True)
    for label, (a, b) in ((k, np.array(v)) for k, v in medians.items()):
        rel = np.abs(b / a - 1)
        print(f"niceness {label}: repeat agreement within ±10% {np.mean(rel <= 0.10):.0%}, "
              f"median |difference| {np.median(rel):.1%}")
    ratio = np.array(medians["-20"]).mean(0) / np.array(medians["normal"]).mean(0)
    print(f"median ratio of the means, -20 / normal: {np.median(ratio):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
