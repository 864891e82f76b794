"""Numeric precision of timed models: FP32 as exported, or INT8 by ONNX Runtime's dynamic
quantization — the one quantization both ``hwnas profile --precision int8`` (blocks and
calibration sub-networks) and ``hwnas export --int8`` (deployed models) use, so an INT8 profile
predicts the latency of the INT8 models that ship."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hwnas.errors import InputError

PRECISIONS = ("fp32", "int8")

#: The quantization settings, recorded in export manifests (``int8``) and INT8 profiles.
INT8_METHOD = {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
               "per_channel": False, "reduce_range": False,
               "activations": "quantized dynamically per tensor at run time (uint8)"}


def check_precision(precision: str) -> str:
    """``precision`` if it is one hwnas measures, else InputError naming it."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def quantize_dynamic_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike) -> None:
    """Write the INT8 model of the ONNX file ``fp32_path`` to ``int8_path``: weights QInt8 per
    tensor, activations quantized at run time (:data:`INT8_METHOD`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint
    try:
        quantize_dynamic(Path(fp32_path), Path(int8_path), weight_type=QuantType.QInt8, per_channel=False,
                         reduce_range=False)
    finally:
        logging.getLogger().setLevel(quiet)


def int8_bytes(model: bytes) -> bytes:
    """:func:`quantize_dynamic_int8` of a serialized model, in memory (via a temporary directory)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        quantize_dynamic_int8(src, dst)
        return dst.read_bytes()
