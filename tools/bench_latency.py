"""Benchmark: how close predicted latency is to latency measured on this machine.

    python tools/bench_latency.py --space bert-ose --profile profiles/bert-ose-cpu.json \
        --held-out 40 --json-out bench-latency-ose.json

Loads the profile (or, when the file does not exist, profiles the space into it first), then
exports and times a seeded sample of whole sub-networks that the calibration set never saw,
with the profiler's own runner and policy (rounds interleaved over all of them, as the profiler
times its items: :func:`hwnas.profiling.profiler.time_models`), and scores four predictors fitted on the profile
only:

* ``lut``        the raw sum of the profile's block medians,
* ``calibrated`` hwnas's predictor (LUT sum + the correction chosen by cross-validation),
* ``macs``       a MACs-only linear model ``t = a·MACs + c`` fitted on the calibration set,
* ``features``   a HAT/DyNAS-T-style regressor on configuration features alone (ridge or
  RBF-SVR, whichever cross-validates better on the calibration set).

For each: share of held-out sub-networks within ±5% and ±10%, RMSPE, Spearman ρ and Kendall τ
against the measured medians. The noise floor is the same metrics for a *second* measurement of
the first ``--noise`` held-out sub-networks, in a new session, against the first: no predictor
can be expected to do better than the machine agrees with itself. Also reports how long
predicting 10,000 configurations takes. Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Agreement of ``predicted`` with ``measured`` (both ms, [N])."""
    from scipy.stats import kendalltau, spearmanr

    rel = (predicted - measured) / measured
    return {
        "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
        "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
        "rmspe": float(np.sqrt(np.mean(rel**2))),
        "max_abs_rel_err": float(np.max(np.abs(rel))),
        "mean_rel_err": float(np.mean(rel)),
        "spearman": float(spearmanr(predicted, measured).statistic),
        "kendall_tau": float(kendalltau(predicted, measured).statistic),
    }


def fit_macs(supernet, shape, configs, y):
    """t = a·MACs + c, weighted by 1/t² (relative error), fitted on the calibration set."""
    from sklearn.linear_model import LinearRegression

    X = np.array([[supernet.count_macs(c, shape)] for c in configs], dtype=np.float64)
    model = LinearRegression().fit(X, y, sample_weight=1 / y**2)
    return lambda cs: model.predict(np.array([[supernet.count_macs(c, shape)] for c in cs], dtype=np.float64))


def fit_features(supernet, configs, y):
    """Best of ridge / RBF-SVR on configuration features alone (no profile), chosen by CV."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    X = np.stack([supernet.features(c) for c in configs])
    cv = KFold(n_splits=min(5, len(y)), shuffle=True, random_state=0)
    candidates = {
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "svr": make_pipeline(StandardScaler(), GridSearchCV(
            SVR(kernel="rbf"), {"C": np.logspace(-1, 3, 5) * np.median(y), "gamma": ["scale", 0.01, 0.1]}, cv=3)),
    }
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in candidates.items():
            scores[name] = float(np.mean(cross_val_score(model, X, y, cv=cv, scoring="neg_mean_absolute_percentage_error")))
        best = max(scores, key=scores.get)
        model = candidates[best].fit(X, y)
    return best, (lambda cs: model.predict(np.stack([supernet.features(c) for c in cs])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--profile", required=True, type=Path, help="profile to load (made here if missing)")
    parser.add_argument("--held-out", type=int, default=40, help="held-out sub-networks to measure")
    parser.add_argument("--noise", type=int, default=10, help="of those, how many to measure twice")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.precision import int8_bytes
    from hwnas.profiling.profile import load_profile
    from hwnas.profiling.profiler import (
        MeasurePolicy,
        Profiler,
        export_subnet,
        time_models,
    )
    from hwnas.supernets.registry import get_supernet

    torch.set_num_threads(1)
    supernet = get_supernet(args.space)
    if not args.profile.exists():
        print(f"profiling {args.space} into {args.profile} …", file=sys.stderr)
        Profiler(supernet, args.profile, policy=MeasurePolicy()).run()
    profile = load_profile(args.profile, space=args.space)
    predictor = LatencyPredictor(profile, supernet)
    shape, threads, ep = profile.shape, int(profile.settings["threads"]), profile.ep
    policy = MeasurePolicy(**profile.settings["policy"])
    precision = profile.precision

    space = supernet.space
    seen = {space.key(c["config"]) for c in profile.calibration}
    rng = np.random.default_rng(args.seed)
    held_out: list[dict] = []
    keys: set[str] = set()
    limit = space.count_valid()
    while len(held_out) < args.held_out and len(keys) + len(seen) < limit:
        (config,) = space.sample(1, seed=rng)
        key = space.key(config)
        if key not in seen and key not in keys:
            held_out.append(config)
            keys.add(key)

    load_before = os.getloadavg()
    started = time.perf_counter()
    models = {}
    for i, config in enumerate(held_out):
        model, feeds = export_subnet(supernet, config, shape)
        if precision == "int8":  # quantized as `hwnas export --int8` quantizes, as the profile's items were
            model = int8_bytes(model)
        models[f"m{i}"] = (model, feeds)
    # Rounds interleaved over all held-out models (time_models), as the profiler times its items;
    # then the first --noise of them again, in new sessions: how much the machine disagrees with itself.
    timings = time_models(models, ep=ep, threads=threads, policy=policy, seed=args.seed)
    measured = [timings[f"m{i}"].median_ms for i in range(len(held_out))]
    first = {f"m{i}": models[f"m{i}"] for i in range(min(args.noise, len(held_out)))}
    again_t = time_models(first, ep=ep, threads=threads, policy=policy, seed=args.seed + 1)
    again = [again_t[name].median_ms for name in first]
    for i, config in enumerate(held_out):
        print(f"{i + 1:3d}/{len(held_out)} {measured[i]:9.3f} ms  {json.dumps(config)}", file=sys.stderr, flush=True)
    measure_seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    y = np.array(measured)

    cal_configs = [c["config"] for c in profile.calibration]
    cal_y = np.array([c["median_ms"] for c in profile.calibration])
    macs_predict = fit_macs(supernet, shape, cal_configs, cal_y)
    features_model, features_predict = fit_features(supernet, cal_configs, cal_y)
    predictions = {
        "lut": predictor.lut_sum(held_out),
        "calibrated": predictor.predict(held_out),
        "macs": macs_predict(held_out),
        "features": features_predict(held_out),
    }

    sample = space.sample(10_000, seed=0)
    genes = np.stack([space.to_genes(c) for c in sample])
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        predictor.predict(genes)
        timings.append(time.perf_counter() - t0)

    result = {
        "space": args.space,
        "profile": str(args.profile),
        "device_id": profile.device.get("id"),
        "ep": ep,
        "precision": precision,
        "profile_noisy": profile.noisy,
        "profile_noise": profile.noise,
        "load_average_before": load_before,
        "cpu": profile.device.get("cpu_model"),
        "threads": threads,
        "shape": shape,
        "calibration_size": len(profile.calibration),
        "calibration_choice": predictor.choice.name if predictor.choice else None,
        "calibration_cv_rmspe": predictor.choice.cv_rmspe if predictor.choice else None,
        "features_model": features_model,
        "held_out": len(held_out),
        "held_out_ms_range": [float(y.min()), float(y.max())],
        "measure_seconds": round(measure_seconds, 1),
        "load_average_after": load_after,
        "predictors": {name: metrics(np.asarray(p, dtype=np.float64), y) for name, p in predictions.items()},
        "noise_floor": metrics(np.array(again), y[: len(again)]) if len(again) >= 3 else None,
        "noise_floor_n": len(again),
        "predict_10k_seconds": {"median": float(np.median(timings)), "min": float(min(timings)),
                                "max": float(max(timings))},
        "rows": [{"config": c, "measured_ms": float(m), **{k: float(v[i]) for k, v in predictions.items()}}
                 for i, (c, m) in enumerate(zip(held_out, y))],
    }
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    summary = {k: v for k, v in result.items() if k != "rows"}
    print(json.dumps(summary, indent=2))
    print(markdown_table(result))
    return 0


def markdown_table(result: dict) -> str:
    rows = ["| predictor | within ±5% | within ±10% | RMSPE | Spearman ρ | Kendall τ |", "|---|---|---|---|---|---|"]
    named = dict(result["predictors"])
    if result["noise_floor"]:
        named[f"noise floor (n={result['noise_floor_n']})"] = result["noise_floor"]
    for name, m in named.items():
        rows.append(f"| {name} | {m['within_5pct']:.0%} | {m['within_10pct']:.0%} | {m['rmspe']:.1%} | "
                    f"{m['spearman']:.3f} | {m['kendall_tau']:.3f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
