"""Exported ONNX Runtime latency vs PyTorch eager, FP32 and INT8, on the same sub-networks.

For a seeded sample of configurations of a space (and optionally a second space), each
sub-network is extracted once and run four ways at the same intra-op thread count and input
shape, in one process:

* ``ort_fp32``  — the ONNX model exactly as ``hwnas export`` writes it, on ONNX Runtime's CPU EP
  (the profiler's runner: IOBinding, sequential, ORT_ENABLE_ALL);
* ``ort_int8``  — the same after ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights);
* ``torch_fp32`` — the extracted ``nn.Module`` in eager mode under ``torch.inference_mode``;
* ``torch_int8`` — ``torch.ao.quantization.quantize_dynamic`` on its ``nn.Linear`` layers
  (qint8), when this torch provides it (recorded as unavailable otherwise).

Timing: per round, each variant (in an order rotated every round) gets ``--warmup`` untimed
calls and ``--runs`` timed calls; its round value is the median of those. Over ``--rounds``
rounds we report the median of the round values and their min/max, and the ratios
(torch / ORT, FP32 / INT8) are computed per round — both sides measured back to back in the
same round — and summarised by their median. Never compare these numbers with a run on another
machine; compare the ratios.

    python tools/bench_deploy.py --n 8 --threads 1 --out bench_deploy.json
    python tools/bench_deploy.py --n 2 --rounds 2 --runs 20          # a quick check

Prints a Markdown table on stdout and writes the JSON document to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

import hwnas
from hwnas.onnx_export import export_onnx
from hwnas.deploy.quantize import quantize_int8
from hwnas.profiling.fingerprint import device_fingerprint, device_id
from hwnas.profiling.timing import make_session, pin_threads
from hwnas.supernets.registry import get_supernet

VARIANTS = ("ort_fp32", "ort_int8", "torch_fp32", "torch_int8")


def torch_int8(module: torch.nn.Module) -> tuple[torch.nn.Module | None, str | None]:
    """Dynamic INT8 quantization of the Linear layers, or (None, why) where unavailable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            quantized = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
        return quantized.eval(), None
    except Exception as exc:  # noqa: BLE001 — report and go on without it
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def ort_runner(model: bytes | str, feeds: dict[str, np.ndarray], threads: int) -> Callable[[], None]:
    """One call of an ORT session with inputs and outputs bound once (as the profiler does)."""
    session = make_session(model, "cpu", threads)
    io = session.io_binding()
    values = {k: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), "cpu", 0) for k, v in feeds.items()}
    for name, value in values.items():
        io.bind_ortvalue_input(name, value)
    for out in session.get_outputs():
        io.bind_output(out.name, "cpu")

    def run() -> None:
        session.run_with_iobinding(io)
        io.synchronize_outputs()

    run.keep = (session, io, values)  # type: ignore[attr-defined]
    return run


def torch_runner(module: torch.nn.Module, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())

    def run() -> None:
        with torch.inference_mode():
            module(*args)

    return run


def round_median_ms(run: Callable[[], None], warmup: int, runs: int) -> float:
    """Median (ms) of ``runs`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_config(supernet, config: dict, shape: dict, threads: int, rounds: int, warmup: int, runs: int,
                 workdir: Path) -> dict[str, Any]:
    """All four variants of one configuration; per-round medians, summaries and ratios."""
    module = supernet.extract(config).eval()
    feeds = supernet.example_inputs(shape)
    fp32 = export_onnx(module, feeds, supernet.output_names, dynamic_axes=supernet.dynamic_axes)
    fp32_path = workdir / "model.onnx"
    int8_path = workdir / "model.int8.onnx"
    fp32_path.write_bytes(fp32.SerializeToString())
    quantize_int8(fp32_path, int8_path, {"hwnas.variant": "int8-dynamic"})
    q_module, q_error = torch_int8(module)
    runners = {
        "ort_fp32": ort_runner(str(fp32_path), feeds, threads),
        "ort_int8": ort_runner(str(int8_path), feeds, threads),
        "torch_fp32": torch_runner(module, feeds),
    }
    if q_module is not None:
        runners["torch_int8"] = torch_runner(q_module, feeds)
    # outputs agree? (ORT FP32 vs torch FP32 is the export parity; INT8 variants vs FP32 for information)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with torch.inference_mode():
        ref = module(*args).numpy()
        q_out = q_module(*args).numpy() if q_module is not None else None
    ort_out = {k: make_session(str(p), "cpu", threads).run(None, feeds)[0] for k, p in
               (("ort_fp32", fp32_path), ("ort_int8", int8_path))}
    per_round: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            per_round[name].append(round_median_ms(runners[name], warmup, runs))
    ratios: dict[str, list[float]] = {
        "torch_fp32/ort_fp32": [t / o for t, o in zip(per_round["torch_fp32"], per_round["ort_fp32"])],
        "ort_fp32/ort_int8": [f / q for f, q in zip(per_round["ort_fp32"], per_round["ort_int8"])],
    }
    if "torch_int8" in per_round:
        ratios["torch_int8/ort_int8"] = [t / o for t, o in zip(per_round["torch_int8"], per_round["ort_int8"])]
        ratios["torch_fp32/torch_int8"] = [f / q for f, q in zip(per_round["torch_fp32"], per_round["torch_int8"])]
    return {
        "space": supernet.name,
        "config": config,
        "shape": shape,
        "params": supernet.count_params(config),
        "ms": {k: summary(v) for k, v in per_round.items()},
        "rounds_ms": per_round,
        "ratios": {k: summary(v) for k, v in ratios.items()},
        "max_abs_diff_vs_torch_fp32": {
            "ort_fp32": float(np.max(np.abs(ort_out["ort_fp32"] - ref))),
            "ort_int8": float(np.max(np.abs(ort_out["ort_int8"] - ref))),
            "torch_int8": None if q_out is None else float(np.max(np.abs(q_out - ref))),
        },
        "file_bytes": {"ort_fp32": fp32_path.stat().st_size, "ort_int8": int8_path.stat().st_size},
        "torch_int8_error": q_error,
    }


def geomean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    shapes = sorted({" × ".join(f"{k} {v}" for k, v in r["shape"].items()) for r in doc["results"]})
    lines = [(f"ONNX Runtime vs PyTorch eager, {s['threads']} intra-op thread(s), shape {' / '.join(shapes)}, "
              f"{s['rounds']} rounds × {s['runs']} runs (medians; ratios per round, then median)"), "",
             ("| space | config | params (M) | ORT FP32 ms | ORT INT8 ms | torch FP32 ms | torch INT8 ms "
              "| torch/ORT FP32 | torch/ORT INT8 | ORT FP32/INT8 | torch FP32/INT8 |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(r, k):
        return f"{r['ms'][k]['median']:.3f}" if k in r["ms"] else "n/a"

    def ratio(r, k):
        return f"{r['ratios'][k]['median']:.2f}x" if k in r["ratios"] else "n/a"

    for r in doc["results"]:
        config = " ".join(f"{k}=" + (",".join(map(str, v)) if isinstance(v, list) else str(v))
                          for k, v in r["config"].items())
        lines.append(f"| {r['space']} | {config} | {r['params'] / 1e6:.2f} | {ms(r, 'ort_fp32')} | {ms(r, 'ort_int8')} "
                     f"| {ms(r, 'torch_fp32')} | {ms(r, 'torch_int8')} | {ratio(r, 'torch_fp32/ort_fp32')} "
                     f"| {ratio(r, 'torch_int8/ort_int8')} | {ratio(r, 'ort_fp32/ort_int8')} "
                     f"| {ratio(r, 'torch_fp32/torch_int8')} |")
    for space, g in doc["geomean_ratios"].items():
        cells = " | ".join(f"{g[k]:.2f}x" if g.get(k) else "n/a" for k in
                           ("torch_fp32/ort_fp32", "torch_int8/ort_int8", "ort_fp32/ort_int8", "torch_fp32/torch_int8"))
        lines.append(f"| {space} | **geometric mean** | | | | | | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="bert-mini")
    parser.add_argument("--n", type=int, default=8, help="configurations sampled from --space")
    parser.add_argument("--extra-space", default=None, help="a second space, e.g. bert-ose")
    parser.add_argument("--extra-n", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=None, help="default: the space's")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench_deploy.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    cores = pin_threads(args.threads)
    plan = [(args.space, args.n)] + ([(args.extra_space, args.extra_n)] if args.extra_space else [])
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_deploy-") as tmp:
        for space, n in plan:
            supernet = get_supernet(space)
            shape = supernet.resolve_shape({"batch": args.batch, "seq_len": args.seq_len})
            configs = supernet.space.sample(n, seed=args.seed, unique=True)
            for i, config in enumerate(configs, 1):
                print(f"[{space} {i}/{n}] {json.dumps(config)}", file=sys.stderr, flush=True)
                results.append(bench_config(supernet, config, shape, args.threads, args.rounds, args.warmup,
                                            args.runs, Path(tmp)))
    geo: dict[str, dict[str, float | None]] = {}
    for space, _ in plan:
        rows = [r for r in results if r["space"] == space]
        keys = {k for r in rows for k in r["ratios"]}
        geo[space] = {k: geomean([r["ratios"][k]["median"] for r in rows if k in r["ratios"]]) for k in keys}
    fingerprint = device_fingerprint("cpu", args.threads)
    doc = {
        "schema": "hwnas-bench-deploy/1",
        "settings": {"space": args.space, "n": args.n, "extra_space": args.extra_space, "extra_n": args.extra_n,
                     "seed": args.seed, "threads": args.threads, "pinned_cores": cores,
                     "batch": args.batch, "seq_len": args.seq_len,
                     "rounds": args.rounds, "warmup": args.warmup, "runs": args.runs},
        "versions": {"hwnas": hwnas.__version__, "torch": torch.__version__, "onnxruntime": ort.__version__,
                     "python": platform.python_version()},
        "device": {**fingerprint, "id": device_id(fingerprint)},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "geomean_ratios": geo,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(markdown(doc))
    print(f"\nwrote {args.out} ({doc['wall_seconds']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
