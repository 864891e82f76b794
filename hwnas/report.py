"""Plots (PNG, matplotlib Agg) and a Markdown summary of a search run or an export.

:func:`build_report` takes a run directory (``run.json``) or an export directory
(``manifest.json``). For a run it also looks for an export of it (a sibling directory whose
manifest names the run); for an export it reads the run the manifest names, when still there.

Files written to the report directory:

* ``front_<objective>.png`` — per latency objective (one per device profile): the primary
  objective (accuracy when the run has it) against latency; every validated evaluation faint,
  the two-objective non-dominated set as a step line (the best value reachable within each
  latency budget), the run's Pareto front (all objectives) as rings, exported models as stars.
  Runs without a latency objective get one such plot per other objective.
* ``hypervolume.png`` — hypervolume against validated evaluations (``hypervolume.csv``).
* ``predicted_vs_measured.png`` — exported models: each profile's predicted latency against the
  latency measured at export, with the y = x line and a ±10 % band.
* ``int8.png`` — exported models with INT8 variants: test accuracy against measured latency,
  an arrow from each FP32 model to its INT8 variant.
* ``report.md`` — the summary embedding the plots, with tables of the front and the exported
  models; ``report.json`` (schema ``hwnas-report/1``) — the list of files and the inputs used;
  it marks the directory as a report, which a later report may replace.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.fileio import now_iso
from hwnas.interrupts import terminate_as_interrupt
from hwnas.outdir import OutputKind, staged_output
from hwnas.search.store import Run, read_run

REPORT_SCHEMA = "hwnas-report/1"
#: A report directory: recognised only by its ``report.json`` (:data:`REPORT_SCHEMA`), and holding
#: nothing but report files, since a rebuilt report replaces it whole.
REPORT_KIND = OutputKind("report", "report.json", REPORT_SCHEMA,
                         own=re.compile(r"^(report\.md|[A-Za-z0-9_.:-]+\.png)$"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9, "axes.grid": True,
                         "grid.alpha": 0.3})
    return plt


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
#: The export manifest's schema (:data:`hwnas.deploy.pipeline.MANIFEST_SCHEMA`; not imported from
#: there, which would load torch and onnx for a report).
MANIFEST_SCHEMA = "hwnas-export/1"
#: Manifest model fields that are numbers when present (None allowed): (name, low, high).
_MODEL_NUMBERS = (("params", 0, None), ("onnx_params", 0, None), ("macs", 0, None), ("measured_ms", 0, 1e12),
                  ("parity_max_abs_diff", 0, None), ("size_bytes", 0, None), ("test_accuracy", 0, 1),
                  ("evaluator_test_accuracy", 0, 1))
_INT8_NUMBERS = (("measured_ms", 0, 1e12), ("speedup_vs_fp32", 0, None), ("test_accuracy", 0, 1),
                 ("size_bytes", 0, None), ("max_abs_diff_vs_fp32", 0, None))


def _check_number(value: Any, where: str, low: float | None, high: float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"field {where!r} is {_short(value)}, not a number"
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        return f"field {where!r} is {value!r}, out of range"
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_manifest(manifest: Any, source: str) -> dict[str, Any]:
    """An export manifest as hwnas writes it, or InputError naming ``source`` and the first bad
    field (its schema; per model: ``file``, ``config``, finite in-range numbers, ``predicted_ms``
    and the INT8 variant's numbers)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise InputError(f"{source} is not an hwnas export manifest")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise InputError(f"{source} has schema {_short(manifest.get('schema'))}; this hwnas reads {MANIFEST_SCHEMA!r}")
    for k, model in enumerate(manifest["models"]):
        where = f"models[{k}]"
        problem = None
        if not isinstance(model, dict):
            problem = f"field {where!r} is not an object"
        elif not isinstance(model.get("file"), str) or not isinstance(model.get("config"), dict):
            problem = f"field '{where}.file' or '{where}.config' is missing or bad"
        else:
            checks = [(model.get(n), f"{where}.{n}", lo, hi) for n, lo, hi in _MODEL_NUMBERS]
            predicted = model.get("predicted_ms") or {}
            if not isinstance(predicted, dict):
                problem = f"field '{where}.predicted_ms' is not an object"
            else:
                checks += [(v, f"{where}.predicted_ms.{lb}", 0, 1e12) for lb, v in predicted.items()]
            int8 = model.get("int8")
            if int8 is not None and not isinstance(int8, dict):
                problem = f"field '{where}.int8' is not an object"
            elif int8 is not None:
                checks += [(int8.get(n), f"{where}.int8.{n}", lo, hi) for n, lo, hi in _INT8_NUMBERS]
            problem = problem or next((p for p in (_check_number(*c) for c in checks) if p), None)
        if problem:
            raise InputError(f"{source} is corrupt: {problem}")
    return manifest


def _load_manifest(path: Path) -> dict[str, Any]:
    file = path / "manifest.json"
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"cannot read export manifest {str(file)!r}: {_short(str(exc), 120)}") from None
    return check_manifest(manifest, f"export manifest {str(file)!r}")


def find_export_of(run_dir: Path) -> Path | None:
    """A sibling directory whose ``manifest.json`` was exported from ``run_dir`` (newest first)."""
    target = str(run_dir.resolve())
    found = []
    for manifest in run_dir.resolve().parent.glob("*/manifest.json"):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError, RecursionError):  # someone else's file: binary, nested, not JSON
            continue
        if isinstance(data, dict) and (data.get("source") or {}).get("run") == target:
            found.append((manifest.stat().st_mtime, manifest.parent))
    return max(found)[1] if found else None


def resolve_inputs(directory: Path, export_dir: Path | None = None) -> tuple[Run | None, Path | None, dict | None]:
    """(run, export directory, manifest) for a run or export directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{str(directory)!r} does not exist or is not a directory")
    run: Run | None = None
    manifest: dict | None = None
    if (directory / "run.json").is_file():
        run = read_run(directory, require_complete=False)
        export_dir = export_dir or find_export_of(directory)
    elif (directory / "manifest.json").is_file():
        export_dir = directory
    else:
        raise InputError(f"{str(directory)!r} is neither a run directory (run.json) nor an export (manifest.json)")
    if export_dir is not None:
        if not (Path(export_dir) / "manifest.json").is_file():
            raise InputError(f"--export {str(export_dir)!r} has no manifest.json")
        manifest = _load_manifest(Path(export_dir))
        source_run = (manifest.get("source") or {}).get("run")
        if run is None and source_run and (Path(source_run) / "run.json").is_file():
            run = read_run(source_run, require_complete=False)
    return run, (Path(export_dir) if export_dir else None), manifest


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def nondominated_2d(x: np.ndarray, y: np.ndarray, y_maximize: bool) -> np.ndarray:
    """Indices of points not dominated in (minimise x, maximise/minimise y), sorted by x."""
    sign = -1.0 if y_maximize else 1.0
    order = np.lexsort((sign * y, x))  # by x, then best y first
    keep, best = [], math.inf
    for i in order:
        value = sign * y[i]
        if value < best:
            keep.append(i)
            best = value
    return np.asarray(keep, dtype=np.int64)


def _label(objective: dict[str, Any], run: Run | None = None) -> str:
    name, unit = objective["name"], objective.get("unit") or ""
    if name == "accuracy":
        return "validation accuracy (%)"
    if name.startswith("latency"):
        profiles = (run.meta.get("profiles") or []) if run is not None else []
        where = name.split(":", 1)[1] if ":" in name else (profiles[0].get("label") if len(profiles) == 1
                                                             else "the profiled device")
        return f"predicted latency on {where} ({unit or 'ms'})"
    if name == "params":
        return "parameters (millions)"
    if name == "macs":
        return "MACs (millions)"
    return f"{name} ({unit})" if unit else name


def _scale(objective: dict[str, Any]) -> float:
    """Multiplier from stored values to plotted ones (accuracy in %, counts in millions)."""
    return {"accuracy": 100.0, "params": 1e-6, "macs": 1e-6}.get(objective["name"], 1.0)


def config_summary(config: dict) -> str:
    """``D=3 A=4,4,2 I=512,256,128`` (lists joined by commas)."""
    return " ".join(f"{k}=" + (",".join(map(str, v)) if isinstance(v, list) else str(v)) for k, v in config.items())


def _threads(n: Any) -> str:
    return f"{n} intra-op thread" + ("" if n == 1 else "s")


def _shape(shape: Any) -> str:
    """``batch 1 × seq_len 32``."""
    return " × ".join(f"{k} {v}" for k, v in shape.items()) if isinstance(shape, dict) else str(shape)


def _column(objective: dict[str, Any]) -> str:
    """Table header of an objective with the unit its values are shown in."""
    name, unit = objective["name"], objective.get("unit") or ""
    if name == "accuracy":
        return "accuracy (%)"
    if name in ("params", "macs"):
        return f"{name} (M)"
    return f"{name} ({unit})" if unit and unit != "fraction" else name


def _format_value(objective: dict[str, Any], value: Any) -> str:
    name, unit = objective["name"], objective.get("unit") or ""
    if value is None:
        return "—"
    if name == "accuracy":
        return _fmt(value, ".2f", 100)
    if name in ("params", "macs"):
        return _fmt(value, ".3f", 1e-6)
    if unit == "ms":
        return _fmt(value, ".3f")
    return _fmt(value, ".4g")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return format(value * scale, spec)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_fronts(run: Run, manifest: dict | None, out: Path) -> list[str]:
    """``front_<objective>.png`` per latency objective (or per other objective); file names."""
    plt = _plt()
    objectives = run.objectives
    names = [o["name"] for o in objectives]
    primary = names.index("accuracy") if "accuracy" in names else 0
    others = [i for i, n in enumerate(names) if n.startswith("latency")] or [i for i in range(len(names)) if i != primary]
    values = run.values(run.evaluations)
    front = run.values(run.front) if run.front else np.zeros((0, len(names)))
    exported_keys = set()
    if manifest:
        exported_keys = {json.dumps(m["config"], sort_keys=True) for m in manifest["models"]}
    exported_rows = [r for r in run.front if json.dumps(r["config"], sort_keys=True) in exported_keys]
    files = []
    for j in others:
        py, px = objectives[primary], objectives[j]
        sy, sx = _scale(py), _scale(px)
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        xs = ys = np.zeros(0)
        ok = np.isfinite(values[:, j]) & np.isfinite(values[:, primary])
        ax.scatter(values[ok, j] * sx, values[ok, primary] * sy, s=10, color="0.6", alpha=0.35,
                   label=f"all validated evaluations ({int(ok.sum())})", zorder=1)
        if len(names) == 2 and len(front):  # the run's own front, exactly (ties included)
            order = np.argsort(front[:, j], kind="stable")
            xs, ys = front[order, j] * sx, front[order, primary] * sy
            label = f"Pareto front ({len(front)})"
        elif ok.any():
            idx = np.flatnonzero(ok)[nondominated_2d(values[ok, j], values[ok, primary], py["maximize"])]
            xs, ys = values[idx, j] * sx, values[idx, primary] * sy
            label = f"front of these 2 objectives ({len(idx)})"
        if len(xs):
            if px["maximize"] is False:
                ax.step(np.append(xs, xs[-1] * 1.02), np.append(ys, ys[-1]), where="post", color="C0", lw=1.6,
                        label=label, zorder=2)
            else:
                ax.plot(xs, ys, color="C0", lw=1.6, label=label, zorder=2)
        if len(front) and len(names) > 2:
            ax.scatter(front[:, j] * sx, front[:, primary] * sy, s=36, facecolors="none", edgecolors="C1",
                       label=f"run's Pareto front, all objectives ({len(front)})", zorder=3)
        elif len(front):
            ax.scatter(front[:, j] * sx, front[:, primary] * sy, s=22, color="C0", zorder=3)
        if exported_rows:
            ev = run.values(exported_rows)
            ax.scatter(ev[:, j] * sx, ev[:, primary] * sy, s=150, marker="*", color="C3", edgecolors="k",
                       linewidths=0.5, label=f"exported ({len(exported_rows)})", zorder=4)
        ax.set_xlabel(_label(px, run))
        ax.set_ylabel(_label(py, run))
        title = f"{run.space}: {py['name']} vs {px['name']}"
        ax.set_title(f"{title}\n{run.meta.get('algo', '?')} search, {len(run.evaluations)} validated evaluations",
                     fontsize=10)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        fig.tight_layout()
        name = f"front_{_safe(px['name'])}.png"
        fig.savefig(out / name)
        plt.close(fig)
        files.append(name)
    return files


def plot_hypervolume(run: Run, out: Path) -> str | None:
    """``hypervolume.png``: hypervolume against validated evaluations; None without data."""
    if not run.hypervolume:
        return None
    plt = _plt()
    evals, hv = zip(*run.hypervolume)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(evals, hv, color="C2", lw=1.6, marker="o" if len(evals) <= 40 else None, ms=3)
    ax.set_xlabel("validated evaluations")
    units = " × ".join(
        {"accuracy": "accuracy"}.get(o["name"], o.get("unit") or o["name"]) for o in run.objectives
    )
    ax.set_ylabel(f"hypervolume ({units})")
    ref = run.meta.get("reference_point")
    ref_text = ", ".join(f"{o['name']}={v:.4g}" for o, v in zip(run.objectives, ref)) if ref else "?"
    ax.set_title(f"{run.space}, {run.meta.get('algo', '?')}: hypervolume\nreference point: {ref_text}", fontsize=10)
    population = (run.meta.get("settings") or {}).get("population")
    if run.meta.get("algo") in ("linas", "nsga2") and isinstance(population, int) and 0 < population < max(evals):
        ax.axvline(population, color="0.5", ls="--", lw=0.8)
        ax.annotate("first population", (population, 0.03), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", fontsize=7, color="0.4")
    ax.set_xlim(left=0)
    fig.tight_layout()
    fig.savefig(out / "hypervolume.png")
    plt.close(fig)
    return "hypervolume.png"


def plot_predicted_vs_measured(manifest: dict, out: Path) -> str | None:
    """``predicted_vs_measured.png``; None when no model has both numbers."""
    models = manifest["models"]
    labels = [p["label"] for p in manifest.get("profiles", [])]
    points = {lb: [(m["measured_ms"], m["predicted_ms"].get(lb), i + 1) for i, m in enumerate(models)
                   if m.get("measured_ms") is not None and (m.get("predicted_ms") or {}).get(lb) is not None]
              for lb in labels}
    points = {lb: p for lb, p in points.items() if p}
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    every = [v for p in points.values() for (x, y, _) in p for v in (x, y)]
    lo, hi = min(every) * 0.85, max(every) * 1.15
    grid = np.linspace(lo, hi, 50)
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="C0", alpha=0.12, label="±10 %")
    ax.plot(grid, grid, color="k", lw=1, label="predicted = measured")
    markers = "osD^v<>"
    for k, (lb, pts) in enumerate(points.items()):
        x, y, _ = zip(*pts)
        ax.scatter(x, y, s=30, marker=markers[k % len(markers)], color=f"C{k + 1}", zorder=3,
                   label=f"profile {lb}")
        for xi, yi, ni in pts:
            ax.annotate(str(ni), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("measured latency here, FP32 (ms, median)")
    ax.set_ylabel("predicted latency (ms)")
    meas = manifest.get("measurement", {})
    same = all(p.get("same_device") for p in manifest.get("profiles", []) if p.get("same_device") is not None)
    where = "" if same else "\n(a profile is of another device)"
    ax.set_title(f"exported models: predicted vs measured\n{meas.get('ep', '?')}, {_threads(meas.get('threads'))}, "
                 f"{_shape(meas.get('shape'))}{where}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "predicted_vs_measured.png")
    plt.close(fig)
    return "predicted_vs_measured.png"


def plot_int8(manifest: dict, out: Path) -> str | None:
    """``int8.png``: test accuracy vs measured latency, FP32 → INT8 arrows; None without INT8 data."""
    models = [m for m in manifest["models"] if m.get("int8") and m.get("measured_ms")]
    if not models:
        return None
    have_acc = all(m.get("test_accuracy") is not None and m["int8"].get("test_accuracy") is not None for m in models)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if have_acc:
        fx = [m["measured_ms"] for m in models]
        fy = [m["test_accuracy"] * 100 for m in models]
        qx = [m["int8"]["measured_ms"] for m in models]
        qy = [m["int8"]["test_accuracy"] * 100 for m in models]
        ax.scatter(fx, fy, s=36, color="C0", label="FP32", zorder=3)
        ax.scatter(qx, qy, s=36, marker="s", color="C3", label="INT8 (dynamic)", zorder=3)
        for i, (a, b, c, d) in enumerate(zip(fx, fy, qx, qy)):
            ax.annotate("", xy=(c, d), xytext=(a, b), arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})
            ax.annotate(str(i + 1), (a, b), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_ylabel("test accuracy (%)")
        ax.set_xlabel("measured latency here (ms, median)")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("exported models: FP32 → INT8 (test accuracy vs latency)", fontsize=10)
    else:
        n = np.arange(len(models))
        ax.bar(n - 0.2, [m["measured_ms"] for m in models], 0.4, label="FP32", color="C0")
        ax.bar(n + 0.2, [m["int8"]["measured_ms"] for m in models], 0.4, label="INT8 (dynamic)", color="C3")
        ax.set_xticks(n, [str(i + 1) for i in n])
        ax.set_xlabel("exported model")
        ax.set_ylabel("measured latency here (ms, median)")
        ax.legend(fontsize=8)
        ax.set_title("exported models: FP32 vs INT8 latency", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "int8.png")
    plt.close(fig)
    return "int8.png"


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _run_section(run: Run, front_plots: list[str], hv_plot: str | None) -> list[str]:
    m = run.meta
    lines = ["## Search run", ""]
    objectives = ", ".join(f"{o['name']} ({'max' if o['maximize'] else 'min'}"
                           + (f", {o['unit']}" if o.get("unit") else "") + ")" for o in run.objectives)
    lines += _table(["field", "value"], [
        ["directory", f"`{run.path}`"],
        ["space", m.get("space")],
        ["algorithm", f"{m.get('algo')} (seed {m.get('seed')})"],
        ["status", m.get("status") + ("" if run.complete else f" — incomplete: {'; '.join(run.problems)}")],
        ["validated evaluations", f"{len(run.evaluations)} of {m.get('evals')}"],
        ["objectives", objectives],
        ["profiles", ", ".join(f"{p.get('label')} ({p.get('device_id')})" for p in m.get("profiles") or []) or "—"],
        ["final hypervolume", _fmt(run.hypervolume[-1][1], ".6g") if run.hypervolume else "—"],
    ])
    lines.append("")
    for name in front_plots:
        lines += [f"![{name}]({name})", ""]
    if hv_plot:
        lines += [f"![hypervolume]({hv_plot})", ""]
    if run.front:
        lines += [f"### Pareto front ({len(run.front)} validated, non-dominated)", ""]
        header = ["#", "run index", "config"] + [_column(o) for o in run.objectives]
        rows = []
        for k, row in enumerate(run.front):
            cells = [str(k), str(row["index"]), config_summary(row["config"])]
            cells += [_format_value(o, row["objectives"].get(o["name"])) for o in run.objectives]
            rows.append(cells)
        lines += _table(header, rows) + [""]
    return lines


def _export_section(manifest: dict, export_dir: Path | None, pvm: str | None, int8_plot: str | None) -> list[str]:
    lines = ["## Exported models", ""]
    meas = manifest.get("measurement", {})
    acc = manifest.get("accuracy", {})
    source = manifest.get("source", {})
    sel = source.get("selection") or {}
    policy = meas.get("policy") or {}
    facts = [
        ["export directory", f"`{export_dir}`" if export_dir else "—"],
        ["models", f"{len(manifest['models'])}" + (f" of a front of {source.get('front_size')}" if source.get("front_size") else "")],
        ["selection", sel.get("method", "—")],
        ["latency measured", (f"{meas.get('ep')}, {_threads(meas.get('threads'))}, {_shape(meas.get('shape'))}, "
                              f"device {meas.get('device_id')}; median of ≥ {policy.get('repeats')} runs "
                              f"and ≥ {policy.get('calibration_min_seconds')} s of timed runs")],
        ["test accuracy", acc.get("method") or f"none ({acc.get('note')})"],
        ["INT8", (manifest.get("int8") or {}).get("tool", "not requested")],
        ["export wall time", f"{manifest.get('wall_seconds', 0):.1f} s"],
    ]
    lines += _table(["field", "value"], facts) + [""]
    labels = [p["label"] for p in manifest.get("profiles", [])]
    header = ["#", "file", "config", "params (M)", "val acc (run)", "test acc"]
    header += [f"pred ms ({lb})" for lb in labels] + ["meas ms (IQR)", "pred err", "parity"]
    has_int8 = manifest.get("int8") is not None
    if has_int8:
        header += ["INT8 ms", "INT8/FP32 speed-up", "INT8 test acc", "FP32 / INT8 MB"]
    rows = []
    for k, m in enumerate(manifest["models"], 1):
        val = (m.get("objectives") or {}).get("accuracy")
        errs = [f"{e * 100:+.1f} %" for e in (m.get("prediction_error") or {}).values()]
        t = m.get("measured") or {}
        iqr = f" ({t['q3_ms'] - t['q1_ms']:.3f})" if t else ""
        cells = [str(k), f"`{m['file']}`", config_summary(m["config"]), f"{m['params'] / 1e6:.3f}",
                 _fmt(val, ".2f", 100), _fmt(m.get("test_accuracy"), ".2f", 100)]
        cells += [_fmt((m.get("predicted_ms") or {}).get(lb), ".3f") for lb in labels]
        cells += [_fmt(m.get("measured_ms"), ".3f") + iqr, ", ".join(errs) or "—", f"{m['parity_max_abs_diff']:.1e}"]
        if has_int8:
            q = m.get("int8") or {}
            cells += [_fmt(q.get("measured_ms"), ".3f"), _fmt(q.get("speedup_vs_fp32"), ".2f") + "x",
                      _fmt(q.get("test_accuracy"), ".2f", 100),
                      f"{m.get('size_bytes', 0) / 1e6:.2f} / {_fmt(q.get('size_bytes'), '.2f', 1e-6)}"]
        rows.append(cells)
    lines += _table(header, rows) + [""]
    lines.append("Accuracies in %. `val acc (run)` is the search's validation accuracy; `test acc` is "
                 "measured at export on the test split. `pred err` is (predicted − measured) / measured.")
    lines.append("")
    for warning in manifest.get("warnings") or []:
        lines.append(f"> warning: {warning}")
    if manifest.get("warnings"):
        lines.append("")
    if pvm:
        lines += [f"![predicted vs measured]({pvm})", ""]
    if int8_plot:
        lines += [f"![FP32 vs INT8]({int8_plot})", ""]
    return lines


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def default_report_dir(directory: Path) -> Path:
    """``<DIR>/report``."""
    return Path(directory) / "report"


def build_report(directory: str | os.PathLike, out: str | os.PathLike | None = None,
                 export_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the report of a run or export directory into ``out`` (default ``<DIR>/report``).

    ``out`` may be new, empty, or a previous report (its ``report.json`` and only report files):
    it is then replaced as a whole (written to a temporary sibling, renamed at the end). Any other
    directory, e.g. one of the user's own ``.png`` files, is refused (:mod:`hwnas.outdir`).

    Returns:
        ``{"schema", "report", "markdown", "plots": [...], "run", "export", "created"}``.
    """
    directory = Path(directory)
    run, export_path, manifest = resolve_inputs(directory, Path(export_dir) if export_dir else None)
    out = Path(out) if out is not None else default_report_dir(directory)
    with terminate_as_interrupt(), staged_output(out, REPORT_KIND, replace=True) as staging:
        created = now_iso()
        plots: list[str] = []
        lines = ["# hwnas report", "", f"Generated {created} from `{directory}`.", ""]
        front_plots: list[str] = []
        hv = None
        if run is not None:
            front_plots = plot_fronts(run, manifest, staging)
            hv = plot_hypervolume(run, staging)
            plots += front_plots + ([hv] if hv else [])
        pvm = int8_plot = None
        if manifest is not None:
            pvm = plot_predicted_vs_measured(manifest, staging)
            int8_plot = plot_int8(manifest, staging)
            plots += [p for p in (pvm, int8_plot) if p]
        if run is not None:
            lines += _run_section(run, front_plots, hv)
        elif manifest is not None:
            lines += ["_The run this export came from is not available; run plots are left out._", ""]
        if manifest is not None:
            lines += _export_section(manifest, export_path, pvm, int8_plot)
        (staging / "report.md").write_text("\n".join(lines) + "\n")
        summary = {
            "schema": REPORT_SCHEMA,
            "report": str(out),
            "markdown": str(out / "report.md"),
            "plots": [str(out / p) for p in plots],
            "run": str(run.path) if run else None,
            "export": str(export_path) if export_path else None,
            "created": created,
        }
        (staging / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
