"""Where the Pareto fronts of one search differ between devices (a search with several profiles).

    python tools/plot_devices.py --run RUN_DIR --out docs/devices.png --json-out tools/results/devices.json

Reads a complete search run that had an ``accuracy`` objective and one ``latency:<label>``
objective per profile, and, over its validated evaluations:

* each device's own front (accuracy vs that device's latency): which configurations are
  Pareto-optimal on one device and not on another (the share two fronts have in common);
* under a latency budget per device (``--budget`` of that device's range: min + f·(max − min)),
  the most accurate configuration that fits, and what each device's choice costs on the others
  (does it still fit? how much accuracy does it give away?).

Writes one PNG with a panel per device (its front in colour, the other devices' front members
marked) and the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def front(acc: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (accuracy up, latency down), by latency."""
    order = np.lexsort((-acc, lat))
    keep, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            keep.append(i)
            best = acc[i]
    return np.array(keep, dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--budget", type=float, default=0.3, help="budget as a fraction of each device's range")
    parser.add_argument("--names", default=None, help="label=name,... shown instead of the device labels")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (args.run / "evaluations.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("validated")]
    meta = json.loads((args.run / "run.json").read_text())
    devices = [o["name"] for o in meta["objectives"] if o["name"].startswith("latency:")]
    if len(devices) < 2 or "accuracy" not in [o["name"] for o in meta["objectives"]]:
        parser.error("the run needs accuracy and two or more latency:<label> objectives")
    names = dict(item.split("=", 1) for item in args.names.split(",")) if args.names else {}
    label = {d: names.get(d.split(":", 1)[1], d.split(":", 1)[1]) for d in devices}
    acc = np.array([r["objectives"]["accuracy"] for r in rows])
    lat = {d: np.array([r["objectives"][d] for r in rows]) for d in devices}
    fronts = {d: front(acc, lat[d]) for d in devices}
    sets = {d: set(fronts[d].tolist()) for d in devices}

    overlap = {f"{label[a]} vs {label[b]}": {"common": len(sets[a] & sets[b]), "only_first": len(sets[a] - sets[b]),
                                            "only_second": len(sets[b] - sets[a]),
                                            "jaccard": len(sets[a] & sets[b]) / len(sets[a] | sets[b])}
               for i, a in enumerate(devices) for b in devices[i + 1:]}
    budgets = {d: float(lat[d].min() + args.budget * (lat[d].max() - lat[d].min())) for d in devices}
    choices = {}
    for d in devices:
        fits = np.flatnonzero(lat[d] <= budgets[d])
        best = int(fits[np.argmax(acc[fits])])
        choices[d] = best
    budget_table = {}
    for d in devices:
        best = choices[d]
        budget_table[label[d]] = {
            "budget_ms": budgets[d],
            "best": {"config": rows[best]["config"], "accuracy": float(acc[best]), "latency_ms": float(lat[d][best])},
            "chosen_on_other_devices": {
                label[o]: {"config": rows[choices[o]]["config"], "fits": bool(lat[d][choices[o]] <= budgets[d]),
                           "latency_ms_here": float(lat[d][choices[o]]),
                           "accuracy_given_away": float(acc[best] - acc[choices[o]])}
                for o in devices if o != d},
        }

    fig, axes = plt.subplots(1, len(devices), figsize=(5.2 * len(devices), 4.4), squeeze=False)
    markers = ["s", "^", "D", "v"]
    for ax, d in zip(axes[0], devices):
        ax.scatter(lat[d], acc, s=8, c="0.8", label="validated")
        f = fronts[d]
        ax.plot(lat[d][f], acc[f], "-o", ms=4, color="C0", label=f"front on {label[d]}")
        for k, o in enumerate(devices):
            others = np.array(sorted(sets[o] - sets[d]), dtype=np.int64)
            if o != d and len(others):
                ax.scatter(lat[d][others], acc[others], marker=markers[k % 4], s=28, facecolors="none",
                           edgecolors=f"C{k + 1}", label=f"on {label[o]}'s front, not this one")
        ax.axvline(budgets[d], color="0.4", ls="--", lw=1, label=f"budget {budgets[d]:.3g} ms")
        ax.scatter([lat[d][choices[d]]], [acc[choices[d]]], marker="*", s=160, color="gold", edgecolors="k",
                   zorder=5, label="best under budget")
        ax.set_xlabel(f"predicted latency on {label[d]} (ms)")
        ax.set_ylabel("validation accuracy")
        ax.set_title(label[d])
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{meta['space']}: one search, {len(devices)} latency objectives ({len(rows)} validated)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    result = {"run": str(args.run), "space": meta["space"], "validated": len(rows),
              "devices": {label[d]: {"objective": d, "front_size": len(fronts[d]),
                                     "latency_range_ms": [float(lat[d].min()), float(lat[d].max())]}
                          for d in devices},
              "front_overlap": overlap, "budget_fraction": args.budget, "under_budget": budget_table}
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
