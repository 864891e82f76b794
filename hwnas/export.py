"""Verified export of sub-networks as standalone ONNX models.

Each exported model is checked with ``onnx.checker``, run in ONNX Runtime against the extracted
PyTorch module on the same inputs (max abs difference recorded as ``parity_max_abs_diff``), and
its weight tensors are summed and compared with the analytic parameter count. The export
directory is written to a temporary sibling and renamed into place at the end, so a failed or
interrupted export never leaves a directory that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

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


def export_configs(
    supernet: Supernet,
    configs: Sequence[Config],
    out: Path,
    shape: Shape | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export configurations into a new directory ``out`` with ``manifest.json``; atomic.

    Returns:
        The manifest (also written to ``out/manifest.json``).
    """
    out = Path(out)
    prepare_output_dir(out)
    configs = [supernet.space.validate(c) for c in configs]
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.resolve().parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; the user expects a normal dir
    try:
        models = [export_one(supernet, c, staging, shape) for c in configs]
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "hwnas_version": hwnas.__version__,
            "space": supernet.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "models": models,
            **(extra or {}),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
