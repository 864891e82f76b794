#!/usr/bin/env python
"""Train the mbv3-fmnist weight-sharing supernet on Fashion-MNIST and write its checkpoint.

Reproduces the shipped checkpoint (one torch thread; about 20 minutes on this project's 2-core
machine; needs the Fashion-MNIST IDX files, e.g. ``apt-get install dataset-fashion-mnist``)::

    python tools/train_mbv3.py --seed 0 --out hwnas/data/mbv3-fmnist.pt

Training: the sandwich rule (each step the largest, the smallest and ``--n-random`` random
sub-networks on one batch, gradients accumulated, one AdamW step; in-place distillation from the
largest with weight ``--distill``), :func:`hwnas.evaluation.training.train_supernet`. Then it
reports the validation and test accuracy (weight sharing, BN recalibrated per sub-network) of
the largest, the smallest and ``--samples`` random sub-networks and the time one validation
evaluation takes; writes the checkpoint and a JSON summary beside it (``mbv3-fmnist.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.evaluation.accuracy import WeightSharingEvaluator  # noqa: E402
from hwnas.errors import InputError  # noqa: E402
from hwnas.evaluation.training import (  # noqa: E402
    SubspaceSampler,
    TrainingSettings,
    largest_config,
    smallest_config,
    train_supernet,
)
from hwnas.supernets.checkpoint import save_checkpoint  # noqa: E402
from hwnas.supernets.mbv3 import make_mbv3_supernet  # noqa: E402

SPACE = "mbv3-fmnist"


def _parse_phase(text: str, base: TrainingSettings) -> TrainingSettings:
    """``ELASTIC:STEPS[:LR]`` (see ``--phase``) as the settings of one training phase."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        steps = int(parts[1])
        lr = float(parts[2]) if len(parts) == 3 else base.lr
    except ValueError:
        raise ValueError(f"--phase {text!r} is not ELASTIC:STEPS[:LR] (e.g. 'ks,d:500:2e-3')") from None
    elastic = parts[0].strip()
    if elastic == "largest":
        return replace(base, steps=steps, lr=lr, largest_only=True, n_random=0)
    return replace(base, steps=steps, lr=lr, elastic=() if elastic == "all" else tuple(elastic.split(",")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights, batches and sampled sub-networks")
    parser.add_argument("--out", type=Path, default=Path("hwnas/data/mbv3-fmnist.pt"), help="checkpoint to write")
    parser.add_argument("--full-steps", type=int, default=0,
                        help="first phase: steps training the largest sub-network alone (OFA's progressive "
                             "shrinking starts so), with its own warm-up and decay; 0: none")
    parser.add_argument("--full-lr", type=float, default=None, help="peak learning rate of that phase (default --lr)")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps (batches) of the sandwich phase")
    parser.add_argument("--phase", action="append", default=[], metavar="ELASTIC:STEPS[:LR]",
                        help="progressive shrinking (OFA): run these phases in order instead of --full-steps/--steps; "
                             "ELASTIC is 'largest' (the largest alone), 'all' (the sandwich over the whole space) or "
                             "the dimensions that vary, comma-separated (e.g. 'ks', then 'ks,d'), the others held at "
                             "their largest; each phase has its own warm-up and decay; LR defaults to --lr")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--n-random", type=int, default=2, help="random sub-networks per step")
    parser.add_argument("--distill", type=float, default=0.5,
                        help="weight of the largest sub-network's soft labels for the others (0..1)")
    parser.add_argument("--samples", type=int, default=20, help="random sub-networks to report")
    parser.add_argument("--data", default=None, help="Fashion-MNIST directory (default: $HWNAS_FASHION_MNIST, "
                        "then /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible and shares the CPU)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    settings = TrainingSettings(steps=args.steps, batch=args.batch, lr=args.lr, weight_decay=args.weight_decay,
                                warmup=0.03, n_random=args.n_random, distill=args.distill, seed=args.seed)
    try:
        plan = [_parse_phase(text, settings) for text in args.phase]
    except ValueError as error:
        parser.error(str(error))
    supernet = make_mbv3_supernet(SPACE, seed=args.seed, checkpoint=None, data_dir=args.data)
    task = supernet.task()
    for phase in plan:
        try:
            SubspaceSampler(supernet.space, phase.elastic)
        except InputError as error:
            parser.error(str(error))
    if not plan:  # --full-steps (the largest alone) then --steps of the sandwich
        full = replace(settings, steps=args.full_steps, largest_only=True, n_random=0,
                       lr=args.full_lr if args.full_lr is not None else args.lr)
        plan = ([full] if args.full_steps else []) + [settings]
    print(f"training {SPACE} on {task.name} ({len(task.train)} train images)", flush=True)
    phases = []
    for i, phase in enumerate(plan):
        print(f"phase {i + 1}/{len(plan)}: {phase}", flush=True)
        phases.append(train_supernet(supernet, task, phase, log=lambda line: print(line, flush=True)))
    stats = dict(phases[-1])
    for key in ("wall_s", "cpu_s", "epochs"):
        stats[key] = sum(p[key] for p in phases)
    supernet.clear_bn_statistics()
    print(f"trained in {stats['wall_s']:.0f} s wall, {stats['cpu_s']:.0f} s CPU ({stats['epochs']:.2f} epochs)", flush=True)

    evaluator = WeightSharingEvaluator(supernet, task)
    evaluator.data("validation")
    space = supernet.space
    named = [("largest", largest_config(space)), ("smallest", smallest_config(space))]
    named += [(f"sample{i}", c) for i, c in enumerate(space.sample(args.samples, seed=1000 + args.seed, unique=True))]
    accuracies, eval_s = {}, []
    for name, config in named:
        started = time.perf_counter()
        v = float(evaluator.evaluate([config])[0])  # BN recalibration + validation
        eval_s.append(time.perf_counter() - started)
        t = float(evaluator.test_accuracy([config])[0])
        accuracies[name] = {"config": config, "validation": round(v, 4), "test": round(t, 4),
                            "params": supernet.count_params(config),
                            "macs": supernet.count_macs(config, supernet.default_shape),
                            "eval_s": round(eval_s[-1], 3)}
        print(f"{name:9s} validation {v:.4f}  test {t:.4f}  params {supernet.count_params(config):>8,d}  "
              f"MACs {accuracies[name]['macs']:>10,d}  eval {eval_s[-1]:.2f} s", flush=True)
    samples = [a for n, a in accuracies.items() if n.startswith("sample")]
    summary_acc = {
        "largest_test": accuracies["largest"]["test"], "smallest_test": accuracies["smallest"]["test"],
        "samples_test_min": min(a["test"] for a in samples) if samples else None,
        "samples_test_max": max(a["test"] for a in samples) if samples else None,
        "samples_test_mean": round(float(np.mean([a["test"] for a in samples])), 4) if samples else None,
        "eval_s_mean": round(float(np.mean(eval_s)), 3), "eval_s_max": round(float(np.max(eval_s)), 3),
    }
    print(json.dumps(summary_acc), flush=True)

    meta = {
        "seed": args.seed,
        "steps": settings.steps,
        "settings": stats["settings"],
        "phases": [p["settings"] for p in phases],
        "task": {"name": task.name, "seed": task.seed, "train": len(task.train),
                 "validation": len(task.validation), "test": len(task.test)},
        "accuracies": accuracies,
        "summary": summary_acc,
        "train_wall_s": round(stats["wall_s"], 1),
        "train_cpu_s": round(stats["cpu_s"], 1),
        "epochs": round(stats["epochs"], 3),
        "train_loss_largest": round(stats["train_loss_largest"], 4),
        "train_loss_smallest": round(stats["train_loss_smallest"], 4),
        "torch_threads": stats["torch_threads"],
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
        "command": "python tools/train_mbv3.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    path = save_checkpoint(args.out, SPACE, supernet.module().state_dict(), meta)
    summary = path.with_suffix(".json")
    summary.write_text(json.dumps({"checkpoint": path.name, "space": SPACE, **meta}, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
