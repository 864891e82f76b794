#!/usr/bin/env python
"""How well do accuracy surrogates predict what a search validates next? Offline, on its own runs.

For each run directory of ``tools/bench_search.py`` (accuracy vs latency) and each cut N in
``--cuts``, fit a surrogate on the first N validated rows (features: ``supernet.feature_matrix``,
as LINAS fits them) and predict the accuracy of the next ``--next`` rows, the configurations the
search chose to validate after them. Variants:

* ``cv`` — LINAS's predictor (ridge / SVR / trees chosen by 5-fold cross-validation);
* ``ridge``, ``svr``, ``gbt`` — each candidate alone;
* ``mean3`` — the average of the three;
* ``cv+knn`` — ``cv`` plus the weighted mean of its training residuals over the 5 nearest
  training configurations in gene space (Hamming distance, weights 1/(1+d)²): a local correction.

Prints, per variant, the mean absolute error and mean signed error (accuracy points), Spearman's
ρ within each predicted batch and the error on the better half of each batch::

    python tools/bench_surrogate_next.py --space mbv3-fmnist BENCH/runs/linas-s3 BENCH/runs/nsga2-s3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.errors import InputError  # noqa: E402
from hwnas.predictors.surrogate import ObjectivePredictor  # noqa: E402
from hwnas.search.store import read_run  # noqa: E402


def knn_residuals(G_train: np.ndarray, residual: np.ndarray, G_test: np.ndarray, k: int = 5) -> np.ndarray:
    """Weighted mean residual of the ``k`` nearest training rows (Hamming distance on genes), [N_test]."""
    d = (G_test[:, None, :] != G_train[None, :, :]).sum(axis=2).astype(np.float64)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    w = 1.0 / (1.0 + np.take_along_axis(d, idx, 1)) ** 2
    return (w * residual[idx]).sum(axis=1) / w.sum(axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--space", required=True)
    p.add_argument("--cuts", default="75,100,150,200,250", help="training-set sizes N [default: 75,100,150,200,250]")
    p.add_argument("--next", type=int, default=50, help="rows predicted after each cut [default: 50]")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        cuts = [int(c) for c in args.cuts.split(",")]
    except ValueError:
        p.error(f"--cuts {args.cuts!r} is not comma-separated integers")
    from scipy.stats import spearmanr

    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet(args.space)
    scores: dict[str, list[tuple[float, float, float, float]]] = {}
    for path in args.runs:
        try:
            rows = read_run(path, space=args.space, require_complete=False).evaluations
        except InputError as error:
            p.error(str(error))
        G = np.array([supernet.space.to_genes(r["config"]) for r in rows])
        y = np.array([r["objectives"]["accuracy"] for r in rows], dtype=np.float64)
        X = supernet.feature_matrix(G)
        for n in cuts:
            if n + 10 > len(y):
                continue
            test = slice(n, min(n + args.next, len(y)))
            preds = {name: ObjectivePredictor([name], seed=0).fit(X[:n], y[:n]).predict(X[test])
                     for name in ("ridge", "svr", "gbt")}
            cv = ObjectivePredictor(seed=0).fit(X[:n], y[:n])
            preds["cv"] = cv.predict(X[test])
            preds["mean3"] = (preds["ridge"] + preds["svr"] + preds["gbt"]) / 3
            preds["cv+knn"] = preds["cv"] + knn_residuals(G[:n], y[:n] - cv.predict(X[:n]), G[test])
            truth = y[test]
            better = truth >= np.median(truth)
            for name, pred in preds.items():
                err = pred - truth
                scores.setdefault(name, []).append((float(np.abs(err).mean()), float(err.mean()),
                                                    float(spearmanr(pred, truth)[0]), float(np.abs(err[better]).mean())))
    print("| surrogate | MAE (points) | mean error | Spearman ρ | MAE, better half | batches |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {}
    for name, rows_ in scores.items():
        a = np.array(rows_)
        summary[name] = {"mae": float(a[:, 0].mean() * 100), "bias": float(a[:, 1].mean() * 100),
                         "spearman": float(np.nanmean(a[:, 2])), "mae_better_half": float(a[:, 3].mean() * 100),
                         "batches": len(a)}
        s = summary[name]
        print(f"| {name} | {s['mae']:.3f} | {s['bias']:+.3f} | {s['spearman']:.2f} | {s['mae_better_half']:.3f} | {len(a)} |")
    if args.json_out:
        args.json_out.write_text(json.dumps({"space": args.space, "runs": [str(r) for r in args.runs], "cuts": cuts,
                                             "next": args.next, "surrogates": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
