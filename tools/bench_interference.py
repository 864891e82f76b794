"""Benchmark: does a profile made under background load predict as well as one made without it?

    python tools/bench_interference.py --space bert-mini --dir /tmp/interference --held-out 30 \
        --busy-core 1 --json-out tools/results/bench_interference_bert-mini.json

In one run, on this machine:

1. a full profile of ``--space`` into ``DIR/quiet.json`` (no load added by this tool);
2. a full profile into ``DIR/busy.json`` while a CPU-bound Python busy loop runs pinned on core
   ``--busy-core`` for its whole length (started before, stopped after);
3. ``--held-out`` sub-networks that neither calibration set holds, exported and timed after
   both, with the busy loop stopped, by the profiler's runner, policy and rounds (the truth is
   the median of each model's clean rounds, measured like a calibration sub-network);
4. both profiles' predictors scored against the *same* measurements: share within ±5% / ±10%,
   RMSPE, mean relative error (bias), Spearman ρ; and what each profile said about its own
   noise (``noisy``, touched rounds by reason, interference in cores, reference drift).

``DIR`` must not hold either profile (nothing is resumed). The machine's load average is
recorded before and after each step: other programs move every number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency import metrics  # noqa: E402

BUSY_LOOP = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def profile(supernet, path: Path, threads: int | None) -> dict:
    """Profile from scratch; the profile's summary and how long it took."""
    from hwnas.profiling.profiler import MeasurePolicy, Profiler

    load = os.getloadavg()
    started = time.perf_counter()
    result = Profiler(supernet, path, threads=threads, policy=MeasurePolicy()).run()
    return {"path": str(path), "seconds": round(time.perf_counter() - started, 1), "load_before": load,
            "load_after": os.getloadavg(), "noisy": result.noisy, "noise": result.noise,
            "noise_floor": result.noise_floor, "calibration_choice": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--dir", required=True, type=Path, help="where the two profiles are written")
    parser.add_argument("--held-out", type=int, default=30)
    parser.add_argument("--busy-core", type=int, default=1, help="core the busy loop is pinned on")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    quiet_path, busy_path = args.dir / "quiet.json", args.dir / "busy.json"
    for path in (quiet_path, busy_path):
        if path.exists():
            parser.error(f"{path} exists; the benchmark profiles from scratch")

    import torch

    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile
    from hwnas.profiling.profiler import CpuMeter, MeasurePolicy, export_subnet
    from hwnas.profiling.rounds import Sample, Scheduler, estimate, noise_report
    from hwnas.profiling.timing import make_session, pin_threads
    from hwnas.supernets.registry import get_supernet

    torch.set_num_threads(1)
    supernet = get_supernet(args.space)
    print("profiling without added load …", file=sys.stderr, flush=True)
    quiet = profile(supernet, quiet_path, args.threads)
    print(f"profiling with a busy loop on core {args.busy_core} …", file=sys.stderr, flush=True)
    busy_loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(args.busy_core)])
    try:
        time.sleep(1.0)
        busy = profile(supernet, busy_path, args.threads)
    finally:
        busy_loop.terminate()
        busy_loop.wait(timeout=10)
    busy["busy_loop"] = {"core": args.busy_core, "program": "python busy loop (while True: pass)"}

    profiles = {"quiet": load_profile(quiet_path, space=args.space), "busy": load_profile(busy_path, space=args.space)}
    predictors = {name: LatencyPredictor(p, supernet) for name, p in profiles.items()}
    space = supernet.space
    seen = {space.key(c["config"]) for p in profiles.values() for c in p.calibration}
    rng = np.random.default_rng(args.seed)
    held_out, keys = [], set()
    while len(held_out) < args.held_out:
        (config,) = space.sample(1, seed=rng)
        if space.key(config) not in seen | keys:
            held_out.append(config)
            keys.add(space.key(config))
    shape, threads = profiles["quiet"].shape, int(profiles["quiet"].settings["threads"])
    policy = MeasurePolicy()
    print(f"timing {len(held_out)} held-out sub-networks (busy loop stopped) …", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    # The truth is measured as the profiler measures: rounds over all held-out models in shuffled
    # orders, touched rounds re-measured, the median of the clean rounds (or of the least
    # disturbed ones when the machine never let up) - the same rules, so other people's load
    # on this shared machine moves the truth as little as it can.
    exported = {str(i): export_subnet(supernet, c, shape) for i, c in enumerate(held_out)}
    meter = CpuMeter(pin_threads(threads))

    def timer(item: str) -> Sample:  # one round: a new session, as the profiler's rounds
        session = make_session(exported[item][0], "cpu", threads)
        meter.mark()
        timing = policy.time_round(session, exported[item][1], policy.calibration_min_seconds)
        return Sample(timing.median_ms, meter.others())

    rounds_policy = policy.rounds_policy()
    state = Scheduler(list(exported), [], timer, rounds_policy, seed=args.seed, probe=meter.probe).run()
    estimates = [estimate(state["samples"][str(i)], rounds_policy) for i in range(len(held_out))]
    y = np.array([e.median_ms for e in estimates])
    truth_noise = noise_report(state, list(exported), rounds_policy)
    scores = {name: metrics(np.asarray(p.predict(held_out), dtype=np.float64), y) for name, p in predictors.items()}
    for name, summary in (("quiet", quiet), ("busy", busy)):
        summary["calibration_choice"] = predictors[name].choice.name if predictors[name].choice else None
    result = {
        "space": args.space,
        "cpu": profiles["quiet"].device.get("cpu_model"),
        "threads": threads,
        "shape": shape,
        "profiles": {"quiet": quiet, "busy": busy},
        "held_out": len(held_out),
        "held_out_ms_range": [float(y.min()), float(y.max())],
        "held_out_load_before": load_before,
        "held_out_load_after": os.getloadavg(),
        "held_out_truth": {"method": "median of clean rounds (3 rounds, shuffled, re-measured), as the profiler",
                           "noise": truth_noise},
        "predictors": scores,
        "rows": [{"config": c, "measured_ms": float(m),
                  **{name: float(p.predict([c])[0]) for name, p in predictors.items()}}
                 for c, m in zip(held_out, y)],
    }
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    print(markdown_table(result))
    return 0


def markdown_table(result: dict) -> str:
    rows = ["| profile | made in | marked noisy | within ±5% | within ±10% | RMSPE | mean error | Spearman ρ |",
            "|---|---|---|---|---|---|---|---|"]
    for name in ("quiet", "busy"):
        p, m = result["profiles"][name], result["predictors"][name]
        rows.append(f"| {name} | {p['seconds']:.0f} s | {p['noisy']} | {m['within_5pct']:.0%} | "
                    f"{m['within_10pct']:.0%} | {m['rmspe']:.1%} | {m['mean_rel_err']:+.1%} | {m['spearman']:.3f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
