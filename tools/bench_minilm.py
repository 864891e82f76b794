"""Benchmarks of the pretrained all-MiniLM-L6-v2 spaces on MR (run `hwnas fetch minilm-mr` first).

    python tools/bench_minilm.py probe            # full model: probe accuracy on MR test
    python tools/bench_minilm.py random --n 100   # accuracy / fidelity / time over random sub-networks
    python tools/bench_minilm.py time --n 20      # seconds per sub-network evaluation (the ≤ 5 s target)
    python tools/bench_minilm.py ose              # OSE's pick vs the exhaustive optimum of W, ê range

* ``probe`` — the full model's mean-pooled embeddings, a logistic-regression probe
  (:func:`hwnas.supernets.minilm.probe.fit_probe`) fitted on (a) the whole MR train split
  (7,568 sentences) and (b) the search setting (the first ``ProbeSettings.probe_train``), scored
  on the whole MR test split (2,000). Target ≥ 75%; published MR results for scale (theirs):
  Kim's CNN 81.5% (Kim 2014).
* ``random`` — ``--n`` seeded random configurations of ``minilm-mr``: the ``accuracy`` and
  ``fidelity`` objectives as a search computes them (one fresh supernet, so the time per
  evaluation includes the probe fit), with the wall time of each.
* ``time`` — the search's cost of one evaluation: a fresh supernet, its one-off set-up (weights,
  tokenised sentences, the full model's reference embeddings) timed apart, then ``--n`` seeded
  random configurations of ``minilm-mr`` and the full one, each evaluated as a search does
  (``accuracy`` and ``fidelity`` together: one embedding pass over the probe's training and
  validation sentences and one probe fit); wall and CPU seconds per evaluation, median and
  quartiles, with the load average before and after (a loaded machine inflates wall time).
* ``ose`` — every configuration of ``minilm-mr-ose``: ê (brief fine-tuning loss from the
  pretrained weights, :func:`hwnas.evaluation.ose_proxy.brief_training_loss`, one setting Θ),
  p (parameters) and i (OSE's operation count at the default shape); the exhaustive optimum of W
  and OSE's own selection (:func:`hwnas.search.algorithms.ose_math.run_ose`) at each ε, and the
  range of ê beside chance (ln 2). Losses are cached in ``--cache`` (resumable).

Writes ``tools/results/bench_minilm_<what>.json`` (with the machine and its load average) and
prints a summary. Torch runs on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tools" / "results"


def _machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average_at_end": list(os.getloadavg())}


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"min": float(v.min()), "p25": float(np.percentile(v, 25)), "median": float(np.median(v)),
            "p75": float(np.percentile(v, 75)), "max": float(v.max())}


def _write(name: str, document: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_minilm_{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def probe(args: argparse.Namespace) -> dict:
    from hwnas.supernets.minilm import make_minilm_supernets
    from hwnas.supernets.minilm.probe import fit_probe

    net = make_minilm_supernets()[0]
    task = net.task()
    started = time.perf_counter()
    full = net.full_config()
    train = net.sentence_embeddings(full, "train", len(task.train))
    test = net.sentence_embeddings(full, "test", len(task.test))
    out = {"what": "probe accuracy of the full all-MiniLM-L6-v2 on MR test", "test_sentences": len(test)}
    for label, n in (("whole_train_split", len(train)), ("search_setting", net.probe_settings.probe_train)):
        weight, bias = fit_probe(train[:n], task.train.labels[:n], net.probe_settings.probe_c)
        accuracy = float(np.mean(np.argmax(test @ weight.T + bias, axis=1) == task.test.labels))
        out[label] = {"train_sentences": n, "test_accuracy": accuracy}
        print(f"{label}: probe on {n} train sentences → MR test accuracy {accuracy:.4f}")
    out["wall_s"] = time.perf_counter() - started
    out["target"] = {"test_accuracy": 0.75, "reference": "Kim's CNN 81.5% on MR (Kim 2014, published, not ours)"}
    return out


def _timed_evaluation(net, config: dict) -> dict:
    """accuracy and fidelity of ``config`` as a search computes them, with wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    accuracy, fidelity = float(net.evaluate([config])[0]), float(net.fidelity([config])[0])
    return {"config": config, "accuracy": accuracy, "fidelity": fidelity, "params": net.count_params(config),
            "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}


def _evaluate_random(args: argparse.Namespace) -> tuple[object, dict, list[dict], dict]:
    """A fresh ``minilm-mr`` supernet: (it, set-up seconds, ``--n`` random evaluations, the full one)."""
    from hwnas.supernets.minilm import make_minilm_supernets

    net = make_minilm_supernets()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    net.module()
    net.reference_embeddings()
    setup = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
             "what": "weights, importance order, tokenised MR, the full model's reference embeddings"}
    rows = []
    for number, config in enumerate(net.space.sample(args.n, seed=args.seed, unique=True), 1):
        rows.append(_timed_evaluation(net, config))
        print(f"[{number}/{args.n}] acc {rows[-1]['accuracy']:.4f} fid {rows[-1]['fidelity']:.4f} "
              f"{rows[-1]['seconds']:.2f}s (cpu {rows[-1]['cpu_seconds']:.2f}s)", file=sys.stderr)
    full = _timed_evaluation(net, net.full_config())
    return net, setup, rows, full


def time_evaluations(args: argparse.Namespace) -> dict:
    load_before = list(os.getloadavg())
    net, setup, rows, full = _evaluate_random(args)
    out = {"what": f"seconds per evaluation (accuracy + fidelity) of {args.n} random sub-networks of minilm-mr "
                   f"(seed {args.seed}) and of the full model, one fresh supernet",
           "probe_settings": vars(net.probe_settings),
           "seconds_per_evaluation": _stats([r["seconds"] for r in rows]),
           "cpu_seconds_per_evaluation": _stats([r["cpu_seconds"] for r in rows]),
           "full_model": full, "setup": setup, "target_seconds": 5.0,
           "load_average_at_start": load_before, "rows": rows}
    for key in ("seconds_per_evaluation", "cpu_seconds_per_evaluation"):
        s = out[key]
        print(f"{key}: median {s['median']:.2f} (p25 {s['p25']:.2f}, p75 {s['p75']:.2f}, "
              f"min {s['min']:.2f}, max {s['max']:.2f})")
    print(f"full model: {full['seconds']:.2f}s (cpu {full['cpu_seconds']:.2f}s); set-up {setup['seconds']:.1f}s")
    return out


def random_subnets(args: argparse.Namespace) -> dict:
    net, setup, rows, full_row = _evaluate_random(args)
    reference_s = setup["seconds"]
    full_scores = {k: full_row[k] for k in ("accuracy", "fidelity", "seconds", "cpu_seconds")}
    out = {"what": f"{args.n} random sub-networks of minilm-mr (seed {args.seed})",
           "probe_settings": vars(net.probe_settings) if hasattr(net.probe_settings, "__dict__") else None,
           "accuracy": _stats([r["accuracy"] for r in rows]), "fidelity": _stats([r["fidelity"] for r in rows]),
           "seconds_per_evaluation": _stats([r["seconds"] for r in rows]),
           "cpu_seconds_per_evaluation": _stats([r["cpu_seconds"] for r in rows]),
           "spearman_accuracy_fidelity": _spearman([r["accuracy"] for r in rows], [r["fidelity"] for r in rows]),
           "full_model": full_scores, "setup_s": reference_s, "rows": rows}
    for key in ("accuracy", "fidelity", "seconds_per_evaluation"):
        s = out[key]
        print(f"{key}: min {s['min']:.3f} median {s['median']:.3f} max {s['max']:.3f}")
    return out


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def ose(args: argparse.Namespace) -> dict:
    from hwnas.evaluation.ose_proxy import BriefTraining, brief_training_loss
    from hwnas.search.algorithms import ose_math
    from hwnas.supernets.minilm import make_minilm_supernets

    net = make_minilm_supernets()[1]
    if not args.partial:
        net.module()
    configs = list(net.space.enumerate())
    setting = BriefTraining(steps=args.steps, batch=args.batch, lr=args.lr, seed=0)
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    tag = json.dumps(vars(setting) if hasattr(setting, "__dict__") else str(setting), sort_keys=True)
    table = cache.setdefault(tag, {})
    if args.partial:  # only what the cache holds (an interrupted run): the comparison is on that subset
        configs = [c for c in configs if net.space.key(c) in table]
    for number, config in enumerate(configs, 1):
        key = net.space.key(config)
        if key not in table:
            t = time.perf_counter()
            table[key] = {"loss": brief_training_loss(net, config, setting), "seconds": time.perf_counter() - t}
            cache_path.write_text(json.dumps(cache))
        print(f"[{number}/{len(configs)}] {config} ê {table[key]['loss']:.4f} ({table[key]['seconds']:.1f}s)",
              file=sys.stderr)
    genes = np.stack([net.space.to_genes(c) for c in configs])
    p = np.array([net.count_params(c) for c in configs], dtype=np.float64)
    i = net.op_counts(genes, net.default_shape)
    e = np.array([table[net.space.key(c)]["loss"] for c in configs])
    best, w = ose_math.exhaustive_best(p, i, e)
    picks = {}
    for epsilon in args.epsilons:
        result = ose_math.run_ose(configs, p, i, lambda rows: e[rows], epsilon)
        row = result.selected.index if result.selected is not None else None
        picks[str(epsilon)] = {"config": configs[row] if row is not None else None,
                               "w": float(w[row]) if row is not None else None,
                               "equals_exhaustive_optimum": row == best,
                               "rank": int(np.sum(w > w[row])) + 1 if row is not None else None,
                               "brief_trainings": len(result.rows)}
    order = np.argsort(-w)
    out = {"what": "OSE on minilm-mr-ose: brief fine-tuning from the pretrained weights",
           "setting": {"steps": setting.steps, "batch": setting.batch, "lr": setting.lr, "seed": setting.seed},
           "configurations": len(configs), "complete": len(configs) == net.space.count_valid(),
           "chance_loss_ln2": math.log(2),
           "loss": _stats(e), "loss_span": float(e.max() - e.min()),
           "exhaustive_optimum": {"config": configs[best], "w": float(w[best]), "loss": float(e[best])},
           "ose": picks, "seconds_per_brief_training": _stats([table[net.space.key(c)]["seconds"] for c in configs]),
           "table": [{"config": configs[r], "params": int(p[r]), "ops": float(i[r]), "loss": float(e[r]),
                      "w": float(w[r])} for r in order]}
    print(f"ê range {e.min():.4f}..{e.max():.4f} (span {e.max() - e.min():.4f}; ln 2 = {math.log(2):.4f})")
    print(f"exhaustive optimum {configs[best]} W {w[best]:.4f}")
    for eps, pick in picks.items():
        print(f"OSE ε={eps}: {pick['config']} W {pick['w']:.4f} rank {pick['rank']} "
              f"({pick['brief_trainings']} brief trainings)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("probe", "random", "time", "ose"))
    parser.add_argument("--n", type=int, default=None, help="random / time: sub-networks (default 100 / 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20, help="ose: brief fine-tuning steps s")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    parser.add_argument("--cache", default=str(RESULTS / "bench_minilm_ose_cache.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--partial", action="store_true",
                        help="ose: compare on the configurations already in --cache only (complete: false)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.n is None:
        args.n = 20 if args.what == "time" else 100
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    started = time.perf_counter()
    document = {"probe": probe, "random": random_subnets, "time": time_evaluations, "ose": ose}[args.what](args)
    document.update(machine=_machine(), total_wall_s=time.perf_counter() - started,
                    command=f"python tools/bench_minilm.py {' '.join(sys.argv[1:])}")
    _write(args.what + ("_partial" if args.what == "ose" and args.partial else ""), document)


if __name__ == "__main__":
    main()
