"""Verified export of sub-networks as standalone ONNX models, from configurations or a run.

Each exported model is checked with ``onnx.checker``, run in ONNX Runtime against the extracted
PyTorch module on the same inputs (max abs difference recorded as ``parity_max_abs_diff``, at
most :data:`PARITY_TOLERANCE`), and its weight tensors are summed and compared with the
analytic parameter count. :func:`deploy` adds, per model, the latency measured on this machine
with the profiler's runner (beside each profile's prediction), the test accuracy where the
supernet has an evaluator, and optionally an INT8 variant made by ONNX Runtime's dynamic
quantization. :func:`export_run` does all of that for the Pareto front of a search run.

The export directory is written to a temporary sibling and renamed into place at the end, so a
failed or interrupted export never leaves a directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

import hwnas
from hwnas.errors import InputError
from hwnas.profiling.onnx_export import OPSET, export_onnx
from hwnas.space import Config
from hwnas.supernets.base import Feeds, Shape, Supernet

MANIFEST_SCHEMA = "hwnas-export/1"
PARITY_TOLERANCE = 1e-4


def model_file_name(supernet: Supernet, config: Config) -> str:
    """``<space>-<8 hex of the configuration key>.onnx``: stable per configuration."""
    digest = hashlib.sha256(supernet.space.key(config).encode()).hexdigest()[:8]
    return f"{supernet.name}-{digest}.onnx"


def onnx_param_count(model: onnx.ModelProto) -> int:
    """Number of scalars in the model's initializers (its weight tensors)."""
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))


def parity_inputs(supernet: Supernet, shape: Shape) -> Feeds:
    """Inputs for the parity check: two samples, the second with padding where the space
    has an ``attention_mask`` input, so masking is exercised too."""
    feeds = supernet.example_inputs({**shape, "batch": 2}, seed=1)
    mask = feeds.get("attention_mask")
    if mask is not None and mask.shape[1] > 2:
        mask[1, mask.shape[1] // 2 :] = 0
    return feeds


def verify_parity(model: onnx.ModelProto, module: torch.nn.Module, feeds: Feeds) -> float:
    """Max abs difference between ONNX Runtime (CPU EP) and PyTorch outputs on ``feeds``."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        want = module(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    return float(np.max(np.abs(got - want)))


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
    parity = verify_parity(model, module, parity_inputs(supernet, shape))
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


def prepare_output_dir(out: Path) -> None:
    """Refuse an output directory that exists and holds files (never overwrite a user's files)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {str(out)!r} is not empty; choose a new directory")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise InputError(f"parent directory of --out {str(out)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write to {str(parent)!r}")



@contextmanager
def staging_directory(out: Path) -> Iterator[Path]:
    """Yield a new hidden sibling of ``out`` to write into; rename it to ``out`` on success.

    ``out`` must be new or an empty directory (:func:`prepare_output_dir`). On any error the
    staging directory is removed and ``out`` is left as it was.
    """
    out = Path(out)
    prepare_output_dir(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.resolve().parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; the user expects a normal dir
    try:
        yield staging
        prepare_output_dir(out)  # still new or empty: nothing appeared there meanwhile
        if out.is_dir():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _manifest_head(supernet: Supernet) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "hwnas_version": hwnas.__version__,
        "space": supernet.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


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
    prepare_output_dir(out)
    configs = [supernet.space.validate(c) for c in configs]
    with staging_directory(out) as staging:
        models = [export_one(supernet, c, staging, shape) for c in configs]
        manifest = {**_manifest_head(supernet), "models": models, **(extra or {})}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------------------------------------
# Run directories (contract: hwnas-run/1, written by `hwnas search`)
# ---------------------------------------------------------------------------------------------
RUN_SCHEMA = "hwnas-run/1"


@dataclass
class Run:
    """A search run directory as read from disk.

    Attributes:
        path: the directory.
        meta: ``run.json``.
        evaluations: validated rows of ``evaluations.jsonl`` in file order.
        front: ``pareto.json``'s front (validated, non-dominated), empty when the file is missing.
        hypervolume: ``(evaluations, hypervolume)`` rows of ``hypervolume.csv``.
        problems: why the run is not complete (empty when it is).
    """

    path: Path
    meta: dict[str, Any]
    evaluations: list[dict[str, Any]]
    front: list[dict[str, Any]]
    hypervolume: list[tuple[int, float]]
    problems: list[str]

    @property
    def space(self) -> str:
        return str(self.meta["space"])

    @property
    def objectives(self) -> list[dict[str, Any]]:
        """``[{"name", "maximize", "unit"}, ...]`` in the run's order."""
        return list(self.meta["objectives"])

    @property
    def complete(self) -> bool:
        return not self.problems

    def values(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Objective values float64 [len(rows), M] in natural units, run objective order
        (NaN where a row lacks one)."""
        names = [o["name"] for o in self.objectives]
        return np.array([[float(r["objectives"].get(n, math.nan)) for n in names] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(names))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {str(path)!r} is not valid JSON ({exc.msg}, line {exc.lineno})") from None


def read_run(path: str | os.PathLike, *, space: str | None = None, require_complete: bool = True) -> Run:
    """Read and check a run directory.

    Args:
        path: the run directory (``hwnas search --out``).
        space: when given, the space the run must be of.
        require_complete: refuse a run that is still running, was killed, or lacks its front.

    Raises:
        InputError: the directory or its ``run.json`` is missing or corrupt, the run is of
            another space, or (``require_complete``) it is incomplete: ``status`` is not
            ``"complete"``, ``evaluations.jsonl`` has fewer validated rows than ``evals``, or
            ``pareto.json`` is missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"run directory {str(path)!r} does not exist")
    if not (path / "run.json").is_file():
        raise InputError(f"{str(path)!r} is not a run directory (no run.json)")
    meta = _read_json(path / "run.json", "run file")
    if not isinstance(meta, dict) or meta.get("schema") != RUN_SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{str(path / 'run.json')!r} has schema {found!r}; this hwnas reads {RUN_SCHEMA!r}")
    try:
        run_space, evals = str(meta["space"]), int(meta["evals"])
        objectives = [{"name": str(o["name"]), "maximize": bool(o["maximize"]), "unit": str(o.get("unit", ""))}
                      for o in meta["objectives"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{str(path / 'run.json')!r} is corrupt: missing or bad field {exc}") from None
    if not objectives:
        raise InputError(f"{str(path / 'run.json')!r} lists no objectives")
    meta = {**meta, "objectives": objectives}
    if space is not None and run_space != space:
        raise InputError(f"run {str(path)!r} is of space {run_space!r}, not --space {space!r}")

    problems: list[str] = []
    if meta.get("status") != "complete":
        problems.append(f"status is {meta.get('status')!r}")
    evaluations: list[dict[str, Any]] = []
    seen: set[int] = set()
    rows_path = path / "evaluations.jsonl"
    lines = rows_path.read_text().splitlines() if rows_path.is_file() else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            index = int(row["index"])
            dict(row["config"]), dict(row["objectives"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if number == len(lines):  # the last row of a killed search may be cut short
                problems.append("the last row of evaluations.jsonl is truncated")
                break
            raise InputError(f"{str(rows_path)!r} line {number} is corrupt") from None
        if row.get("validated", True) and index not in seen:
            seen.add(index)
            evaluations.append(row)
    # A search whose algorithm ran out of configurations to try ends complete with fewer rows.
    ran_out = meta.get("status") == "complete" and meta.get("stop_reason") == "nothing left to try"
    if len(evaluations) < evals and not ran_out:
        problems.append(f"{len(evaluations)} of {evals} evaluations in evaluations.jsonl")

    front: list[dict[str, Any]] = []
    if (path / "pareto.json").is_file():
        pareto = _read_json(path / "pareto.json", "Pareto file")
        try:
            front = [{"index": int(p["index"]), "config": dict(p["config"]), "objectives": dict(p["objectives"])}
                     for p in pareto["front"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{str(path / 'pareto.json')!r} is corrupt: missing or bad field {exc}") from None
    else:
        problems.append("pareto.json is missing")

    hypervolume: list[tuple[int, float]] = []
    hv_path = path / "hypervolume.csv"
    if hv_path.is_file():
        for line in hv_path.read_text().splitlines()[1:]:
            parts = line.strip().split(",")
            try:
                hypervolume.append((int(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                continue  # a header repeated or a half-written last line
    run = Run(path, meta, evaluations, front, hypervolume, problems)
    if require_complete and problems:
        raise InputError(f"run {str(path)!r} is incomplete ({'; '.join(problems)}); "
                         "let `hwnas search` finish or resume it first")
    return run


def spread_along_front(values: np.ndarray, maximize: Sequence[bool], k: int) -> list[int]:
    """Pick ``k`` points spread along a front (farthest-point sampling).

    Objectives are oriented to be minimised and scaled to [0, 1] over the front. The first
    picks are the two ends of the front along the first objective (its best and its worst
    point); each further pick is the point farthest (Euclidean, scaled) from every point picked
    so far; ties go to the lower index. Deterministic.

    Args:
        values: float64 [N, M] objective values of the front, natural units.
        maximize: per objective, whether it is maximised.
        k: how many to pick (all when ``k >= N``).
    Returns:
        Sorted row indices into ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if k >= n:
        return list(range(n))
    if k < 1:
        raise InputError(f"--top must be at least 1, got {k}")
    oriented = np.where(np.asarray(maximize, dtype=bool), -values, values)
    lo, hi = oriented.min(axis=0), oriented.max(axis=0)
    scaled = (oriented - lo) / np.where(hi > lo, hi - lo, 1.0)
    picked = [int(np.argmin(scaled[:, 0]))]
    worst = int(np.argmax(scaled[:, 0]))
    if k > 1 and worst != picked[0]:
        picked.append(worst)
    while len(picked) < k:
        dist = np.min(np.linalg.norm(scaled[:, None, :] - scaled[None, picked, :], axis=2), axis=1)
        dist[picked] = -1.0
        picked.append(int(np.argmax(dist)))
    return sorted(picked)


SPREAD_METHOD = ("farthest-point sampling in objective space scaled to [0, 1] over the front, "
                 "starting from both ends of the front along the first objective")


# ---------------------------------------------------------------------------------------------
# Latency: predicted (profiles) and measured (this machine)
# ---------------------------------------------------------------------------------------------
@dataclass
class ProfileRef:
    """One profile of a run and what predicts with it.

    Attributes:
        label: the run's label of the profile.
        objective: the run's objective name for it (``latency`` or ``latency:<label>``).
        path: the profile file, resolved; None when it was not found.
        predictor: its latency predictor (None when the file was not found).
        device_id: the profiled device's id.
        differences: how this machine differs from the profiled device (empty: the same).
        note: what happened, e.g. that predictions come from the run because the file is missing.
    """

    label: str
    objective: str
    path: Path | None = None
    predictor: Any = None
    device_id: str | None = None
    differences: list[str] = field(default_factory=list)
    note: str | None = None

    def describe(self) -> dict[str, Any]:
        p = self.predictor
        return {
            "label": self.label,
            "objective": self.objective,
            "path": str(self.path) if self.path else None,
            "device_id": self.device_id,
            "same_device": (not self.differences) if p is not None else None,
            "differences": self.differences,
            "calibration": (p.choice.name if p is not None and p.choice else None),
            "note": self.note,
        }


def _resolve_profile(raw: str, run_dir: Path) -> Path | None:
    candidate = Path(raw)
    options = [candidate] if candidate.is_absolute() else [Path.cwd() / candidate, run_dir / candidate,
                                                          run_dir.parent / candidate]
    return next((p.resolve() for p in options if p.is_file()), None)


def run_profiles(run: Run, supernet: Supernet) -> list[ProfileRef]:
    """The run's profiles with their predictors (missing files noted, not fatal)."""
    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile

    entries = list(run.meta.get("profiles") or [])
    refs: list[ProfileRef] = []
    for entry in entries:
        label = str(entry.get("label") or Path(str(entry.get("path", "profile"))).stem)
        objective = "latency" if len(entries) == 1 else f"latency:{label}"
        ref = ProfileRef(label, objective, device_id=entry.get("device_id"))
        path = _resolve_profile(str(entry.get("path", "")), run.path) if entry.get("path") else None
        if path is None:
            ref.note = f"profile {entry.get('path')!r} not found; predicted ms taken from the run's objective values"
        else:
            ref.path = path
            ref.predictor = LatencyPredictor(load_profile(path, space=supernet.name), supernet)
            ref.device_id = ref.predictor.profile.device.get("id", ref.device_id)
            ref.differences = ref.predictor.device_warnings()
            if entry.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                ref.note = "profile file changed since the search; predicted ms are from the file as it is now"
        refs.append(ref)
    return refs


@dataclass(frozen=True)
class Measurement:
    """How exported models are timed here: execution provider, intra-op threads, input shape
    (``{"batch", "seq_len"}``) and the profiler's policy (warm-up, repeats, and
    ``calibration_min_seconds`` of timed runs per model, as for a profile's whole sub-networks)."""

    ep: str
    threads: int
    shape: Shape
    policy: Any  # hwnas.profiling.profiler.MeasurePolicy

    def describe(self) -> dict[str, Any]:
        from hwnas.profiling.fingerprint import device_fingerprint, device_id

        fingerprint = device_fingerprint(self.ep, self.threads)
        return {"ep": self.ep, "threads": self.threads, "shape": self.shape, "policy": asdict(self.policy),
                "device_id": device_id(fingerprint), "device": fingerprint,
                "runner": "hwnas.profiling.timing.time_session (IOBinding, sequential, ORT_ENABLE_ALL)"}


def measurement_for(supernet: Supernet, profiles: Sequence[ProfileRef], ep: str | None = None,
                    threads: int | None = None) -> Measurement:
    """Timing settings: those of the first loaded profile (so measured and predicted ms are
    comparable), overridden by ``ep`` / ``threads``; without a profile: CPU, physical cores,
    the supernet's default shape and the default policy."""
    from hwnas.profiling.profiler import MeasurePolicy, resolve_threads
    from hwnas.profiling.timing import check_ep

    loaded = next((p.predictor.profile for p in profiles if p.predictor is not None), None)
    policy = MeasurePolicy()
    shape = supernet.resolve_shape(None)
    if loaded is not None:
        known = {f.name for f in fields(MeasurePolicy)}
        policy = MeasurePolicy(**{k: v for k, v in dict(loaded.settings.get("policy") or {}).items() if k in known})
        shape = supernet.resolve_shape(loaded.shape)
        ep = ep or loaded.ep
        threads = threads or int(loaded.settings["threads"])
    ep = ep or "cpu"
    try:
        check_ep(ep)
    except InputError as exc:
        raise InputError(f"{exc} (the profile was measured on {ep!r}; pass --ep cpu to time on the CPU)") from None
    return Measurement(ep, resolve_threads(threads), shape, policy)


def time_onnx(model: str | os.PathLike | bytes, feeds: Feeds, measurement: Measurement):
    """Time one ONNX model with the profiler's runner and policy (as
    :func:`hwnas.profiling.profiler.measure_subnet` does, on this file). Returns a Timing."""
    from hwnas.profiling.profiler import time_whole_model

    return time_whole_model(model, feeds, ep=measurement.ep, threads=measurement.threads, policy=measurement.policy)


# ---------------------------------------------------------------------------------------------
# Accuracy on the test split
# ---------------------------------------------------------------------------------------------
@dataclass
class AccuracySource:
    """Where test accuracy comes from.

    ``split`` set: the exported ONNX file itself is run in ONNX Runtime (CPU) over the
    evaluator's test split (``evaluator.task.test``, the built-in task) in batches of ``batch``
    examples — the deployment batch size, because INT8 dynamic quantization computes its
    activation scales over the whole batch, so its accuracy depends on the batching — and
    ``evaluator.test_accuracy`` of the PyTorch sub-network is recorded beside it as a cross-check.
    ``split`` None but an evaluator: ``evaluator.test_accuracy`` only (plug-ins). Neither: no
    accuracy, ``note`` says why.
    """

    evaluator: Any = None
    split: Any = None  # hwnas.evaluation.task.Split
    note: str | None = None
    batch: int = 1

    def describe(self) -> dict[str, Any]:
        if self.split is not None:
            method = "onnxruntime on the test split (the exported file itself)"
        elif self.evaluator is not None:
            method = "Evaluator.test_accuracy (PyTorch, the supernet's own test split)"
        else:
            method = None
        task = getattr(self.evaluator, "task", None)
        return {"method": method,
                "evaluator": getattr(self.evaluator, "description", None),
                "task": getattr(task, "name", None), "task_seed": getattr(task, "seed", None),
                "examples": len(self.split) if self.split is not None else None,
                "batch": self.batch if self.split is not None else None,
                "note": self.note}


def accuracy_source(supernet: Supernet, evaluator: Any = "auto", batch: int = 1) -> AccuracySource:
    """The accuracy source for ``supernet``: ``evaluator="auto"`` asks
    :func:`hwnas.evaluation.accuracy.get_evaluator`; None turns accuracy off; any object with
    the Evaluator protocol is used as given. ``batch``: examples per ONNX Runtime call (use the
    deployment batch, ``measurement.shape["batch"]``)."""
    note = None
    if isinstance(evaluator, str) and evaluator == "auto":
        try:
            from hwnas.evaluation.accuracy import get_evaluator
            evaluator = get_evaluator(supernet)
        except ImportError:
            evaluator, note = None, "no accuracy evaluator in this installation"
        except InputError as exc:
            evaluator, note = None, str(exc)
    elif evaluator is None:
        note = "accuracy not requested"
    task = getattr(evaluator, "task", None)
    split = getattr(task, "test", None)
    if split is not None and split_feeds(supernet, split, slice(0, 1)) is None:
        split = None
    return AccuracySource(evaluator, split, note, batch)


def split_feeds(supernet: Supernet, split: Any, rows: slice) -> Feeds | None:
    """The exported model's inputs for ``rows`` of a split (``token_type_ids`` zero when the
    split has none), or None when the split lacks one of the model's inputs."""
    feeds: Feeds = {}
    for name in supernet.input_names:
        value = getattr(split, name, None)
        if value is None and name == "token_type_ids":
            value = np.zeros_like(split.input_ids)
        if value is None:
            return None
        feeds[name] = np.ascontiguousarray(value[rows], dtype=np.int64)
    return feeds


def onnx_predictions(session: ort.InferenceSession, supernet: Supernet, split: Any, batch: int = 1) -> np.ndarray:
    """Predicted class of every example of ``split`` by an ONNX session, int64 [N]."""
    out = []
    for start in range(0, len(split), batch):
        feeds = split_feeds(supernet, split, slice(start, start + batch))
        out.append(np.argmax(session.run(None, feeds)[0], axis=-1))
    return np.concatenate(out).astype(np.int64)


def _accuracy_session(path: Path, threads: int) -> ort.InferenceSession:
    from hwnas.profiling.timing import make_session

    return make_session(path, "cpu", threads)


# ---------------------------------------------------------------------------------------------
# INT8
# ---------------------------------------------------------------------------------------------
INT8_METHOD = {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
               "per_channel": False, "reduce_range": False,
               "activations": "quantized dynamically per tensor at run time (uint8)"}


def int8_file_name(fp32_name: str) -> str:
    """``<space>-<hash>.int8.onnx`` beside ``<space>-<hash>.onnx``."""
    return fp32_name[: -len(".onnx")] + ".int8.onnx"


def quantize_int8(fp32_path: Path, int8_path: Path, metadata: dict[str, str]) -> onnx.ModelProto:
    """Dynamic INT8 quantization of an ONNX model (weights QInt8, activations at run time),
    with ``metadata`` written into its metadata props and ``onnx.checker`` run on the result."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint
    try:
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, per_channel=False)
    finally:
        logging.getLogger().setLevel(quiet)
    model = onnx.load(str(int8_path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(metadata)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save_model(model, str(int8_path))
    return model


# ---------------------------------------------------------------------------------------------
# Deploy: export + verify + measure + accuracy (+ INT8)
# ---------------------------------------------------------------------------------------------
ProgressFn = Callable[[str], None]


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
    prepare_output_dir(out)
    accuracy = accuracy or AccuracySource(note="accuracy not requested")
    configs = [supernet.space.validate(item["config"]) for item in items]
    started = time.perf_counter()
    warnings: list[str] = [f"profile {p.label!r}: this machine differs from the profiled device: "
                           f"{'; '.join(p.differences)}" for p in profiles if p.differences]
    warnings += [f"profile {p.label!r}: {p.note}" for p in profiles if p.note]
    with staging_directory(out) as staging:
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
            entry["predicted_ms"] = _predictions(config, item, profiles)
            entry["prediction_error"] = {label: (ms - timing.median_ms) / timing.median_ms
                                         for label, ms in entry["predicted_ms"].items() if ms is not None}
            fp32_pred = None
            entry["test_accuracy"] = entry["evaluator_test_accuracy"] = None
            if accuracy.split is not None or accuracy.evaluator is not None:
                say(f"{tag} test accuracy")
            if accuracy.split is not None:
                fp32_pred = onnx_predictions(_accuracy_session(path, measurement.threads), supernet,
                                             accuracy.split, accuracy.batch)
                entry["test_accuracy"] = float(np.mean(fp32_pred == accuracy.split.labels))
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
            models.append(entry)
        manifest = {
            **_manifest_head(supernet),
            **(extra or {}),
            "measurement": measurement.describe(),
            "profiles": [p.describe() for p in profiles],
            "accuracy": accuracy.describe(),
            "int8": INT8_METHOD if int8 else None,
            "warnings": warnings,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "models": models,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _predictions(config: Config, item: dict[str, Any], profiles: Sequence[ProfileRef]) -> dict[str, float | None]:
    recorded = item.get("objectives") or {}
    out: dict[str, float | None] = {}
    for p in profiles:
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
    parity_feeds = parity_inputs(supernet, measurement.shape)
    session = _accuracy_session(path, measurement.threads)
    got = session.run(None, parity_feeds)[0]
    want = _accuracy_session(fp32_path, measurement.threads).run(None, parity_feeds)[0]
    timing = time_onnx(path, supernet.example_inputs(measurement.shape), measurement)
    variant: dict[str, Any] = {
        "file": name,
        "size_bytes": path.stat().st_size,
        "onnx_checker": "passed",
        "max_abs_diff_vs_fp32": float(np.max(np.abs(got - want))),
        "measured": timing.to_dict(),
        "measured_ms": timing.median_ms,
        "speedup_vs_fp32": entry["measured_ms"] / timing.median_ms,
        "test_accuracy": None,
        "test_agreement_with_fp32": None,
    }
    if accuracy.split is not None:
        pred = onnx_predictions(session, supernet, accuracy.split, accuracy.batch)
        variant["test_accuracy"] = float(np.mean(pred == accuracy.split.labels))
        if fp32_pred is not None:
            variant["test_agreement_with_fp32"] = float(np.mean(pred == fp32_pred))
    return variant


# ---------------------------------------------------------------------------------------------
# Export from a run
# ---------------------------------------------------------------------------------------------
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
    ``out``. Everything is checked before any work: the run (:func:`read_run`), ``--space``,
    ``--top``, the output directory.

    ``out/manifest.json`` (schema ``hwnas-export/1``):

    * ``schema``, ``hwnas_version``, ``space``, ``created`` (ISO 8601): provenance.
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
      (its median); ``predicted_ms`` ({profile label: ms}) and ``prediction_error``
      ({label: (predicted − measured) / measured}); ``test_accuracy`` (fraction in [0, 1],
      see ``accuracy.method``) and ``evaluator_test_accuracy`` (PyTorch weight-sharing
      evaluator, the cross-check); ``int8``: null or ``{file, size_bytes, onnx_checker,
      max_abs_diff_vs_fp32 (logits on the parity inputs), measured, measured_ms,
      speedup_vs_fp32 (FP32 median / INT8 median, measured in this run), test_accuracy
      (ONNX Runtime, test split), test_agreement_with_fp32 (fraction of test examples
      classified as the FP32 model does)}``.

    Raises:
        InputError: missing, incomplete or other-space run; bad ``top``; ``out`` not new/empty.
    """
    from hwnas.supernets.registry import get_supernet

    out = Path(out)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise InputError(f"--top must be a positive integer, got {top!r}")
    run = read_run(run_dir, space=space, require_complete=True)
    prepare_output_dir(out)
    if not run.front:
        raise InputError(f"run {str(run.path)!r} has an empty Pareto front; nothing to export")
    plugin = plugin if plugin is not None else run.meta.get("plugin")
    supernet = supernet or get_supernet(run.space, plugin)
    names = [o["name"] for o in run.objectives]
    values = run.values(run.front)
    positions = spread_along_front(values, [o["maximize"] for o in run.objectives], top if top else len(run.front))
    items = [{"config": run.front[i]["config"], "run_index": run.front[i]["index"], "front_position": i,
              "objectives": {n: run.front[i]["objectives"].get(n) for n in names}} for i in positions]
    profiles = run_profiles(run, supernet)
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
