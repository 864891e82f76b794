#!/usr/bin/env python
"""Do a search's late validation gains hold on held-out data? Fronts re-scored on the test split.

A search ranks sub-networks by their accuracy on the validation split; late in a run its
hypervolume grows by tenths of an accuracy point, which is the size of the validation split's
own sampling error (5,000 images at 85%: ±0.5 points, one standard error). This tool takes the
run directories of ``tools/bench_search.py`` (accuracy vs latency), builds each run's validated
front after the first M validated evaluations for each ``--marks`` M, measures the test accuracy
of every front member (weight sharing, the same BN recalibration; the test split is never seen
by the search), and reports, per algorithm, the median hypervolume of the fronts with
validation accuracy and with test accuracy in its place (same reference point), plus how far
test accuracy strays from validation accuracy on these configurations against what sampling
alone explains::

    python tools/bench_front_heldout.py --space mbv3-fmnist --marks 75,150,300 \\
        BENCH/runs/linas-s3 BENCH/runs/linas-s4 BENCH/runs/nsga2-s3 BENCH/runs/nsga2-s4 \\
        --json-out R.json

The algorithm of a run is the part of its directory name before ``-s<seed>``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.errors import InputError  # noqa: E402
from hwnas.search.pareto import hypervolume, non_dominated_mask, to_minimization  # noqa: E402
from hwnas.search.store import read_run  # noqa: E402


def _marks(text: str) -> list[int]:
    try:
        marks = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--marks {text!r} is not comma-separated integers") from None
    if not marks or marks[0] < 1:
        raise argparse.ArgumentTypeError(f"--marks {text!r}: every mark must be ≥ 1")
    return marks


def front_rows(F_min: np.ndarray, m: int) -> np.ndarray:
    """Indices of the non-dominated rows among the first ``m`` rows of ``F_min`` [N, 2]."""
    head = F_min[:m]
    return np.flatnonzero(non_dominated_mask(head))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories of tools/bench_search.py (ALGO-sSEED)")
    p.add_argument("--space", required=True)
    p.add_argument("--marks", type=_marks, default=[75, 150, 300], help="evaluation counts [default: 75,150,300]")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--validation-examples", type=int, default=None, metavar="N",
                   help="as tools/bench_search.py's option of that name (bert-mini only); give the runs' value")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from bench_search import make_evaluator  # tools/bench_search.py, beside this file

    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet(args.space)
    evaluator = make_evaluator(supernet, args.validation_examples)
    runs = []
    for path in args.runs:
        match = re.fullmatch(r"(.+)-s(\d+)", path.name)
        if match is None:
            p.error(f"run directory {str(path)!r} is not named ALGO-sSEED")
        try:
            run = read_run(path, space=args.space, require_complete=False)
        except InputError as error:
            p.error(str(error))
        if run.meta.get("evaluator") != evaluator.description:
            p.error(f"{path}: scored by {run.meta.get('evaluator')!r}, not {evaluator.description!r} "
                    "(--validation-examples must match the runs')")
        names = [o["name"] for o in run.meta["objectives"]]
        if names[:1] != ["accuracy"] or len(names) != 2:
            p.error(f"{path}: objectives {names}; this tool needs accuracy and one latency")
        rows = run.evaluations
        F = np.array([[r["objectives"][n] for n in names] for r in rows], dtype=np.float64)
        maximize = [o["maximize"] for o in run.meta["objectives"]]
        runs.append({"path": str(path), "algo": match.group(1), "seed": int(match.group(2)),
                     "configs": [r["config"] for r in rows], "F": F, "maximize": maximize,
                     "ref": np.asarray(run.meta["reference_point"], dtype=np.float64)})

    # Every configuration on some front at some mark: its test accuracy, once (its validation
    # accuracy is the run's own record).
    wanted: dict[str, dict] = {}
    valid_of: dict[str, float] = {}
    for run in runs:
        F_min = to_minimization(run["F"], run["maximize"])
        run["fronts"] = {m: front_rows(F_min, m) for m in args.marks if m <= len(run["configs"])}
        for idx in run["fronts"].values():
            for i in idx:
                key = supernet.space.key(run["configs"][i])
                wanted.setdefault(key, run["configs"][i])
                valid_of.setdefault(key, float(run["F"][i, 0]))
    keys = list(wanted)
    started = time.perf_counter()
    test = evaluator.test_accuracy([wanted[k] for k in keys])
    if test is None:
        p.error(f"space {args.space!r} has no test split to re-score fronts on")
    valid = np.array([valid_of[k] for k in keys])
    test_of = dict(zip(keys, test.tolist()))
    print(f"test accuracy of {len(keys)} front configurations in {time.perf_counter() - started:.0f} s", flush=True)

    table: dict[str, dict[int, dict[str, list[float]]]] = {}
    for run in runs:
        ref_min = to_minimization(run["ref"], run["maximize"])
        run["hv"] = {}
        for m, idx in run["fronts"].items():
            Fv = run["F"][idx]
            Ft = Fv.copy()
            Ft[:, 0] = [test_of[supernet.space.key(run["configs"][i])] for i in idx]
            hv_val = hypervolume(to_minimization(Fv, run["maximize"]), ref_min)
            hv_test = hypervolume(to_minimization(Ft, run["maximize"]), ref_min)
            run["hv"][m] = {"validation": hv_val, "test": hv_test, "front": int(idx.size)}
            cell = table.setdefault(run["algo"], {}).setdefault(m, {"validation": [], "test": []})
            cell["validation"].append(hv_val)
            cell["test"].append(hv_test)

    gap = np.asarray(test) - np.asarray(valid)
    n_val = len(evaluator.task.validation) if hasattr(evaluator, "task") else None
    n_test = len(evaluator.task.test) if hasattr(evaluator, "task") else None
    p_mean = float(np.mean(valid))
    sampling_sd = (float(np.sqrt(p_mean * (1 - p_mean) * (1 / n_val + 1 / n_test)))
                   if n_val and n_test else None)
    print(f"\n{len(keys)} front configurations: validation {np.min(valid):.4f}–{np.max(valid):.4f}, "
          f"test − validation mean {gap.mean():+.4f}, sd {gap.std(ddof=1):.4f}"
          + (f" (sampling alone: sd {sampling_sd:.4f} for {n_val:,} and {n_test:,} examples)" if sampling_sd else ""))
    print("\n| algorithm | evaluations | HV, validation accuracy | HV, test accuracy | front size |")
    print("|---|---:|---:|---:|---:|")
    for algo, by_mark in table.items():
        for m in sorted(by_mark):
            cell = by_mark[m]
            sizes = [r["hv"][m]["front"] for r in runs if r["algo"] == algo and m in r["hv"]]
            print(f"| {algo} | {m} | {np.median(cell['validation']):.5f} | {np.median(cell['test']):.5f} | "
                  f"{int(np.median(sizes))} |")
    print("\n(medians over the runs of each algorithm)")
    if args.json_out:
        doc = {"space": args.space, "marks": args.marks, "configurations": len(keys),
               "test_minus_validation": {"mean": float(gap.mean()), "sd": float(gap.std(ddof=1)),
                                         "sampling_sd": sampling_sd, "validation_examples": n_val,
                                         "test_examples": n_test},
               "runs": [{"path": r["path"], "algo": r["algo"], "seed": r["seed"],
                         "hypervolume": {str(m): v for m, v in r["hv"].items()}} for r in runs],
               "median": {a: {str(m): {k: float(np.median(v)) for k, v in c.items()} for m, c in bm.items()}
                          for a, bm in table.items()},
               "command": "python tools/bench_front_heldout.py " + " ".join(sys.argv[1:] if argv is None else argv)}
        args.json_out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
