"""Deployment: sub-networks as standalone, verified ONNX models, one job per module.

* :mod:`~hwnas.deploy.onnx` — trace a module to ONNX (a leaf: torch, onnx, numpy only; the
  profiler uses it too).
* :mod:`~hwnas.deploy.parity` — ONNX Runtime vs PyTorch on the supernet's parity inputs;
  parameter count of an ONNX file.
* :mod:`~hwnas.deploy.quantize` — INT8 dynamic quantization and its file names.
* :mod:`~hwnas.deploy.accuracy` — test accuracy of an ONNX file on a task's test split.
* :mod:`~hwnas.deploy.measure` — how exported models are timed here (the timing itself is in
  :mod:`hwnas.profiling`).
* :mod:`~hwnas.deploy.select` — which points of a Pareto front to export.
* :mod:`~hwnas.deploy.pipeline` — export, verify, time, evaluate into a new directory with
  ``manifest.json`` (``hwnas-export/1``): :func:`~hwnas.deploy.pipeline.export_configs`,
  :func:`~hwnas.deploy.pipeline.deploy`, :func:`~hwnas.deploy.pipeline.export_run`.

This package module imports nothing, so ``hwnas.deploy.onnx`` stays light.
"""
