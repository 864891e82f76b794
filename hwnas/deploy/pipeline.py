"""Verified export of sub-networks as standalone ONNX models, from configurations or a run.

Each exported model is checked with ``onnx.checker``, run in ONNX Runtime against the extracted
PyTorch module on the supernet's parity inputs (max abs difference recorded as
``parity_max_abs_diff``, at most :data:`~hwnas.deploy.parity.PARITY_TOLERANCE`), and its weight
tensors are summed and compared with the analytic parameter count. :func:`deploy` adds, per
model, the latency measured on this machine with the profiler's runner (beside each profile's
prediction), the test accuracy where the supernet has an evaluator, and optionally an INT8
variant made by ONNX Runtime's dynamic quantization. :func:`export_run` does all of that for the
Pareto front of a search run.

The export directory is written to a temporary sibling and renamed into place at the end
(:func:`hwnas.outdir.staged_output`), so a failed or interrupted export never leaves a
directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import hwnas
from hwnas.deploy.accuracy import AccuracySource, accuracy_session, accuracy_source, onnx_predictions, split_accuracy
from hwnas.deploy.measure import Measurement, measurement_for, time_onnx
from hwnas.onnx_export import OPSET, export_onnx
from hwnas.deploy.parity import PARITY_TOLERANCE, onnx_param_count, output_difference, verify_parity
from hwnas.deploy.quantize import INT8_METHOD, int8_file_name, quantize_int8
from hwnas.deploy.select import SPREAD_METHOD, spread_along_front
from hwnas.checks import check_int
from hwnas.errors import InputError
from hwnas.fileio import now_iso
from hwnas.interrupts import terminate_as_interrupt
from hwnas.locking import exclusive
from hwnas.outdir import OutputKind, check_out_dir, refuse_mount_point, staged_output
from hwnas.predictors.profiles import ProfileRef, run_profiles
from hwnas.search.store import read_run
from hwnas.space import Config
from hwnas.supernets.base import Shape, Supernet

MANIFEST_SCHEMA = "hwnas-export/1"
#: An export directory: ``manifest.json`` with :data:`MANIFEST_SCHEMA`; ``--out`` must be new or empty.
EXPORT_KIND = OutputKind("export", "manifest.json", MANIFEST_SCHEMA)
ProgressFn = Callable[[str], None]


def check_export_dir(out: str | os.PathLike) -> None:
    """Refuse ``--out`` of an export unless it is new or empty (:func:`hwnas.outdir.check_out_dir`;
    an earlier export there is refused too: exports never overwrite), or when it is a mount
    point (the finished export is renamed into place)."""
    check_out_dir(out, EXPORT_KIND, reuse=False)
    refuse_mount_point(out)


def model_file_name(supernet: Supernet, config: Config) -> str:
    """``<space>-<8 hex of the configuration key>.onnx``: stable per configuration."""
    digest = hashlib.sha256(supernet.space.key(config).encode()).hexdigest()[:8]
    return f"{supernet.name}-{digest}.onnx"


def _manifest_head(supernet: Supernet) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "hwnas_version": hwnas.__version__,
        "space": supernet.name,
        "created": now_iso(),
    }


def export_one(supernet: Supernet, config: Config, directory: Path, shape: Shape | None = None) -> dict[str, Any]:
    """Export ``config`` into ``directory`` and return its verified manifest entry.

    Raises:
        RuntimeError: when the checker fails or parity exceeds :data:`PARITY_TOLERANCE`.
    """
    shape = supernet.resolve_shape(shape)
    config = supernet.space.canonical(config)
    module = supernet.extract(config).eval()
    started = time.perf_counter()
    model = export_onnx(
        module,
        supernet.example_inputs(shape),
        supernet.output_names,
        dynamic_axes=supernet.dynamic_axes,
        metadata={"hwnas.space": supernet.name, "hwnas.config": config, "hwnas.version": hwnas.__version__},
    )
    export_seconds = time.perf_counter() - started
    onnx.checker.check_model(model)
    parity = verify_parity(model, module, supernet.parity_inputs(shape))
    if not parity <= PARITY_TOLERANCE:
        raise RuntimeError(f"parity error {parity:.3g} > {PARITY_TOLERANCE} for {json.dumps(config)}")
    name = model_file_name(supernet, config)
    onnx.save_model(model, str(directory / name))
    params = supernet.count_params(config)
    onnx_params = onnx_param_count(model)
    return {
        "file": name,
        "space": supernet.name,
        "config": config,
        "params": params,
        "onnx_params": onnx_params,
        "macs": supernet.count_macs(config, shape),
        "shape": shape,
        "opset": OPSET,
        "onnx_checker": "passed",
        "parity_max_abs_diff": parity,
        "export_seconds": round(export_seconds, 3),
    }


def copy_deployment_files(supernet: Supernet, directory: Path) -> list[str]:
    """Copy the supernet's :meth:`~hwnas.supernets.base.Supernet.deployment_files` (e.g. a
    tokenizer) into ``directory``; their names, sorted."""
    names = []
    for name, source in sorted(supernet.deployment_files().items()):
        shutil.copyfile(source, directory / name)
        names.append(name)
    return names


def export_configs(
    supernet: Supernet,
    configs: Sequence[Config],
    out: Path,
    shape: Shape | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export configurations (checked and parity-verified only) into a new directory ``out``
    with ``manifest.json``; atomic. :func:`deploy` also measures latency and accuracy.

    Returns:
        The manifest (also written to ``out/manifest.json``).
    """
    out = Path(out)
    check_export_dir(out)
    configs = [supernet.space.validate(c) for c in configs]
    with terminate_as_interrupt(), staged_output(out, EXPORT_KIND) as staging:
        models = [export_one(supernet, c, staging, shape) for c in configs]
        files = copy_deployment_files(supernet, staging)
        manifest = {**_manifest_head(supernet), "models": models, "files": files, **(extra or {})}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def deploy(
    supernet: Supernet,
    items: Sequence[dict[str, Any]],
    out: Path,
    *,
    measurement: Measurement,
    profiles: Sequence[ProfileRef] = (),
    accuracy: AccuracySource | None = None,
    int8: bool = False,
    extra: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Export, verify, time and evaluate each item into the new directory ``out``; atomic.

    Args:
        supernet: the supernet (with its trained weights when it has some).
        items: ``{"config": ..., **fields copied into the model's entry}``, e.g. the run index
            and the objectives a search recorded (``"objectives"``: a profile's prediction falls
            back to ``objectives[<its latency objective>]`` when the profile file is missing).
        out: new or empty output directory.
        measurement: how latency is measured here (:func:`measurement_for`).
        profiles: profiles whose predictions are recorded beside the measurement.
        accuracy: where test accuracy comes from (:func:`accuracy_source`); None: none.
        int8: also write and verify an INT8 variant of each model.
        extra: more top-level manifest fields.
        progress: called with a one-line message before each step.

    Returns:
        The manifest (also written to ``out/manifest.json``); see :func:`export_run` for fields.
    """
    say = progress or (lambda message: None)
    out = Path(out)
    check_export_dir(out)
    accuracy = accuracy or AccuracySource(note="accuracy not requested")
    configs = [supernet.space.validate(item["config"]) for item in items]
    started = time.perf_counter()
    warnings: list[str] = [f"profile {p.label!r}: this machine differs from the profiled device: "
                           f"{'; '.join(p.differences)}" for p in profiles if p.differences]
    warnings += [f"profile {p.label!r}: {p.note}" for p in profiles if p.note]
    warnings += [p.predictor.profile.noise_warning() for p in profiles
                 if p.predictor is not None and p.predictor.profile.noise_warning()]
    with terminate_as_interrupt(), staged_output(out, EXPORT_KIND) as staging:
        models = []
        for number, (item, config) in enumerate(zip(items, configs), 1):
            tag = f"[{number}/{len(items)}]"
            say(f"{tag} export + parity check {json.dumps(config, separators=(',', ':'))}")
            entry = export_one(supernet, config, staging, measurement.shape)
            entry.update({k: v for k, v in item.items() if k != "config"})
            path = staging / entry["file"]
            entry["size_bytes"] = path.stat().st_size
            say(f"{tag} timing FP32 ({measurement.ep}, {measurement.threads} "
                f"thread{'s' if measurement.threads > 1 else ''})")
            feeds = supernet.example_inputs(measurement.shape)
            timing = time_onnx(path, feeds, measurement)
            entry["measured"] = timing.to_dict()
            entry["measured_ms"] = timing.median_ms
            entry["predicted_ms"] = _predictions(config, item, profiles, "fp32")
            entry["prediction_error"] = {label: (ms - timing.median_ms) / timing.median_ms
                                         for label, ms in entry["predicted_ms"].items() if ms is not None}
            fp32_pred = None
            entry["test_accuracy"] = entry["evaluator_test_accuracy"] = None
            if accuracy.split is not None or accuracy.evaluator is not None:
                say(f"{tag} test accuracy")
            if accuracy.split is not None:
                fp32_pred = onnx_predictions(accuracy_session(path, measurement.threads), accuracy.split,
                                             accuracy.batch)
                entry["test_accuracy"] = split_accuracy(fp32_pred, accuracy.split)
            if accuracy.evaluator is not None:
                value = accuracy.evaluator.test_accuracy([config])
                entry["evaluator_test_accuracy"] = None if value is None else float(value[0])
                if entry["test_accuracy"] is None:
                    entry["test_accuracy"] = entry["evaluator_test_accuracy"]
            both = (entry["test_accuracy"], entry["evaluator_test_accuracy"])
            if fp32_pred is not None and both[1] is not None and abs(both[0] - both[1]) > 0.005:
                warnings.append(f"{entry['file']}: ONNX test accuracy {both[0]:.4f} differs from the "
                                f"evaluator's {both[1]:.4f} by more than 0.005")
            entry["int8"] = None
            if int8:
                entry["int8"] = _int8_variant(supernet, config, path, staging, entry, measurement, accuracy,
                                              fp32_pred, say, tag)
                entry["int8"]["predicted_ms"] = _predictions(config, item, profiles, "int8")
                entry["int8"]["prediction_error"] = {
                    label: (ms - entry["int8"]["measured_ms"]) / entry["int8"]["measured_ms"]
                    for label, ms in entry["int8"]["predicted_ms"].items() if ms is not None}
            models.append(entry)
        manifest = {
            **_manifest_head(supernet),
            **(extra or {}),
            "measurement": measurement.describe(),
            "profiles": [p.describe_for_export() for p in profiles],
            "accuracy": accuracy.describe(),
            "int8": INT8_METHOD if int8 else None,
            "warnings": warnings,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "models": models,
            "files": copy_deployment_files(supernet, staging),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _precision(profile: ProfileRef) -> str:
    """The precision a profile was measured at (FP32 when its file is not there to say)."""
    return profile.predictor.profile.precision if profile.predictor is not None else "fp32"


def _predictions(config: Config, item: dict[str, Any], profiles: Sequence[ProfileRef],
                 precision: str) -> dict[str, float | None]:
    """Each ``precision`` profile's predicted ms of ``config``, by label (an FP32 model is
    compared with FP32 profiles, its INT8 variant with INT8 profiles)."""
    recorded = item.get("objectives") or {}
    out: dict[str, float | None] = {}
    for p in profiles:
        if _precision(p) != precision:
            continue
        if p.predictor is not None:
            out[p.label] = float(p.predictor.predict([config])[0])
        else:
            value = recorded.get(p.objective)
            out[p.label] = None if value is None else float(value)
    return out


def _int8_variant(supernet: Supernet, config: Config, fp32_path: Path, staging: Path, entry: dict[str, Any],
                  measurement: Measurement, accuracy: AccuracySource, fp32_pred: np.ndarray | None,
                  say: ProgressFn, tag: str) -> dict[str, Any]:
    say(f"{tag} INT8 quantization + timing")
    name = int8_file_name(entry["file"])
    quantize_int8(fp32_path, staging / name, {
        "hwnas.space": supernet.name,
        "hwnas.config": json.dumps(config, sort_keys=True),
        "hwnas.version": hwnas.__version__,
        "hwnas.variant": "int8-dynamic",
    })
    path = staging / name
    session = accuracy_session(path, measurement.threads)
    difference = output_difference(session, accuracy_session(fp32_path, measurement.threads),
                                   supernet.parity_inputs(measurement.shape))
    timing = time_onnx(path, supernet.example_inputs(measurement.shape), measurement)
    variant: dict[str, Any] = {
        "file": name,
        "size_bytes": path.stat().st_size,
        "onnx_checker": "passed",
        "max_abs_diff_vs_fp32": difference,
        "measured": timing.to_dict(),
        "measured_ms": timing.median_ms,
        "speedup_vs_fp32": entry["measured_ms"] / timing.median_ms,
        "test_accuracy": None,
        "test_agreement_with_fp32": None,
    }
    if accuracy.split is not None:
        pred = onnx_predictions(session, accuracy.split, accuracy.batch)
        variant["test_accuracy"] = split_accuracy(pred, accuracy.split)
        if fp32_pred is not None:
            variant["test_agreement_with_fp32"] = float(np.mean(pred == fp32_pred))
    return variant


def export_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    top: int | None = None,
    space: str | None = None,
    plugin: str | None = None,
    int8: bool = False,
    ep: str | None = None,
    threads: int | None = None,
    evaluator: Any = "auto",
    supernet: Supernet | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Export the validated Pareto front of a complete run (all of it, or ``top`` points spread
    along it, see :func:`spread_along_front`) as verified ONNX models into the new directory
    ``out``. Everything is checked before any work: the run (:func:`hwnas.search.store.read_run`), ``--space``,
    ``--top``, the output directory.

    ``out/manifest.json`` (schema ``hwnas-export/1``):

    * ``schema``, ``hwnas_version``, ``space``, ``created`` (ISO 8601 UTC): provenance.
    * ``source``: ``{"kind": "run", "run": absolute run dir, "algo", "seed", "evals",
      "objectives": [{"name", "maximize", "unit"}], "front_size", "selection": {"top",
      "method", "front_positions"}}``; ``{"kind": "configs"}`` for ``--space/--config``.
    * ``measurement``: how latency was measured here: ``ep``, ``threads`` (intra-op),
      ``shape`` (``batch``, ``seq_len``), ``policy`` (warm-up, repeats, ``calibration_min_seconds``
      of timed runs), ``device_id`` and ``device`` (this machine's fingerprint), ``runner``.
    * ``profiles``: per profile of the run: ``label``, ``objective``, ``path``, ``device_id``,
      ``same_device`` (this machine is the profiled one), ``differences``, ``calibration``, ``note``.
    * ``accuracy``: ``method`` (ONNX Runtime on the test split, or Evaluator.test_accuracy, or
      null), ``evaluator`` (its description), ``task``, ``task_seed``, ``examples``, ``note``.
    * ``int8``: the quantization settings, or null without ``--int8``.
    * ``warnings``: e.g. profiled on another device; ONNX and evaluator accuracy disagree.
    * ``wall_seconds``: time of the whole export (s).
    * ``models[]``, one per exported configuration, in front order:
      ``file`` (FP32 ONNX), ``config``, ``params`` (analytic) and ``onnx_params`` (sum of
      initializers, equal), ``macs`` (at ``shape``), ``shape``, ``opset``, ``onnx_checker``,
      ``parity_max_abs_diff`` (ORT vs PyTorch, ≤ 1e-4), ``export_seconds``, ``size_bytes``;
      ``run_index`` (row of evaluations.jsonl), ``front_position`` (0-based, in pareto.json),
      ``objectives`` (as the run validated them, natural units; accuracy there is the
      validation split's); ``measured`` (Timing: ``median_ms``, ``q1_ms``, ``q3_ms``,
      ``p90_ms``, ``min_ms``, ``repeats``, ``warmup``, ``run_seconds``) and ``measured_ms``
      (its median); ``predicted_ms`` ({profile label: ms}, FP32 profiles) and ``prediction_error``
      ({label: (predicted − measured) / measured}); ``test_accuracy`` (fraction in [0, 1],
      see ``accuracy.method``) and ``evaluator_test_accuracy`` (PyTorch weight-sharing
      evaluator, the cross-check); ``int8``: null or ``{file, size_bytes, onnx_checker,
      max_abs_diff_vs_fp32 (logits on the parity inputs), measured, measured_ms,
      speedup_vs_fp32 (FP32 median / INT8 median, measured in this run), test_accuracy
      (ONNX Runtime, test split), test_agreement_with_fp32 (fraction of test examples
      classified as the FP32 model does), predicted_ms and prediction_error (as above, for the
      INT8 profiles of the run: ``hwnas profile --precision int8``)}``.

    Raises:
        InputError: missing, incomplete or other-space run; bad ``top``; ``out`` not new/empty.
    """
    out = Path(out)
    if top is not None:
        top = check_int("--top", top, 1)
    run = read_run(run_dir, space=space, require_complete=True)
    check_export_dir(out)
    with exclusive(out), terminate_as_interrupt():  # one writer per output, from the start
        return _export_run(run, out, top=top, plugin=plugin, int8=int8, ep=ep, threads=threads,
                           evaluator=evaluator, supernet=supernet, progress=progress)


def _export_run(run: Any, out: Path, *, top: int | None, plugin: str | None, int8: bool, ep: str | None,
                threads: int | None, evaluator: Any, supernet: Supernet | None,
                progress: ProgressFn | None) -> dict[str, Any]:
    from hwnas.supernets.registry import get_supernet

    if not run.front:
        raise InputError(f"run {str(run.path)!r} has an empty Pareto front; nothing to export")
    recorded = run.meta.get("plugin")
    if supernet is None and recorded and plugin is None:
        # A shared or downloaded run directory must not choose the code hwnas imports.
        raise InputError(f"run {str(run.path)!r} was made with the plug-in {recorded!r}; name it on the command "
                         f"line to export it (--supernet {recorded}): hwnas never imports a plug-in that a run "
                         "directory names")
    if supernet is None and recorded and plugin != recorded:
        raise InputError(f"--supernet {plugin!r} is not the plug-in the run {str(run.path)!r} was made with "
                         f"({recorded!r})")
    supernet = supernet or get_supernet(run.space, plugin)
    names = [o["name"] for o in run.objectives]
    values = run.values(run.front)
    positions = spread_along_front(values, [o["maximize"] for o in run.objectives], top if top else len(run.front))
    items = [{"config": run.front[i]["config"], "run_index": run.front[i]["index"], "front_position": i,
              "objectives": {n: run.front[i]["objectives"].get(n) for n in names}} for i in positions]
    profiles = run_profiles(run.meta.get("profiles") or [], run.path, supernet)
    measurement = measurement_for(supernet, profiles, ep, threads)
    source = {
        "kind": "run",
        "run": str(run.path.resolve()),
        "algo": run.meta.get("algo"),
        "seed": run.meta.get("seed"),
        "evals": run.meta.get("evals"),
        "objectives": run.objectives,
        "front_size": len(run.front),
        "selection": {"top": top, "method": SPREAD_METHOD if top and top < len(run.front) else "whole front",
                      "front_positions": positions},
    }
    return deploy(supernet, items, out, measurement=measurement, profiles=profiles,
                  accuracy=accuracy_source(supernet, evaluator, measurement.shape.get("batch", 1)), int8=int8,
                  extra={"source": source},
                  progress=progress)
