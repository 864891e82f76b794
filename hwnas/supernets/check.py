"""``check_supernet``: the invariants every supernet must hold, checked on real runs.

Modelled on scikit-learn's ``check_estimator``: run it in a plug-in's own tests. It raises
:class:`SupernetCheckError` naming the first invariant that breaks, the configuration and the
numbers. Checked, for the smallest and the largest configuration of the space and a few seeded
random ones:

1. the protocol: the required methods and attributes are there, ``example_inputs`` gives one
   array per ``input_names`` entry at the requested shape;
2. extraction equals sharing: ``extract(config)(*inputs)`` equals ``forward(inputs, config)``;
3. the analytic parameter count equals the extracted module's (``count_params``), and
   ``count_macs`` is a positive integer;
4. blocks: every key of ``blocks(config)`` is among ``all_blocks``, and ``block_counts`` (the
   vectorised form the latency predictor uses) counts each exactly as ``blocks`` lists it;
5. features: ``feature_matrix`` equals ``features`` row by row;
6. canonical genes: ``from_genes(to_genes(config))`` gives the configuration back;
7. export parity (the smallest configuration, and any listed in ``export_configs``): the ONNX
   export of ``extract(config)``, run in ONNX Runtime on ``parity_inputs``, matches PyTorch within
   ``tolerance``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hwnas.errors import InputError
from hwnas.space import Config
from hwnas.supernets.base import Shape, Supernet

REQUIRED_METHODS = ("forward", "extract", "blocks", "all_blocks", "build_block", "count_params",
                    "count_macs", "example_inputs", "module")
REQUIRED_ATTRIBUTES = ("space", "input_names", "output_names", "default_shape")


class SupernetCheckError(InputError):
    """A supernet breaks one of the protocol's invariants (the message names it)."""


def _extreme(supernet: Supernet, pick: Any) -> Config:
    space = supernet.space
    genes = np.array([pick(range(len(d.choices))) for d in space.dimensions for _ in range(d.n_genes)])
    return space.from_genes(genes)


def _configs(supernet: Supernet, n_random: int, seed: int) -> list[Config]:
    space = supernet.space
    out: list[Config] = []
    for candidate in [_extreme(supernet, min), _extreme(supernet, max), *space.sample(n_random, seed=seed)]:
        if space.is_valid(candidate) and all(space.key(candidate) != space.key(c) for c in out):
            out.append(space.canonical(candidate))
    return out


def _outputs(value: Any) -> list[np.ndarray]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return [t.detach().float().numpy() for t in items]


def _max_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return float("inf")
    return max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(a, b))


def check_supernet(supernet: Supernet, *, shape: Mapping[str, int] | None = None, n_random: int = 3,
                   seed: int = 0, export_configs: Sequence[Config] = (), tolerance: float = 1e-4) -> dict[str, Any]:
    """Check ``supernet`` against the protocol's invariants (see module doc).

    Args:
        supernet: the supernet to check.
        shape: shape settings to run at (default: ``default_shape``; smaller ones run faster).
        n_random: seeded random configurations checked besides the smallest and the largest.
        seed: for the random configurations and inputs.
        export_configs: configurations exported to ONNX besides the smallest.
        tolerance: largest max-abs difference allowed between two computations of one output.
    Returns:
        what was checked: ``{"space", "configs", "shape", "max_diff_extract", "max_diff_onnx"}``.
    Raises:
        SupernetCheckError: naming the first broken invariant.
    """
    name = type(supernet).__name__
    missing = [a for a in REQUIRED_ATTRIBUTES if getattr(supernet, a, None) is None]
    missing += [m for m in REQUIRED_METHODS if not callable(getattr(supernet, m, None))]
    if missing:
        raise SupernetCheckError(f"check_supernet({name}): misses {missing[0]!r}")
    label = f"check_supernet({supernet.space.name})"
    try:
        run_shape: Shape = supernet.resolve_shape(shape)
    except InputError as exc:
        raise SupernetCheckError(f"{label}: {exc}") from None
    configs = _configs(supernet, n_random, seed)
    if not configs:
        raise SupernetCheckError(f"{label}: the space yields no valid configuration")
    inputs = supernet.example_inputs(run_shape, seed=seed)
    if list(inputs) != list(supernet.input_names):
        raise SupernetCheckError(f"{label}: example_inputs gives {list(inputs)}, input_names are "
                                 f"{list(supernet.input_names)} (same names, same order)")
    all_blocks = list(supernet.all_blocks(run_shape))
    genes = np.stack([supernet.space.to_genes(c) for c in configs])
    counts = supernet.block_counts(genes, all_blocks, run_shape)
    features = supernet.feature_matrix(genes)
    worst_extract = 0.0
    for row, config in enumerate(configs):
        text = json.dumps(config, separators=(",", ":"))
        if supernet.space.canonical(supernet.space.from_genes(genes[row])) != config:
            raise SupernetCheckError(f"{label}: from_genes(to_genes(config)) != config for {text}")
        module = supernet.extract(config).eval()
        with torch.no_grad():
            shared = _outputs(supernet.forward(inputs, config))
            alone = _outputs(module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values())))
        diff = _max_diff(shared, alone)
        worst_extract = max(worst_extract, diff)
        if not diff <= tolerance:
            raise SupernetCheckError(f"{label}: extract(config) differs from forward(inputs, config) by "
                                     f"{diff:.3g} (> {tolerance}) for {text}")
        params, counted = supernet.count_params(config), sum(p.numel() for p in module.parameters())
        if params != counted:
            raise SupernetCheckError(f"{label}: count_params = {params} but extract(config) has {counted} "
                                     f"parameters for {text}")
        macs = supernet.count_macs(config, run_shape)
        if isinstance(macs, bool) or not isinstance(macs, (int, np.integer)) or macs <= 0:
            raise SupernetCheckError(f"{label}: count_macs = {macs!r} is not a positive integer for {text}")
        keys = supernet.blocks(config, run_shape)
        unknown = [k for k in keys if k not in all_blocks]
        if unknown:
            raise SupernetCheckError(f"{label}: block {unknown[0]!r} of {text} is not in all_blocks")
        want = Counter(keys)
        got = {k: counts[row, j] for j, k in enumerate(all_blocks) if counts[row, j]}
        if got != {k: float(v) for k, v in want.items()}:
            bad = next(k for k in sorted(set(want) | set(got)) if got.get(k, 0.0) != want.get(k, 0))
            raise SupernetCheckError(f"{label}: block_counts counts {bad!r} {got.get(bad, 0.0):g} times, "
                                     f"blocks lists it {want.get(bad, 0)} times, for {text}")
        one = np.asarray(supernet.features(config), dtype=np.float64)
        if one.shape != features[row].shape or not np.allclose(one, features[row]):
            raise SupernetCheckError(f"{label}: feature_matrix row differs from features(config) for {text}")
    worst_onnx = _check_export(supernet, label, [configs[0], *export_configs], run_shape, tolerance)
    return {"space": supernet.space.name, "configs": configs, "shape": run_shape,
            "max_diff_extract": worst_extract, "max_diff_onnx": worst_onnx}


def _check_export(supernet: Supernet, label: str, configs: Sequence[Config], shape: Shape, tolerance: float) -> float:
    import onnxruntime as ort

    from hwnas.onnx_export import export_onnx

    worst = 0.0
    feeds = supernet.parity_inputs(shape)
    for config in configs:
        module = supernet.extract(supernet.space.canonical(config)).eval()
        model = export_onnx(module, supernet.example_inputs(shape), supernet.output_names,
                            dynamic_axes=supernet.dynamic_axes)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, feeds)
        with torch.no_grad():
            want = _outputs(module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())))
        diff = _max_diff([np.asarray(g, dtype=np.float32) for g in got], want)
        worst = max(worst, diff)
        if not diff <= tolerance:
            raise SupernetCheckError(f"{label}: the ONNX export differs from PyTorch by {diff:.3g} (> {tolerance}) "
                                     f"on parity_inputs for {json.dumps(config, separators=(',', ':'))}")
    return worst
