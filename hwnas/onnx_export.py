"""Export a PyTorch module to an in-memory ONNX model (the one exporter of hwnas: the profiler
times what this writes, and ``hwnas export`` saves it).

Uses the TorchScript-based exporter (``dynamo=False``): on this project's 2-core machine it
exports a BERT-base encoder layer several times faster than the dynamo exporter, and our
modules are plain tensor code that it traces exactly.

A ground-floor module: it imports only torch, onnx and numpy, so the profiler (blocks), the
supernet checks and :mod:`hwnas.deploy` all use it and every dependency stays one-way.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

OPSET = 17


def export_onnx_bytes(
    module: nn.Module,
    feeds: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    *,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = OPSET,
) -> bytes:
    """The serialized ONNX model of ``module`` traced on ``feeds``, as the exporter wrote it.

    For timing only: skips parsing the model back into a ``ModelProto`` and serializing it again,
    which for a 600 MB BERT-large-sized model costs seconds (see :func:`export_onnx`).
    """
    module = module.eval()
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            module,
            args,
            buffer,
            dynamo=False,
            input_names=list(feeds),
            output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
            opset_version=opset,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def export_onnx(
    module: nn.Module,
    feeds: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    *,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """Trace ``module`` on ``feeds`` (inputs in that order) and return the ONNX model.

    Args:
        module: the module to export (put in eval mode here).
        feeds: example inputs by ONNX input name; their order is the forward's argument order.
        output_names: names of the graph outputs.
        dynamic_axes: axes that may vary at run time, e.g. ``{"input_ids": {0: "batch"}}``.
        metadata: key → value stored in the model's metadata_props (non-strings as JSON).
        opset: ONNX opset (≥ 17, for LayerNormalization).
    """
    data = export_onnx_bytes(module, feeds, output_names, dynamic_axes=dynamic_axes, opset=opset)
    model = onnx.load_from_string(data)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return model
