#!/usr/bin/env python
"""Probe: does an OpenVINO session honour the thread count it is given?

    ~/venv-ov/bin/python tools/probe_openvino_threads.py --space bert-ose --block layer/H=768/A=12/dh=64/I=3072

Times one block of ``--space`` on the OpenVINO provider in ``--sessions`` new sessions for each
of: 2 ONNX Runtime intra-op threads; 1 intra-op thread with the process pinned to one core; 1
intra-op thread unpinned; 1 intra-op thread unpinned with OpenVINO's own ``num_of_threads=1``
(what hwnas passes, :func:`hwnas.profiling.timing.providers_for`); and 2 threads again. Prints
each session's median (ms). OpenVINO ignores ONNX Runtime's ``intra_op_num_threads``, so the
unpinned 1-thread session runs as fast as the 2-thread one unless ``num_of_threads`` is set.
Needs ``onnxruntime-openvino`` (its own environment: README, OpenVINO) and 2 cores; run it on
a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnxruntime as ort  # noqa: E402

from bench_session_noise import _block  # noqa: E402
from hwnas.profiling.timing import pinned, time_session  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="bert-ose")
    parser.add_argument("--block", default="layer/H=768/A=12/dh=64/I=3072")
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args(argv)
    if "OpenVINOExecutionProvider" not in ort.get_available_providers():
        print(f"this onnxruntime ({ort.__version__}) has no OpenVINOExecutionProvider; run it in the OpenVINO "
              "environment (README: OpenVINO)", file=sys.stderr)
        return 2
    model, feeds = _block(args.block, args.space)

    def session(threads: int, options: dict[str, str]) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        return ort.InferenceSession(model, so, providers=["OpenVINOExecutionProvider"],
                                    provider_options=[{"device_type": "CPU", **options}])

    cases = [("2 intra-op threads", 2, 2, {}), ("1 intra-op thread, pinned to 1 core", 1, 1, {}),
             ("1 intra-op thread, unpinned", 1, 2, {}),
             ("1 intra-op thread, unpinned, num_of_threads=1", 1, 2, {"num_of_threads": "1"}),
             ("2 intra-op threads, again", 2, 2, {})]
    print(f"{args.space} {args.block} on OpenVINO, session medians (ms):")
    for label, threads, cores, options in cases:
        with pinned(cores):
            medians = [time_session(session(threads, options), feeds, warmup=3, repeats=9, min_seconds=0.3).median_ms
                       for _ in range(args.sessions)]
        print(f"  {label:48s} {' '.join(f'{m:.2f}' for m in medians)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
