"""Benchmark: does a profile made under background load predict as well as one made without it?

    python tools/bench_interference.py --space bert-mini --dir /tmp/interference --held-out 30 \
        --busy-core 1 --json-out tools/results/bench_interference_bert-mini.json
    python tools/bench_interference.py --space mbv3 --dir /tmp/beside --threads 1 --busy-core 1 \
        --load memory --json-out tools/results/bench_interference_mbv3_beside.json

In one run, on this machine:

1. a full profile of ``--space`` into ``DIR/quiet.json`` (no load added by this tool);
2. a full profile into ``DIR/busy.json`` while a background program runs pinned on core
   ``--busy-core`` for its whole length (started before, stopped after): a CPU-bound Python busy
   loop (``--load cpu``) or a memory-bound one, numpy copying 128 MB arrays (``--load memory``);
   with ``--threads 1`` the profiler measures on the first core only, so a program on core 1
   runs *beside* it (sharing caches and memory bandwidth) instead of on its cores; with
   ``--normal-priority-too`` a third one under the busy loop at normal priority
   (``DIR/busy-normal-priority.json``: the profiler without its raised priority, for comparison);
3. ``--held-out`` sub-networks that neither calibration set holds, exported and timed after
   all, with the busy loop stopped, by :func:`hwnas.profiling.profiler.time_models` (the truth is
   the median of each model's clean rounds, measured like a calibration sub-network);
4. the profiles' predictors scored against the *same* measurements: share within ±5% / ±10%,
   RMSPE, mean relative error (bias), Spearman ρ; and what each profile said about its own
   noise (``noisy``, touched rounds by reason, interference in cores, reference drift).

``DIR`` must not hold any of the profiles (nothing is resumed). ``--summarize RESULT.json``
prints a saved result's table and comparison again without measuring anything (the comparison:
each loaded profile's predictions for the held-out models as a ratio to the quiet profile's,
median and range). The machine's load average is
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

#: The background programs (``--load``), pinned on the core given as their argument.
LOADS = {
    "cpu": ("python busy loop (while True: pass)",
            "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"),
    "memory": ("python numpy copy loop over two 128 MB float64 arrays (memory-bound)",
               "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nimport numpy as np\n"
               "a = np.ones(16 * 2**20)\nb = np.empty_like(a)\nwhile True:\n    np.copyto(b, a)\n"),
}


def profile(supernet, path: Path, threads: int | None, niceness, policy=None) -> dict:
    """Profile from scratch at ``niceness`` (None: normal priority) with ``policy`` (default: the
    full :class:`~hwnas.profiling.profiler.MeasurePolicy`); the profile's summary and how long it took."""
    from hwnas.profiling.profiler import MeasurePolicy, Profiler

    load = os.getloadavg()
    started = time.perf_counter()
    result = Profiler(supernet, path, threads=threads, policy=policy or MeasurePolicy(), niceness=niceness).run()
    return {"path": str(path), "seconds": round(time.perf_counter() - started, 1), "load_before": load,
            "load_after": os.getloadavg(), "noisy": result.noisy, "noise": result.noise,
            "noise_floor": result.noise_floor, "stats": result.stats, "calibration_choice": None}


def held_out_configs(space, profiles, n: int, seed: int) -> list[dict]:
    """``n`` seeded sub-networks that no calibration set of ``profiles`` holds."""
    seen = {space.key(c["config"]) for p in profiles for c in p.calibration}
    rng = np.random.default_rng(seed)
    held_out, keys = [], set()
    while len(held_out) < n:
        (config,) = space.sample(1, seed=rng)
        if space.key(config) not in seen | keys:
            held_out.append(config)
            keys.add(space.key(config))
    return held_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--dir", type=Path, help="where the profiles are written")
    parser.add_argument("--summarize", type=Path, default=None, metavar="RESULT",
                        help="print a saved --json-out result's table and comparison; measure nothing")
    parser.add_argument("--held-out", type=int, default=30)
    parser.add_argument("--busy-core", type=int, default=1, help="core the busy loop is pinned on")
    parser.add_argument("--load", choices=sorted(LOADS), default="cpu",
                        help="the background program: a CPU-bound or a memory-bound loop")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--normal-priority-too", action="store_true",
                        help="also profile under the busy loop at normal priority (the profiler without "
                             "its raised priority), into DIR/busy-normal-priority.json")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.summarize is not None:
        try:
            saved = json.loads(args.summarize.read_text())
        except (OSError, ValueError) as error:
            parser.error(f"cannot read result {args.summarize}: {error}")
        print_summary(saved)
        return 0
    if args.dir is None:
        parser.error("--dir is required (or --summarize RESULT)")
    cores = sorted(os.sched_getaffinity(0))
    if args.busy_core not in cores:
        parser.error(f"--busy-core {args.busy_core} is not one of this process's cores {cores}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads} must be at least 1")

    from hwnas.profiling.profiler import MEASURE_NICENESS

    runs = [("quiet", False, MEASURE_NICENESS), ("busy", True, MEASURE_NICENESS)]
    if args.normal_priority_too:
        runs.append(("busy-normal-priority", True, None))
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, _, _ in runs:
        if (args.dir / f"{name}.json").exists():
            parser.error(f"{args.dir / f'{name}.json'} exists; the benchmark profiles from scratch")

    import torch

    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile
    from hwnas.profiling.profiler import MeasurePolicy, export_subnet, time_models
    from hwnas.supernets.registry import get_supernet

    torch.set_num_threads(1)
    supernet = get_supernet(args.space)
    summaries = {}
    for name, loaded, niceness in runs:
        at = f"niceness {niceness}" if niceness is not None else "normal priority"
        if not loaded:
            print(f"profiling without added load ({at}) …", file=sys.stderr, flush=True)
            summaries[name] = profile(supernet, args.dir / f"{name}.json", args.threads, niceness)
            continue
        program, code = LOADS[args.load]
        print(f"profiling with a {program} on core {args.busy_core} ({at}) …", file=sys.stderr, flush=True)
        busy_loop = subprocess.Popen([sys.executable, "-c", code, str(args.busy_core)])
        try:
            time.sleep(1.5)  # started (numpy imported, arrays touched) before the profile
            summaries[name] = profile(supernet, args.dir / f"{name}.json", args.threads, niceness)
        finally:
            busy_loop.terminate()
            busy_loop.wait(timeout=10)
        summaries[name]["busy_loop"] = {"core": args.busy_core, "program": program, "load": args.load}
        summaries[name]["niceness_asked"] = niceness

    profiles = {name: load_profile(args.dir / f"{name}.json", space=args.space) for name, _, _ in runs}
    predictors = {name: LatencyPredictor(p, supernet) for name, p in profiles.items()}
    held_out = held_out_configs(supernet.space, profiles.values(), args.held_out, args.seed)
    shape, threads = profiles["quiet"].shape, int(profiles["quiet"].settings["threads"])
    print(f"timing {len(held_out)} held-out sub-networks (busy loop stopped) …", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    # The truth is measured as the profiler measures its calibration sub-networks (time_models:
    # rounds interleaved over all held-out models, a reference, slow spells waited out, touched
    # rounds re-measured, the median of the clean rounds, at the profiler's priority).
    exported = {str(i): export_subnet(supernet, c, shape) for i, c in enumerate(held_out)}
    timings = time_models(exported, ep="cpu", threads=threads, policy=MeasurePolicy(), seed=args.seed)
    y = np.array([timings[str(i)].median_ms for i in range(len(held_out))])
    scores = {name: metrics(np.asarray(p.predict(held_out), dtype=np.float64), y) for name, p in predictors.items()}
    for name, summary in summaries.items():
        summary["calibration_choice"] = predictors[name].choice.name if predictors[name].choice else None
    result = {
        "space": args.space,
        "cpu": profiles["quiet"].device.get("cpu_model"),
        "threads": threads,
        "shape": shape,
        "profiles": summaries,
        "held_out": len(held_out),
        "held_out_ms_range": [float(y.min()), float(y.max())],
        "held_out_load_before": load_before,
        "held_out_load_after": os.getloadavg(),
        "held_out_truth": {"method": "hwnas.profiling.profiler.time_models: median of clean rounds (3 rounds "
                                     "interleaved over the models, a reference, re-measured), as the profiler"},
        "predictors": scores,
        "rows": [{"config": c, "measured_ms": float(m),
                  **{name: float(p.predict([c])[0]) for name, p in predictors.items()}}
                 for c, m in zip(held_out, y)],
    }
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    print_summary(result)
    return 0


def predictions_vs_quiet(result: dict) -> dict[str, dict[str, float]]:
    """Each loaded profile's predictions for the held-out models as a ratio to the quiet
    profile's: median, min and max over the models."""
    out = {}
    for name in result["profiles"]:
        if name == "quiet":
            continue
        ratios = np.array([row[name] / row["quiet"] for row in result["rows"]])
        out[name] = {"median": float(np.median(ratios)), "min": float(ratios.min()), "max": float(ratios.max())}
    return out


def print_summary(result: dict) -> None:
    """The markdown table and the predictions' ratio to the quiet profile's."""
    print(markdown_table(result))
    for name, r in predictions_vs_quiet(result).items():
        print(f"{name}: predictions / quiet profile's, over the held-out models: median {r['median']:.3f} "
              f"(range {r['min']:.3f}-{r['max']:.3f})")


def markdown_table(result: dict) -> str:
    rows = ["| profile | made in | marked noisy | touched | others on its cores / beside (median cores) | "
            "within ±5% | within ±10% | RMSPE | mean error | Spearman ρ |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name in result["profiles"]:
        p, m = result["profiles"][name], result["predictors"][name]
        noise = p["noise"] or {}
        touched = ", ".join(f"{n} {why}" for why, n in sorted(noise.get("touched", {}).items())) or "none"
        load = (f"{noise.get('interference_cores', {}).get('median', 0):.2f} / "
                f"{noise.get('beside_cores', {}).get('median', 0):.2f}")
        rows.append(f"| {name} | {p['seconds']:.0f} s | {p['noisy']} | {touched} | {load} | {m['within_5pct']:.0%} | "
                    f"{m['within_10pct']:.0%} | {m['rmspe']:.1%} | {m['mean_rel_err']:+.1%} | {m['spearman']:.3f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
