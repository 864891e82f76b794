"""Deployment: sub-networks as standalone, verified ONNX models, one job per module.

* :mod:`hwnas.onnx_export` (not in this package) traces a module to ONNX: the profiler (blocks)
  and :func:`hwnas.supernets.check_supernet` use it too, so it stands on the ground floor with
  no hwnas import, and every dependency stays one-way.
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
"""
