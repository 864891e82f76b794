#!/usr/bin/env python
"""LINAS's batch rules on the synthetic test problem, against its exact Pareto front.

The synthetic supernet of the test suite (``tests/search_synthetic.py``: 6 genes × 6 values,
accuracy and parameter count in closed form, every configuration enumerable) is searched by
LINAS with each ``batch`` rule at the test suite's settings (150 evaluations, population 20,
5,000 inner evaluations), and the hypervolume each run reaches is divided by the true front's::

    python tools/bench_batch_rules.py --seeds 4 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from search_synthetic import accuracy_of, all_values, params_of  # noqa: E402
from test_search_algorithms import run  # noqa: E402

from hwnas.search.algorithms.linas import BATCH_RULES  # noqa: E402
from hwnas.search.pareto import hypervolume_natural  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4, help="seeds 0..K-1")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    X = all_values()
    truth = np.column_stack([accuracy_of(X), params_of(X)])
    doc: dict[str, list[float]] = {}
    for rule in BATCH_RULES:
        ratios = []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                result = run(Path(tmp), "linas", seed=seed, settings={"batch": rule})
                ratios.append(result.hypervolume / hypervolume_natural(truth, [True, False], result.reference_point))
        doc[rule] = ratios
        if not args.json:
            print(f"{rule:24s} " + " ".join(f"{r:.4f}" for r in ratios) + f"   median {np.median(ratios):.4f}",
                  flush=True)
    if args.json:
        print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
