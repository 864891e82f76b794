#!/usr/bin/env python
"""Probe a candidate ``mbv3-fmnist`` layout: cost per training step, evaluation time and the
accuracy its largest sub-network reaches trained alone — the numbers that decide whether another
layout could meet issue 12's targets (largest ≥ 90% test with a ≤ 30-minute supernet training;
one evaluation ≤ 2 s) before spending a full supernet training on it.

The layout is the shipped one (:data:`hwnas.supernets.mbv3.LAYOUTS`) with the given fields
replaced; the 45 genes are unchanged. For example, keeping 14×14 maps through stage 1 and
7×7 through stage 2 (stem stride 1)::

    python tools/probe_mbv3_layout.py --stem-stride 1 --strides 2,2,2,1,1 --steps 1500 --json-out R.json

Reports, for the largest and smallest sub-networks: parameters and MACs; the median time of one
training step of the largest (forward + backward, batch 128, 10 steps, ``--threads`` torch
threads); one evaluation (BN recalibration on 500 images + the 5,000 validation images, batches of
250, 2 torch threads; the median of 3). With ``--steps N``: trains the largest alone for N steps (AdamW, peak lr
3e-3, 3% warm-up, linear decay, batch 128, seed 0: ``TrainingSettings(largest_only=True)``, as
``tools/train_mbv3.py --full-steps``) and reports its validation and test accuracy. Nothing is
written but ``--json-out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.evaluation.accuracy import WeightSharingEvaluator, split_accuracy  # noqa: E402
from hwnas.evaluation.training import TrainingSettings, largest_config, smallest_config, train_supernet  # noqa: E402
from hwnas.supernets.mbv3.supernet import LAYOUTS, SPACES, STAGES, Layout, OFAMobileNetV3  # noqa: E402

SPACE = "mbv3-fmnist"


def _checked(name: str, values: tuple[int, ...], choices: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """``values`` if each is a positive integer (and one of ``choices``); else a ValueError naming the bad one."""
    for v in values:
        if v < 1 or (choices is not None and v not in choices):
            raise ValueError(f"{name}: bad value {v}" + (f" (allowed: {', '.join(map(str, choices))})" if choices else ""))
    return values


def _stage_ints(text: str, name: str, choices: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """A comma-separated list of one integer per stage."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a comma-separated list of integers") from None
    if len(values) != STAGES:
        raise ValueError(f"{name} {text!r} has {len(values)} values, expected {STAGES} (one per stage)")
    return _checked(name, values, choices)


def candidate_layout(args: argparse.Namespace) -> Layout:
    """The shipped ``mbv3-fmnist`` layout with the fields given on the command line replaced."""
    changes: dict = {}
    for field, name, choices in (("stem", "--stem", None), ("stem_stride", "--stem-stride", (1, 2)),
                                 ("final_expand", "--final-expand", None), ("feature_mix", "--feature-mix", None)):
        value = getattr(args, field)
        if value is not None:
            changes[field] = _checked(name, (value,), choices)[0]
    if args.widths is not None:
        changes["widths"] = _stage_ints(args.widths, "--widths")
    if args.strides is not None:
        changes["strides"] = _stage_ints(args.strides, "--strides", (1, 2))
    return replace(LAYOUTS[SPACE], **changes)


def step_seconds(supernet: OFAMobileNetV3, steps: int = 10, batch: int = 128) -> float:
    """Median seconds of one forward + backward pass of the largest sub-network (train mode)."""
    net, config = supernet.module(), largest_config(supernet.space)
    net.train()
    images = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        supernet.forward((images,), config).sum().backward()
        times.append(time.perf_counter() - started)
    net.zero_grad(set_to_none=True)
    net.eval()
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stem", type=int, help="stem and first-block width (shipped: 8)")
    parser.add_argument("--stem-stride", type=int, help="1 or 2 (shipped: 2)")
    parser.add_argument("--widths", help="5 stage widths, comma-separated (shipped: 8,16,24,32,40)")
    parser.add_argument("--strides", help="5 stage strides, each 1 or 2 (shipped: 2,2,1,1,1)")
    parser.add_argument("--final-expand", type=int, help="shipped: 160")
    parser.add_argument("--feature-mix", type=int, help="shipped: 256")
    parser.add_argument("--steps", type=int, default=0, help="train the largest alone for this many steps (0: costs only)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the step timing and the training")
    parser.add_argument("--data", default=None, help="Fashion-MNIST directory (default: $HWNAS_FASHION_MNIST, then the Debian location)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        layout = candidate_layout(args)
    except ValueError as error:
        parser.error(str(error))
    if args.steps < 0:
        parser.error(f"--steps {args.steps} is negative")

    torch.set_num_threads(args.threads)
    supernet = OFAMobileNetV3(SPACES[SPACE], layout, seed=0, checkpoint=None, data_dir=args.data)
    shape = supernet.resolve_shape()
    big, small = largest_config(supernet.space), smallest_config(supernet.space)
    result: dict = {
        "layout": asdict(layout), "map_sizes": supernet.sizes(layout.resolution),
        "largest": {"params": supernet.count_params(big), "macs": supernet.count_macs(big, shape)},
        "smallest": {"params": supernet.count_params(small), "macs": supernet.count_macs(small, shape)},
        "train_step_s": round(step_seconds(supernet), 4), "threads": args.threads,
    }
    print(f"maps {result['map_sizes']}; largest {result['largest']['macs']:,d} MACs; "
          f"one training step of the largest {result['train_step_s']:.3f} s ({args.threads} thread(s))", flush=True)
    task = supernet.task()
    if args.steps:
        settings = TrainingSettings(steps=args.steps, batch=128, lr=3e-3, weight_decay=0.01, warmup=0.03,
                                    n_random=0, seed=0, largest_only=True)
        stats = train_supernet(supernet, task, settings, log=lambda line: print(line, flush=True), log_every=250)
        supernet.clear_bn_statistics()
        result["training"] = {"steps": args.steps, "epochs": round(stats["epochs"], 3),
                              "wall_s": round(stats["wall_s"], 1), "train_loss": round(stats["train_loss_largest"], 4)}
    torch.set_num_threads(2)
    evaluator = WeightSharingEvaluator(supernet, task, batch=250)
    validation_batches = evaluator.data("validation")
    for name, config in (("largest", big), ("smallest", small)):
        times = []
        for _ in range(3):  # the median of 3 (the first also warms the process up)
            supernet.clear_bn_statistics()  # each evaluation recalibrates, as a search's does
            started = time.perf_counter()
            validation = split_accuracy(lambda feeds, c=config: supernet.forward(feeds, c), validation_batches)
            times.append(time.perf_counter() - started)
        result[name]["eval_s"] = round(statistics.median(times), 3)
        if args.steps:
            result[name]["validation"] = validation
            result[name]["test"] = float(evaluator.test_accuracy([config])[0])
    result["versions"] = {"torch": str(torch.__version__), "python": platform.python_version()}
    result["command"] = "python tools/probe_mbv3_layout.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps({k: result[k] for k in ("largest", "smallest", "train_step_s") + (("training",) if args.steps else ())}))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
