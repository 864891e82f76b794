"""hwnas: hardware-aware latency profiling, multi-objective NAS and verified ONNX deployment."""

__version__ = "0.1.0"
