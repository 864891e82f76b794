#!/usr/bin/env python
"""Benchmark: how one machine's speed moves under ONNX Runtime, the facts behind the profiler's rules.

    python tools/bench_session_noise.py spells --seconds 10 --threads 1
    python tools/bench_session_noise.py warmup --sessions 8
    python tools/bench_session_noise.py rounds --threads 2 --sessions 8

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

Run it on a quiet machine; it prints, it writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.onnx_export import export_onnx_bytes  # noqa: E402
from hwnas.profiling.timing import make_session, time_session  # noqa: E402
from hwnas.supernets.registry import get_supernet  # noqa: E402


def _block(key: str):
    net = get_supernet("bert-mini")
    block = net.build_block(key, net.default_shape)
    model = export_onnx_bytes(block.module, block.feeds, block.output_names, dynamic_axes=block.dynamic_axes)
    return model, block.feeds


def _us(values) -> str:
    return " ".join(f"{v * 1000:.0f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("spells", "warmup", "rounds"))
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
    else:
        model, feeds = _block("embed/H=128")
        medians = [time_session(make_session(model, "cpu", args.threads), feeds, warmup=2, warmup_seconds=0.05,
                                repeats=4, min_seconds=0.1).median_ms for _ in range(args.sessions)]
        print(f"embed/H=128, {args.threads} thread(s), session medians (µs): {_us(medians)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
