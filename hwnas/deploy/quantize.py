"""INT8 variants of exported models: ONNX Runtime's dynamic quantization
(:func:`hwnas.profiling.precision.quantize_dynamic_int8`, shared with INT8 profiles)."""

from __future__ import annotations

from pathlib import Path

import onnx

from hwnas.profiling.precision import INT8_METHOD, quantize_dynamic_int8

__all__ = ["INT8_METHOD", "int8_file_name", "quantize_int8"]


def int8_file_name(fp32_name: str) -> str:
    """``<space>-<hash>.int8.onnx`` beside ``<space>-<hash>.onnx``."""
    return fp32_name[: -len(".onnx")] + ".int8.onnx"


def quantize_int8(fp32_path: Path, int8_path: Path, metadata: dict[str, str]) -> onnx.ModelProto:
    """Dynamic INT8 quantization of an ONNX model (weights QInt8, activations at run time),
    with ``metadata`` written into its metadata props and ``onnx.checker`` run on the result."""
    quantize_dynamic_int8(fp32_path, int8_path)  # the profiler's INT8 blocks are made the same way
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
