"""Benchmark: how long a profile takes, and how much of it is spent inside ONNX Runtime runs.

    python tools/bench_profile.py --space bert-ose --out profiles/bert-ose-cpu.json
    python tools/bench_profile.py --space bert-mini --quick --out /tmp/mini-quick.json

Profiles ``--space`` from scratch into ``--out`` (which must not exist, so nothing is resumed)
and prints one JSON document: wall seconds, seconds inside ``InferenceSession.run`` and their
ratio, export and session-creation seconds, counts, the noise floor, and the issue's targets
(full bert-ose ≤ 300 s, quick bert-mini ≤ 60 s, ORT share ≥ 0.5) with whether they were met, whether
the profile came out noisy (and how), and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

TARGET_SECONDS = {("bert-ose", False): 300.0, ("bert-mini", True): 60.0}
TARGET_ORT_SHARE = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--out", required=True, type=Path, help="new profile file (must not exist)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ep", default="cpu", help="execution provider (openvino: run in its environment)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--json-out", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"--out {str(args.out)!r} exists; the benchmark measures a profile from scratch")

    started = time.perf_counter()
    import onnxruntime
    import torch

    from hwnas.profiling.profiler import MeasurePolicy, Profiler
    from hwnas.supernets.registry import get_supernet

    torch.set_num_threads(1)  # export work; ORT sessions get --threads
    supernet = get_supernet(args.space)
    shape = {"batch": args.batch} | ({"seq_len": args.seq_len} if args.seq_len else {})
    policy = MeasurePolicy.quick() if args.quick else MeasurePolicy()
    profiler = Profiler(supernet, args.out, ep=args.ep, threads=args.threads, shape=shape, policy=policy,
                        precision=args.precision)
    load_before = __import__("os").getloadavg()
    setup_seconds = time.perf_counter() - started
    profile = profiler.run(progress=lambda stage, key: print(f"{stage:12s} {key}", file=sys.stderr, flush=True))
    total = time.perf_counter() - started
    stats = profile.stats
    result = {
        "space": args.space,
        "quick": args.quick,
        "profile": str(args.out),
        "machine": {"cpu": profile.device.get("cpu_model"), "physical_cores": profile.device.get("physical_cores"),
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__},
        "ep": profile.ep,
        "precision": profile.precision,
        "load_average_before": load_before,
        "load_average_after": __import__("os").getloadavg(),
        "threads": profile.settings["threads"],
        "shape": profile.settings["shape"],
        "blocks": len(profile.blocks),
        "calibration": len(profile.calibration),
        "process_seconds": round(total, 2),
        "setup_seconds": round(setup_seconds, 2),
        "profile_wall_seconds": stats["wall_seconds"],
        "ort_run_seconds": stats["ort_run_seconds"],
        "export_seconds": stats["export_seconds"],
        "session_seconds": stats["session_seconds"],
        "ort_share": round(stats["ort_run_seconds"] / stats["wall_seconds"], 3),
        "noise_floor_median": profile.noise_floor.get("median_rel_diff"),
        "noise_floor_max": profile.noise_floor.get("max_rel_diff"),
        "noisy": profile.noisy,
        "noise": profile.noise,
        "placement": profile.placement.get("nodes_by_provider"),
        "failures": profile.failures,
    }
    target = TARGET_SECONDS.get((args.space, args.quick))
    result["targets"] = {
        "ort_share>=0.5": result["ort_share"] >= TARGET_ORT_SHARE,
        **({f"process_seconds<={target:.0f}": total <= target} if target else {}),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0 if not profile.failures else 1


if __name__ == "__main__":
    sys.exit(main())
