"""Checks that an exported ONNX model is the PyTorch sub-network it came from."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

Feeds = dict[str, np.ndarray]

#: Largest max abs difference between ONNX Runtime and PyTorch outputs an export may have.
PARITY_TOLERANCE = 1e-4


def onnx_param_count(model: onnx.ModelProto) -> int:
    """Number of scalars in the model's initializers (its weight tensors)."""
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))


def verify_parity(model: onnx.ModelProto, module: torch.nn.Module, feeds: Feeds) -> float:
    """Max abs difference between ONNX Runtime (CPU EP) and PyTorch outputs on ``feeds`` (inputs
    in the forward's argument order, e.g. ``Supernet.parity_inputs(shape)``), over every output
    of a module that returns several (infinite when their number or shapes differ)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    with torch.no_grad():
        out = module(*(torch.from_numpy(v) for v in feeds.values()))
    want = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
        return float("inf")
    return max(float(np.max(np.abs(g - w))) if w.size else 0.0 for g, w in zip(got, want))


def output_difference(a: ort.InferenceSession, b: ort.InferenceSession, feeds: Feeds) -> float:
    """Max abs difference between two sessions' outputs on ``feeds`` (e.g. INT8 vs FP32), over all outputs."""
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a.run(None, feeds), b.run(None, feeds)))
