#!/usr/bin/env python
"""Compare two profiles of one space, item by item: how much slower (or faster) the second
measured each block and calibration sub-network than the first.

    python tools/compare_profiles.py tools/results/bench_interference_mbv3_beside/quiet.json \\
        tools/results/bench_interference_mbv3_beside/busy.json --match input:112x112

Prints one JSON document: for the blocks both profiles hold, the ratio second / first of their
``median_ms`` (median, min, max, and the most changed blocks); the same for the blocks whose key
contains ``--match``; and for the calibration sub-networks both hold (same configuration). Reads
the files only; nothing is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _stats(ratios: dict[str, float], most: int) -> dict:
    if not ratios:
        return {"n": 0}
    values = np.array(list(ratios.values()))
    ranked = sorted(ratios.items(), key=lambda kv: -abs(np.log(kv[1])))[:most]
    return {"n": len(values), "median": float(np.median(values)), "min": float(values.min()),
            "max": float(values.max()), "most_changed": [{"item": k, "ratio": round(v, 4)} for k, v in ranked]}


def compare(first: dict, second: dict, match: str | None = None, most: int = 5) -> dict:
    """Ratios second / first of the items both profiles (loaded JSON) hold."""
    blocks = {k: second["blocks"][k]["median_ms"] / v["median_ms"]
              for k, v in first["blocks"].items() if k in second["blocks"] and v["median_ms"] > 0}
    calibration_second = {json.dumps(c["config"], sort_keys=True): c["median_ms"] for c in second["calibration"]}
    calibration = {key: calibration_second[key] / c["median_ms"] for c in first["calibration"]
                   if (key := json.dumps(c["config"], sort_keys=True)) in calibration_second and c["median_ms"] > 0}
    result = {"blocks": _stats(blocks, most), "calibration": _stats(calibration, 0)}
    if match:
        result[f"blocks matching {match!r}"] = _stats({k: v for k, v in blocks.items() if match in k}, most)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--match", default=None, help="also summarise the blocks whose key contains this")
    parser.add_argument("--most", type=int, default=5, help="how many of the most changed blocks to list")
    args = parser.parse_args(argv)
    profiles = []
    for path in (args.first, args.second):
        try:
            profiles.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            parser.error(f"cannot read profile {path}: {error}")
    if profiles[0].get("space") != profiles[1].get("space"):
        parser.error(f"the profiles are of different spaces: {profiles[0].get('space')!r} and {profiles[1].get('space')!r}")
    print(json.dumps({"space": profiles[0]["space"], "first": str(args.first), "second": str(args.second),
                      **compare(*profiles, match=args.match, most=args.most)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
