"""INT8 variants of exported models: ONNX Runtime's dynamic quantization."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

#: The quantization settings, recorded in the manifest (``int8``).
INT8_METHOD = {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
               "per_channel": False, "reduce_range": False,
               "activations": "quantized dynamically per tensor at run time (uint8)"}


def int8_file_name(fp32_name: str) -> str:
    """``<space>-<hash>.int8.onnx`` beside ``<space>-<hash>.onnx``."""
    return fp32_name[: -len(".onnx")] + ".int8.onnx"


def quantize_int8(fp32_path: Path, int8_path: Path, metadata: dict[str, str]) -> onnx.ModelProto:
    """Dynamic INT8 quantization of an ONNX model (weights QInt8, activations at run time),
    with ``metadata`` written into its metadata props and ``onnx.checker`` run on the result."""
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
