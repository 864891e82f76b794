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
    """Max abs difference between ONNX Runtime (CPU EP) and PyTorch first outputs on ``feeds``
    (inputs in the forward's argument order, e.g. ``Supernet.parity_inputs(shape)``)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        want = module(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    return float(np.max(np.abs(got - want)))


def output_difference(a: ort.InferenceSession, b: ort.InferenceSession, feeds: Feeds) -> float:
    """Max abs difference between two sessions' first outputs on ``feeds`` (e.g. INT8 vs FP32)."""
    return float(np.max(np.abs(a.run(None, feeds)[0] - b.run(None, feeds)[0])))
