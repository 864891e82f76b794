#!/usr/bin/env python
"""Benchmark: how one machine's speed moves under ONNX Runtime, the facts behind the profiler's rules.

    python tools/bench_session_noise.py spells --seconds 10 --threads 1
    python tools/bench_session_noise.py warmup --sessions 8
    python tools/bench_session_noise.py rounds --threads 2 --sessions 8
    python tools/bench_session_noise.py priority --space bert-ose --block layer/H=768/A=12/dh=64/I=3072 --threads 2 --sessions 6
    python tools/bench_session_noise.py neighbour --space bert-ose --block layer/H=768/A=12/dh=64/I=3072 --sessions 6

* ``spells``: one bert-mini block (``--block``) in ONE session, timed for ``--seconds``; prints
  the median of each 0.25 s window (µs). A machine whose host slows it in spells shows two
  levels over time with nothing else running (this is what the profiler's references and
  waiting are for).
* ``warmup``: ``--sessions`` new sessions of the block, each timed for 0.033 s after 2 warm-up
  runs, after 50, and after 2 with 0.33 s of timing; prints the session medians (µs) and their
  spread (max - min) / median (why warm-up is timed).
* ``rounds``: ``--sessions`` new sessions of ``embed/H=128`` (a ~30 µs block) at ``--threads``,
  each one profiler round long; prints the session medians (µs) (why the anchors are typical
  levels, not the fastest round).
* ``first-runs``: the largest sub-network of ``--space`` (default shape) in ``--sessions`` new
  sessions at ``--threads``; prints each session's first 10 runs (ms) (why the warm-up of a
  long model is capped at 2 runs: ``python tools/bench_session_noise.py first-runs --space
  bert-ose --threads 2 --sessions 4``).

* ``neighbour``: the block of ``--space`` at ``--threads`` pinned on the first cores, while the
  next core runs nothing, a CPU-bound Python loop, or a memory-bound loop (numpy copying 128 MB
  arrays, far beyond the caches), at normal priority; ``--sessions`` cycles, each a new session
  per condition in a shuffled order; prints each condition's session medians and its median
  ratio to the quiet session of the same cycle (what a program on a core *beside* the
  profiler's costs it: the caches and memory bandwidth they share, which neither raised
  priority nor the profiler's CPU meter, counting only its own cores, keeps away).

Run it on a quiet machine; it prints, it writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hwnas.onnx_export import export_onnx_bytes  # noqa: E402
from hwnas.profiling.timing import make_session, time_session  # noqa: E402
from hwnas.supernets.registry import get_supernet  # noqa: E402

from bench_interference import LOADS  # noqa: E402  (the background programs, one definition)


def _block(key: str, space: str = "bert-mini"):
    net = get_supernet(space)
    block = net.build_block(key, net.default_shape)
    model = export_onnx_bytes(block.module, block.feeds, block.output_names, dynamic_axes=block.dynamic_axes)
    return model, block.feeds


def _us(values) -> str:
    return " ".join(f"{v * 1000:.0f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("spells", "warmup", "rounds", "priority", "first-runs", "neighbour"))
    parser.add_argument("--space", default="bert-mini", help="space of --block (priority) or of the sub-network (first-runs)")
    parser.add_argument("--block", default="layer/H=128/A=2/dh=32/I=128")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=8)
    args = parser.parse_args(argv)

    if args.what == "spells":
        model, feeds = _block(args.block)
        session = make_session(model, "cpu", args.threads)
        windows, end = [], time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            runs, start = [], time.perf_counter()
            while time.perf_counter() - start < 0.25:
                t0 = time.perf_counter()
                session.run(None, feeds)
                runs.append(time.perf_counter() - t0)
            windows.append(float(np.median(runs)) * 1000)  # ms
        print(f"{args.block}, {args.threads} thread(s), medians of 0.25 s windows (µs): {_us(windows)}")
    elif args.what == "warmup":
        model, feeds = _block(args.block)
        for warmup, seconds in ((2, 0.033), (50, 0.033), (2, 0.33)):
            medians = np.array([time_session(make_session(model, "cpu", args.threads), feeds, warmup=warmup,
                                             repeats=4, min_seconds=seconds).median_ms
                                for _ in range(args.sessions)])
            spread = (medians.max() - medians.min()) / np.median(medians)
            print(f"warm-up {warmup:2d} runs, {seconds} s timed: {_us(medians)}  spread {spread:.0%}")
    elif args.what == "priority":
        return _priority(args)
    elif args.what == "first-runs":
        _first_runs(args)
    elif args.what == "neighbour":
        return _neighbour(args)
    else:
        model, feeds = _block("embed/H=128")
        medians = [time_session(make_session(model, "cpu", args.threads), feeds, warmup=2, warmup_seconds=0.05,
                                repeats=4, min_seconds=0.1).median_ms for _ in range(args.sessions)]
        print(f"embed/H=128, {args.threads} thread(s), session medians (µs): {_us(medians)}")
    return 0


def _first_runs(args) -> None:
    from hwnas.evaluation.training import largest_config
    from hwnas.profiling.profiler import export_subnet

    net = get_supernet(args.space)
    model, feeds = export_subnet(net, largest_config(net.space), net.default_shape)
    print(f"{args.space} largest sub-network, {args.threads} thread(s), the first 10 runs of each new session (ms):")
    for _ in range(args.sessions):
        session = make_session(model, "cpu", args.threads)
        runs = []
        for _ in range(10):
            t0 = time.perf_counter()
            session.run(None, feeds)
            runs.append((time.perf_counter() - t0) * 1000)
        print("  " + " ".join(f"{r:.1f}" for r in runs), flush=True)


def _priority(args) -> int:
    import os
    import subprocess

    from hwnas.profiling.timing import pin_threads, raised_priority

    model, feeds = _block(args.block, args.space)
    cores = pin_threads(args.threads) or [0]

    def sessions(label: str) -> float:
        medians = [time_session(make_session(model, "cpu", args.threads), feeds, warmup=5, warmup_seconds=0.05,
                                repeats=7, min_seconds=0.33).median_ms for _ in range(args.sessions)]
        print(f"{label:34s} session medians (ms): {' '.join(f'{m:.3f}' for m in medians)}  "
              f"median {np.median(medians):.3f}", flush=True)
        return float(np.median(medians))

    def busy_loop() -> subprocess.Popen:
        loop = subprocess.Popen([sys.executable, "-c", LOADS["cpu"][1], str(cores[-1])])
        time.sleep(0.5)
        return loop

    print(f"{args.space} {args.block}, {args.threads} thread(s) on cores {cores}, load {os.getloadavg()[0]:.2f}")
    quiet = sessions("quiet, niceness 0")
    loop = busy_loop()
    try:
        loaded = sessions(f"busy loop on core {cores[-1]}, niceness 0")
        with raised_priority(-20) as granted:
            if granted is None:
                print("niceness -20 not permitted here (needs root or CAP_SYS_NICE)")
                return 1
            raised = sessions(f"busy loop on core {cores[-1]}, niceness -20")
    finally:
        loop.terminate()
        loop.wait()
    time.sleep(0.5)
    with raised_priority(-20):
        quiet_raised = sessions("quiet, niceness -20")
    print(f"busy/quiet at niceness 0: {loaded / quiet:.2f}x; at -20: {raised / quiet:.2f}x "
          f"(vs quiet at -20: {raised / quiet_raised:.2f}x)")
    return 0


#: The neighbours, by label: the background programs of ``bench_interference.py --load``.
NEIGHBOURS = {"cpu loop": "cpu", "memory loop": "memory"}


def _neighbour(args) -> int:
    import os
    import subprocess

    from hwnas.profiling.timing import pinned

    model, feeds = _block(args.block, args.space)
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) <= args.threads:
        print(f"needs more than --threads {args.threads} cores; this process may use {len(allowed)}")
        return 2
    beside = allowed[args.threads]
    rng = np.random.default_rng(0)
    medians: dict[str, list[float]] = {"quiet": [], **{name: [] for name in NEIGHBOURS}}
    with pinned(args.threads) as cores:
        print(f"{args.space} {args.block}, {args.threads} thread(s) on cores {cores}, neighbour on core {beside}, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        for _ in range(args.sessions):
            for name in rng.permutation(list(medians)):
                loop = None
                if name != "quiet":
                    _, code = LOADS[NEIGHBOURS[name]]
                    loop = subprocess.Popen([sys.executable, "-c", code, str(beside)])
                    time.sleep(1.0)  # numpy's import and the arrays' first touch
                try:
                    medians[name].append(time_session(make_session(model, "cpu", args.threads), feeds, warmup=5,
                                                      warmup_seconds=0.05, repeats=9, min_seconds=0.5).median_ms)
                finally:
                    if loop is not None:
                        loop.terminate()
                        loop.wait()
    for name, values in medians.items():
        ratios = np.array(values) / np.array(medians["quiet"])
        print(f"{name:12s} session medians (ms): {' '.join(f'{v:.3f}' for v in values)}  "
              f"ratio to the cycle's quiet session: median {np.median(ratios):.3f} "
              f"(range {ratios.min():.3f}-{ratios.max():.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
