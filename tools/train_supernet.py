#!/usr/bin/env python
"""Train the bert-mini weight-sharing supernet on the built-in task and write its checkpoint.

Reproduces the shipped checkpoint (one torch thread, a few minutes on a CPU)::

    python tools/train_supernet.py --seed 0 --out hwnas/data/bert-mini.pt

Prints progress, then the validation and test accuracy (weight sharing) of the largest, the
smallest and a few sampled sub-networks; writes the checkpoint and a JSON summary beside it
(``bert-mini.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.evaluation.accuracy import WeightSharingEvaluator
from hwnas.evaluation.training import (
    TrainingSettings,
    largest_config,
    smallest_config,
    train_supernet,
)
from hwnas.supernets.bert import make_bert_supernet
from hwnas.supernets.checkpoint import save_checkpoint

SPACE = "bert-mini"


def main(argv: list[str] | None = None) -> int:
    defaults = TrainingSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights, batches and sampled sub-networks")
    parser.add_argument("--out", type=Path, default=Path("hwnas/data/bert-mini.pt"), help="checkpoint to write")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps (batches)")
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (AdamW)")
    parser.add_argument("--n-random", type=int, default=defaults.n_random, help="random sub-networks per step")
    parser.add_argument("--distill", type=float, default=defaults.distill,
                        help="weight of the largest sub-network's soft labels for the others (0..1)")
    parser.add_argument("--samples", type=int, default=5, help="sampled sub-networks to report")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible and shares the CPU)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    settings = TrainingSettings(steps=args.steps, batch=args.batch, lr=args.lr, n_random=args.n_random,
                                distill=args.distill, seed=args.seed)
    supernet = make_bert_supernet(SPACE, seed=args.seed, checkpoint=None)
    task = supernet.task()
    print(f"training {SPACE} on {task.name} ({len(task.train)} train examples), {settings}", flush=True)
    stats = train_supernet(supernet, task, settings, log=lambda line: print(line, flush=True))
    print(f"trained in {stats['wall_s']:.0f} s wall, {stats['cpu_s']:.0f} s CPU ({stats['epochs']:.2f} epochs)", flush=True)

    evaluator = WeightSharingEvaluator(supernet, task)
    space = supernet.space
    named = [("largest", largest_config(space)), ("smallest", smallest_config(space))]
    named += [(f"sample{i}", c) for i, c in enumerate(space.sample(args.samples, seed=1000 + args.seed, unique=True))]
    configs = [c for _, c in named]
    started = time.perf_counter()
    val = evaluator.evaluate(configs)
    eval_s = (time.perf_counter() - started) / len(configs)
    test = evaluator.test_accuracy(configs)
    accuracies = {}
    for (name, config), v, t in zip(named, val, test):
        accuracies[name] = {"config": config, "validation": round(float(v), 4), "test": round(float(t), 4),
                            "params": supernet.count_params(config)}
        print(f"{name:9s} validation {v:.4f}  test {t:.4f}  params {supernet.count_params(config):>9,d}  "
              f"{json.dumps(config)}", flush=True)
    print(f"weight-sharing evaluation: {eval_s:.2f} s per sub-network (validation, {len(task.validation)} examples)")

    meta = {
        "seed": args.seed,
        "steps": settings.steps,
        "settings": stats["settings"],
        "task": {"name": task.name, "seed": task.seed, "train": len(task.train),
                 "validation": len(task.validation), "test": len(task.test)},
        "accuracies": accuracies,
        "train_wall_s": round(stats["wall_s"], 1),
        "train_cpu_s": round(stats["cpu_s"], 1),
        "epochs": round(stats["epochs"], 3),
        "train_loss_largest": round(stats["train_loss_largest"], 4),
        "train_loss_smallest": round(stats["train_loss_smallest"], 4),
        "torch_threads": stats["torch_threads"],
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
        "command": "python tools/train_supernet.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    path = save_checkpoint(args.out, SPACE, supernet.module().state_dict(), meta)
    summary = path.with_suffix(".json")
    summary.write_text(json.dumps({"checkpoint": path.name, "space": SPACE, **meta}, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
