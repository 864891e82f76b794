#!/usr/bin/env python
"""Per-batch diagnostics of LINAS run directories: what each validated batch added.

For every batch (the first, random, population; then one per outer loop, sizes from
``run.json``'s ``result.loops``) it prints: the batch size, the hypervolume gained, how many of
its rows were not dominated by anything validated before it ("improving"), the mean signed and
absolute error of the accuracy predictor on it, and the median accuracy and latency of the batch.
Two objectives (accuracy, then the first latency), as ``tools/bench_search.py`` runs them::

    python tools/linas_batches.py BENCH/runs/linas-s0 BENCH/runs/linas-s1 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.search.pareto import hypervolume, to_minimization  # noqa: E402
from hwnas.search.store import read_run  # noqa: E402


def batches(run_dir: Path) -> list[dict]:
    """One dict per validated batch of the LINAS run in ``run_dir`` (see the module doc)."""
    run = read_run(run_dir, require_complete=False)
    meta, rows = run.meta, run.evaluations
    names = [o["name"] for o in meta["objectives"]]
    maximize = [o["maximize"] for o in meta["objectives"]]
    F = np.array([[r["objectives"][n] for n in names] for r in rows], dtype=np.float64)
    Fm = to_minimization(F, maximize)
    ref = to_minimization(np.array([meta["reference_point"]], dtype=np.float64), maximize)[0]
    population = int(meta["settings"].get("population", 50))
    sizes = [population] + [lp["next_batch"] for lp in (meta.get("result") or {}).get("loops", [])]
    out, start = [], 0
    for size in sizes:
        end = min(len(rows), start + size)
        if end <= start:
            break
        before, batch = Fm[:start], Fm[start:end]
        improving = sum(1 for f in batch if start == 0 or not np.any(
            np.all(before <= f, axis=1) & np.any(before < f, axis=1)))
        err = [r["predicted"]["accuracy"] - r["objectives"]["accuracy"]
               for r in rows[start:end] if "accuracy" in (r.get("predicted") or {})]
        out.append({
            "first_row": start, "rows": end - start,
            "hv_gain": hypervolume(Fm[:end], ref) - (hypervolume(before, ref) if start else 0.0),
            "improving": improving,
            "pred_bias": float(np.mean(err)) if err else None,
            "pred_mae": float(np.mean(np.abs(err))) if err else None,
            "accuracy_median": float(np.median(F[start:end, 0])),
            "latency_median": float(np.median(F[start:end, 1])),
        })
        start = end
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="LINAS run directories")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    args = p.parse_args(argv)
    doc = {str(run): batches(run) for run in args.runs}
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    for run, rows in doc.items():
        print(f"{run}\n| first row | rows | HV gain | improving | pred. bias | pred. MAE | acc. median | lat. median |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b in rows:
            bias = "—" if b["pred_bias"] is None else f"{b['pred_bias']:+.4f}"
            mae = "—" if b["pred_mae"] is None else f"{b['pred_mae']:.4f}"
            print(f"| {b['first_row']} | {b['rows']} | {b['hv_gain']:.5f} | {b['improving']} | {bias} | {mae} | "
                  f"{b['accuracy_median']:.4f} | {b['latency_median']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
