"""Benchmark: OSE (de Wynter's FPTAS) against the exhaustive optimum of its own W-coefficient.

    python tools/bench_ose.py                          # default: ≤ ~20 min here, resumable
    python tools/bench_ose.py --max-minutes 0          # the whole space (hours on 2 cores)
    python tools/bench_ose.py --profile profiles/bert-ose-cpu.json --out bench-ose.json

On ``bert-ose`` (300 configurations) it computes OSE's error ê of configurations — the
brief-training loss of :func:`hwnas.evaluation.ose_proxy.brief_training_loss` for every
hyperparameter set Θ (default: the ``loss`` objective's default Θ of ``hwnas search``), the
minimum over Θ — and the inference cost: the profile's predicted latency (ms) with
``--profile``, else the paper's op-count surrogate (:func:`hwnas.supernets.bert.ops.bert_op_count`, one
sequence of ``--seq-len`` tokens). The maximum point T is that of the whole space (cheap). Then,
on the table of evaluated configurations:

* the exhaustive optimum of W (every configuration of the table trained),
* OSE's selection for each ε in ``--epsilons`` and each interval mode in ``--intervals``:
  its configuration, W, the ratio W_ose / W_opt, the rank of its pick in the table (1 = the
  optimum), the brief trainings it used, whether the paper's bound W_ose ≥ (1 - ε)·W_opt held,
  and whether the bound's premise (errors within a factor 1 - ε inside every ε-interval,
  :func:`hwnas.search.algorithms.ose_math.interval_flatness`) held on this table,
* the W and rank of Bort's architecture (D=4, A=8, H=1024, I=768) — the paper's published pick
  (de Wynter & Perry, arXiv 2010.10499), quoted beside ours, not a result of this benchmark.

Cost and subsets. One brief training costs roughly in proportion to the configuration's
non-embedding parameters (the largest, D=12 H=1024 I=3072, takes minutes on one thread), and the
whole space about 71 times the largest. So by default the tool evaluates configurations in a
fixed seeded order (Bort's first, so the paper's pick is always in the table; then a
permutation of the rest by ``--seed``) until ``--max-minutes`` would be exceeded — the next
configuration is started only when a cost model fitted on the times measured so far says it
fits — and runs the comparison on that prefix of the order (the JSON lists it and says
``"complete": false``). Every loss is cached in ``--cache`` (JSON, written after each brief
training), so a rerun is instant for what is cached and continues the order where it stopped;
``--max-minutes 0`` evaluates the whole space (or ``--subset N`` configurations of the order).
Torch runs on ``--threads`` threads (default 1: the machine is shared).

Output: a JSON document (``--out``) and a Markdown table on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "hwnas-bench-ose/1"
CACHE_SCHEMA = "hwnas-bench-ose-cache/1"
# Prior cost model before anything is measured (seconds per brief training): measured here on
# one thread, the largest configuration (125.8 M non-embedding parameters) took 181 s and the
# smallest ~5 s (see the report of the OSE benchmark); refitted on the run's own timings.
PRIOR_S_PER_PARAM = 1.45e-6
PRIOR_S_FIXED = 3.0
# Predicted times are inflated by this factor before a configuration is started (shared machine).
SAFETY = 1.3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Cache of brief-training losses
# ---------------------------------------------------------------------------------------------
def theta_key(theta: Any) -> str:
    return f"steps={theta.steps},batch={theta.batch},lr={theta.lr!r},seed={theta.seed}"


def load_cache(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema": CACHE_SCHEMA, "entries": {}}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"cache {path} is not valid JSON ({exc}); move it away or pass another --cache")
    if doc.get("schema") != CACHE_SCHEMA:
        raise SystemExit(f"cache {path} has schema {doc.get('schema')!r}, expected {CACHE_SCHEMA!r}")
    return doc


def save_cache(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Cost model for the time budget
# ---------------------------------------------------------------------------------------------
def non_embedding_params(arch: Any) -> int:
    """Weights of the encoder layers (what brief training's time scales with)."""
    h = arch.hidden
    return sum(4 * h * l.inner + 2 * h * l.ffn for l in arch.layers)


class CostModel:
    """Seconds of one brief training ≈ a + b · non-embedding parameters (least squares on the
    timings measured in this run and in the cache, with the prior until two exist)."""

    def __init__(self) -> None:
        self.x: list[float] = []
        self.y: list[float] = []

    def add(self, params: int, seconds: float) -> None:
        self.x.append(float(params))
        self.y.append(float(seconds))

    def predict(self, params: int) -> float:
        if len(set(self.x)) < 2:
            scale = 1.0 if not self.x else max(self.y[-1] / (PRIOR_S_FIXED + PRIOR_S_PER_PARAM * self.x[-1]), 0.2)
            return scale * (PRIOR_S_FIXED + PRIOR_S_PER_PARAM * params)
        b, a = np.polyfit(self.x, self.y, 1)
        return max(float(a + b * params), 0.5, PRIOR_S_PER_PARAM * params * 0.3)


# ---------------------------------------------------------------------------------------------
# Analysis of a table
# ---------------------------------------------------------------------------------------------
def rank_of(w: np.ndarray, row: int) -> int:
    """1 + number of table rows with a strictly larger W."""
    return 1 + int(np.sum(w > w[row] + 1e-15 * abs(w[row])))


def analyse(configs: list[dict], p: np.ndarray, i: np.ndarray, E: np.ndarray, T: Any,
            epsilons: list[float], modes: list[str], n_theta: int) -> dict[str, Any]:
    """OSE vs. the exhaustive optimum on one table (rows = evaluated configurations).

    Args:
        configs: [N]; p, i: [N]; E: errors [N, |Θ|]; T: the space's maximum point.
    """
    from hwnas.search.algorithms import ose_math as ose

    best, w = ose.exhaustive_best(p, i, E, T)
    e_best = np.where(np.isfinite(E), E, np.inf).min(axis=1)
    out: dict[str, Any] = {
        "n_configurations": len(configs),
        "optimum": {"config": configs[best], "W": float(w[best]), "p": float(p[best]), "i": float(i[best]),
                    "e": float(e_best[best]), "brief_trainings": len(configs) * n_theta},
        "ose": [],
    }
    for mode in modes:
        for eps in epsilons:
            cand, intervals = ose.select_candidates(p, i, eps, mode, T)
            errors = {int(r): E[r] for r in cand}
            res = ose.build_result(configs, p, i, cand, intervals, errors, eps, mode, T)
            pick = res.selected
            ratio = pick.W / w[best] if w[best] > 0 else float("nan")
            flat = ose.interval_flatness(p, E, eps, mode)
            out["ose"].append({
                "intervals": mode, "epsilon": eps, "config": pick.config, "W": pick.W,
                "ratio": float(ratio), "rank": rank_of(w, pick.index),
                "candidates": int(cand.size), "brief_trainings": int(cand.size) * n_theta,
                "bound_holds": bool(pick.W >= (1 - eps) * w[best] - 1e-12),
                "flatness": flat, "premise_holds": bool(flat >= 1 - eps),
                "w_table": [r.to_json() for r in res.rows],
            })
    return out


def markdown(doc: dict[str, Any]) -> str:
    a = doc["analysis"]
    cost = doc["cost"]
    lines = [
        f"OSE on bert-ose: {a['n_configurations']} of {doc['space_size']} configurations evaluated"
        f" ({'complete' if doc['complete'] else 'prefix of the seeded order — not the whole space'}),"
        f" Θ = {len(doc['theta'])} brief-training set(s), inference cost = {cost['name']} ({cost['unit']}).",
        "",
        "| method | ε | intervals | pick (D, A, H, I) | W | W / W_opt | rank | brief trainings | bound W ≥ (1-ε)·W_opt | premise (flatness ≥ 1-ε) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cfg(c: dict) -> str:
        return f"{c['D']}, {c['A']}, {c['H']}, {c['I']}"

    opt = a["optimum"]
    lines.append(f"| exhaustive | – | – | {cfg(opt['config'])} | {opt['W']:.4g} | 1 | 1 | {opt['brief_trainings']} | – | – |")
    for r in a["ose"]:
        lines.append(f"| OSE | {r['epsilon']:g} | {r['intervals']} | {cfg(r['config'])} | {r['W']:.4g} | "
                     f"{r['ratio']:.3f} | {r['rank']} | {r['brief_trainings']} | {'yes' if r['bound_holds'] else 'NO'} | "
                     f"{'yes' if r['premise_holds'] else 'no'} ({r['flatness']:.3f}) |")
    bort = doc["paper_pick"]
    here = bort.get("here")
    lines.append(f"| Bort (paper's published pick, arXiv 2010.10499) | – | – | {cfg(bort['config'])} | "
                 + (f"{here['W']:.4g} here | {here['ratio']:.3f} | {here['rank']} |" if here else "not in table | – | – |")
                 + " – | – | – |")
    T = doc["max_point"]
    where = cfg(T["config"]) if T["config"] else "virtual — no configuration has both the largest p and i"
    lines += ["", f"Maximum point T: {where} (p = {T['p']:.4g}, "
              f"i = {T['i']:.4g}). Brief-training wall time: {doc['timing']['total_s']:.0f} s "
              f"for {doc['timing']['trainings']} trainings in this run."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", help="latency profile of bert-ose (inference cost = predicted ms); default: op-count surrogate")
    ap.add_argument("--seq-len", type=int, default=None, help="sequence length of the op-count surrogate (default: the space's, 128)")
    ap.add_argument("--epsilons", default="0.5,0.25,0.1,0.05", help="comma-separated ε values")
    ap.add_argument("--intervals", default="linear,log,quantile", help="interval modes (linear, log, quantile)")
    ap.add_argument("--theta", default=None,
                    help='Θ as JSON, e.g. \'[{"steps":20,"batch":32,"lr":5e-4,"seed":0}]\' (default: hwnas search\'s loss Θ)')
    ap.add_argument("--subset", type=int, default=0, help="evaluate at most the first N configurations of the order (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the evaluation order")
    ap.add_argument("--max-minutes", type=float, default=18.0,
                    help="stop starting brief trainings that would end after this (0: no limit)")
    ap.add_argument("--cache", default="bench_ose_losses.json", help="per-configuration loss cache (JSON)")
    ap.add_argument("--out", default="bench_ose.json", help="result JSON")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    from hwnas.evaluation.ose_proxy import BriefTraining, brief_training_loss
    from hwnas.search.algorithms import ose_math as ose
    from hwnas.search.objectives import DEFAULT_LOSS_SETTINGS
    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet("bert-ose")
    space = supernet.space
    epsilons = [float(x) for x in args.epsilons.split(",") if x.strip()]
    modes = [m.strip() for m in args.intervals.split(",") if m.strip()]
    for eps in epsilons:
        ose.n_intervals(eps)
    for mode in modes:
        if mode not in ose.MODES:
            raise SystemExit(f"unknown interval mode {mode!r} (known: {', '.join(ose.MODES)})")
    thetas = [BriefTraining(**t) for t in (json.loads(args.theta) if args.theta else DEFAULT_LOSS_SETTINGS)]

    configs = list(space.enumerate())
    genes = np.stack([space.to_genes(c) for c in configs])
    p = np.array([supernet.count_params(c) for c in configs], dtype=np.float64)
    if args.profile:
        from hwnas.predictors.latency import LatencyPredictor

        i = LatencyPredictor.load(args.profile, supernet).predict(genes)
        cost = {"name": "latency", "unit": "ms", "profile": args.profile}
    else:
        shape = supernet.resolve_shape({"batch": 1, "seq_len": args.seq_len})
        i = supernet.op_counts(genes, shape)
        cost = {"name": "ops", "unit": "operations", "shape": shape,
                "formula": "hwnas.supernets.bert.ops.bert_op_count (additions + multiplications + other ops)"}
    T = ose.max_point(p, i)

    keys = [space.key(c) for c in configs]
    bort_row = keys.index(space.key(supernet.reference_configs()[0]["config"]))
    rest = [r for r in range(len(configs)) if r != bort_row]
    order = [bort_row] + [rest[k] for k in np.random.default_rng(args.seed).permutation(len(rest))]
    if args.subset:
        order = order[: args.subset]

    cache_path = Path(args.cache)
    cache = load_cache(cache_path)
    entries = cache["entries"]
    model = CostModel()
    for entry in entries.values():
        if entry.get("threads") == args.threads and "non_embedding_params" in entry:
            model.add(entry["non_embedding_params"], entry["wall_s"])

    start = time.perf_counter()
    deadline = start + args.max_minutes * 60 if args.max_minutes > 0 else math.inf
    trainings, train_s = 0, 0.0
    evaluated: list[int] = []
    stopped = None
    for n, row in enumerate(order):
        c = configs[row]
        ne = non_embedding_params(supernet.arch(c))
        todo = [t for t in thetas if f"{keys[row]}|{theta_key(t)}" not in entries]
        need = SAFETY * sum(model.predict(ne) for _ in todo)
        if todo and time.perf_counter() + need > deadline:
            stopped = (f"stopped before configuration {n + 1} of {len(order)} ({json.dumps(c)}): "
                       f"predicted {need:.0f} s exceeds the --max-minutes budget")
            log(stopped)
            break
        for t in todo:
            t0 = time.perf_counter()
            loss = brief_training_loss(supernet, c, t)
            dt = time.perf_counter() - t0
            trainings, train_s = trainings + 1, train_s + dt
            entries[f"{keys[row]}|{theta_key(t)}"] = {
                "config": c, "theta": {"steps": t.steps, "batch": t.batch, "lr": t.lr, "seed": t.seed},
                "loss": loss, "wall_s": round(dt, 3), "threads": args.threads,
                "non_embedding_params": ne, "torch": torch.__version__,
            }
            model.add(ne, dt)
            save_cache(cache_path, cache)
            log(f"[{n + 1}/{len(order)}] {json.dumps(c)} {theta_key(t)}: loss {loss:.4f} ({dt:.1f} s)")
        evaluated.append(row)

    if not evaluated:
        raise SystemExit("nothing evaluated: raise --max-minutes")
    rows = np.array(evaluated)
    E = np.array([[entries[f"{keys[r]}|{theta_key(t)}"]["loss"] for t in thetas] for r in rows])
    table_configs = [configs[r] for r in rows]
    analysis = analyse(table_configs, p[rows], i[rows], E, T, epsilons, modes, len(thetas))

    _, w_table = ose.exhaustive_best(p[rows], i[rows], E, T)
    bort_here = None
    if bort_row in evaluated:
        k = evaluated.index(bort_row)
        bort_here = {"W": float(w_table[k]), "rank": rank_of(w_table, k),
                     "ratio": float(w_table[k] / w_table.max()) if w_table.max() > 0 else float("nan")}
    doc = {
        "schema": SCHEMA,
        "space": "bert-ose",
        "space_size": len(configs),
        "complete": len(evaluated) == len(configs),
        "stopped": stopped,
        "order_seed": args.seed,
        "theta": [{"steps": t.steps, "batch": t.batch, "lr": t.lr, "seed": t.seed} for t in thetas],
        "cost": cost,
        "max_point": {"config": configs[T.index] if T.index is not None else None, "p": T.p, "i": T.i,
                      "virtual": T.virtual},
        "analysis": analysis,
        "paper_pick": {"config": dict(supernet.reference_configs()[0]["config"]), "source": "de Wynter & Perry, arXiv 2010.10499 (published)",
                       "here": bort_here},
        "table": [{"config": configs[r], "p": float(p[r]), "i": float(i[r]), "e_per_theta": E[k].tolist(),
                   "W": float(w_table[k])} for k, r in enumerate(rows)],
        "timing": {"trainings": trainings, "total_s": round(train_s, 2), "wall_s": round(time.perf_counter() - start, 2),
                   "threads": args.threads,
                   "per_training_s": {keys[r]: [entries[f"{keys[r]}|{theta_key(t)}"]["wall_s"] for t in thetas]
                                      for r in rows}},
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    }
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
