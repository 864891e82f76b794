"""Search spaces as data: named dimensions, choices, constraints, genes ⇄ configurations.

A *configuration* is a plain dict keyed by dimension name. A global dimension holds one value
(``{"D": 4}``); a per-layer dimension holds a list with one value per active layer
(``{"heads": [4, 2, 1]}``). In spaces with a depth dimension, per-layer lists are truncated to
the depth in the canonical form, so genes for layers ≥ depth are ignored and two configurations
that differ only there compare equal after :meth:`SearchSpace.canonical`.

A *gene vector* is an integer vector (one gene per global dimension, ``n_layers`` genes per
per-layer dimension), each gene the index of a choice. Genes are what the search algorithms
(pymoo) manipulate; configurations are what supernets, profiles and files hold.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.errors import InputError

Config = dict[str, Any]


@dataclass(frozen=True)
class Dimension:
    """One named dimension of a space.

    Attributes:
        name: key in configurations.
        choices: allowed values, in gene order.
        per_layer: 0 for a global dimension, else the number of genes (the maximum depth).
    """

    name: str
    choices: tuple[Any, ...]
    per_layer: int = 0

    @property
    def n_genes(self) -> int:
        return self.per_layer or 1


@dataclass(frozen=True)
class Constraint:
    """A predicate over a canonical configuration, with the message shown when it fails."""

    description: str
    check: Callable[[Config], bool]


@dataclass(frozen=True)
class SearchSpace:
    """A named search space over one supernet.

    Attributes:
        name: e.g. ``"bert-ose"``.
        supernet: name of the supernet family the space is defined over.
        dimensions: global and per-layer dimensions.
        constraints: predicates every valid configuration satisfies.
        depth: name of the dimension that sets how many per-layer genes are active, if any.
        fixed: constants of the space that configurations do not carry (e.g. ``{"H": 768}``).
    """

    name: str
    supernet: str
    dimensions: tuple[Dimension, ...]
    constraints: tuple[Constraint, ...] = ()
    depth: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError(f"space {self.name!r}: duplicate dimension names {names}")
        if self.depth is not None:
            depth_dim = self.dimension(self.depth)
            max_layers = max((d.per_layer for d in self.dimensions), default=0)
            if depth_dim.per_layer or (max_layers and max(depth_dim.choices) > max_layers):
                raise ValueError(f"space {self.name!r}: bad depth dimension {self.depth!r}")

    # -- structure -------------------------------------------------------------------------
    def dimension(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise InputError(f"space {self.name!r} has no dimension {name!r}")

    @property
    def n_genes(self) -> int:
        return sum(d.n_genes for d in self.dimensions)

    @property
    def gene_upper_bounds(self) -> np.ndarray:
        """Largest valid index per gene, shape [n_genes] (lower bounds are 0)."""
        return np.array(
            [len(d.choices) - 1 for d in self.dimensions for _ in range(d.n_genes)], dtype=np.int64
        )

    @property
    def per_layer(self) -> bool:
        return any(d.per_layer for d in self.dimensions)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: dimensions with choices and gene counts, totals."""
        return {
            "name": self.name,
            "supernet": self.supernet,
            "dimensions": [
                {
                    "name": d.name,
                    "choices": list(d.choices),
                    "per_layer": bool(d.per_layer),
                    "genes": d.n_genes,
                }
                for d in self.dimensions
            ],
            "fixed": dict(self.fixed),
            "constraints": [c.description for c in self.constraints],
            "genes": self.n_genes,
            "valid_configurations": self.count_valid(),
        }

    # -- validation --------------------------------------------------------------------------
    def active_layers(self, config: Mapping[str, Any]) -> int | None:
        """Number of active layers of a configuration (None when the space has no depth)."""
        if self.depth is None:
            return None
        return int(config[self.depth])

    def validate(self, config: Any) -> Config:
        """Check a configuration and return its canonical form.

        Raises:
            InputError: naming the unknown/missing key, the bad value, or the violated constraint.
        """
        if not isinstance(config, Mapping):
            raise InputError(
                f"configuration for space {self.name!r} must be a JSON object, got {config!r}"
            )
        known = {d.name for d in self.dimensions}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(
                f"unknown key {unknown[0]!r} for space {self.name!r} (keys: {', '.join(sorted(known))})"
            )
        missing = [d.name for d in self.dimensions if d.name not in config]
        if missing:
            raise InputError(f"missing key {missing[0]!r} for space {self.name!r}")

        depth = None
        if self.depth is not None:
            depth = self._check_value(self.dimension(self.depth), config[self.depth])
        canonical: Config = {}
        for dim in self.dimensions:
            value = config[dim.name]
            if not dim.per_layer:
                canonical[dim.name] = self._check_value(dim, value)
                continue
            if not isinstance(value, (list, tuple)):
                raise InputError(
                    f"{dim.name!r} must be a list with one value per layer, got {value!r}"
                )
            needed = depth if depth is not None else dim.per_layer
            if not needed <= len(value) <= dim.per_layer:
                raise InputError(
                    f"{dim.name!r} has {len(value)} values; needs {needed}"
                    + (f" to {dim.per_layer}" if needed < dim.per_layer else "")
                    + f" for {self.depth or 'layers'}={needed}"
                )
            canonical[dim.name] = [self._check_value(dim, v, i) for i, v in enumerate(value)][:needed]
        for constraint in self.constraints:
            if not constraint.check(canonical):
                raise InputError(
                    f"configuration {json.dumps(canonical)} violates {constraint.description}"
                )
        return canonical

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        try:
            self.validate(config)
        except InputError:
            return False
        return True

    def canonical(self, config: Mapping[str, Any]) -> Config:
        """Canonical form (per-layer lists cut to the depth); same as :meth:`validate`."""
        return self.validate(config)

    def key(self, config: Mapping[str, Any]) -> str:
        """A stable string for a configuration: equal configurations give equal keys."""
        return json.dumps(self.canonical(config), sort_keys=True, separators=(",", ":"))

    @staticmethod
    def _check_value(dim: Dimension, value: Any, layer: int | None = None) -> Any:
        where = dim.name if layer is None else f"{dim.name}[{layer}]"
        # bool is an int in Python; reject it so `true` is not taken as 1.
        if isinstance(value, bool) or value not in dim.choices:
            raise InputError(
                f"invalid value {value!r} for {where!r}; choices: {list(dim.choices)}"
            )
        return dim.choices[dim.choices.index(value)]

    # -- genes ---------------------------------------------------------------------------------
    def to_genes(self, config: Mapping[str, Any]) -> np.ndarray:
        """Gene vector (int64 [n_genes]) of a configuration; inactive layer genes are 0."""
        canonical = self.validate(config)
        genes: list[int] = []
        for dim in self.dimensions:
            if not dim.per_layer:
                genes.append(dim.choices.index(canonical[dim.name]))
                continue
            values = canonical[dim.name]
            genes.extend(dim.choices.index(v) for v in values)
            genes.extend([0] * (dim.per_layer - len(values)))
        return np.asarray(genes, dtype=np.int64)

    def from_genes(self, genes: Sequence[int] | np.ndarray, validate: bool = True) -> Config:
        """Configuration of a gene vector (canonical; genes of inactive layers are ignored).

        Raises:
            InputError: wrong length, an out-of-range gene, or (when ``validate``) a violated
                constraint.
        """
        genes = np.asarray(genes).astype(np.int64).ravel()
        if genes.size != self.n_genes:
            raise InputError(f"expected {self.n_genes} genes for space {self.name!r}, got {genes.size}")
        upper = self.gene_upper_bounds
        bad = np.flatnonzero((genes < 0) | (genes > upper))
        if bad.size:
            raise InputError(f"gene {int(bad[0])} = {int(genes[bad[0]])} out of range 0..{int(upper[bad[0]])}")
        config: Config = {}
        i = 0
        for dim in self.dimensions:
            if dim.per_layer:
                config[dim.name] = [dim.choices[g] for g in genes[i : i + dim.per_layer]]
            else:
                config[dim.name] = dim.choices[genes[i]]
            i += dim.n_genes
        if self.depth is not None:
            depth = config[self.depth]
            for dim in self.dimensions:
                if dim.per_layer:
                    config[dim.name] = config[dim.name][:depth]
        return self.validate(config) if validate else config

    # -- sampling and enumeration -------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = 0, unique: bool = False) -> list[Config]:
        """``n`` valid configurations drawn uniformly over genes (rejecting invalid ones).

        With ``unique``, no two returned configurations are equal (raises when the space has fewer).
        """
        rng = np.random.default_rng(seed)
        upper = self.gene_upper_bounds
        out: list[Config] = []
        seen: set[str] = set()
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 1000 * max(n, 1) + 10_000:
                raise InputError(f"could not draw {n} distinct valid configurations from {self.name!r}")
            genes = rng.integers(0, upper + 1)
            config = self.from_genes(genes, validate=False)
            if not self.is_valid(config):
                continue
            config = self.canonical(config)
            if unique:
                k = self.key(config)
                if k in seen:
                    continue
                seen.add(k)
            out.append(config)
        return out

    def count_valid(self) -> int:
        """Number of distinct valid canonical configurations."""
        if not self.per_layer:
            return sum(1 for _ in self.enumerate())
        # Per-layer spaces: count per depth without enumerating (constraints in our per-layer
        # spaces are per-layer-independent; verified by enumeration in the tests for small ones).
        total = 0
        globals_ = [d for d in self.dimensions if not d.per_layer and d.name != self.depth]
        layer_dims = [d for d in self.dimensions if d.per_layer]
        per_layer_options = 1
        for d in layer_dims:
            per_layer_options *= len(d.choices)
        n_global = 1
        for d in globals_:
            n_global *= len(d.choices)
        depths = self.dimension(self.depth).choices if self.depth else (max(d.per_layer for d in layer_dims),)
        for depth in depths:
            total += n_global * per_layer_options ** int(depth)
        return total

    def enumerate(self, limit: int = 1_000_000) -> Iterator[Config]:
        """All valid canonical configurations of a small space, in gene order.

        Raises:
            InputError: if the space has more than ``limit`` raw gene combinations.
        """
        if self.per_layer:
            raw = 1
            for d in self.dimensions:
                raw *= len(d.choices) ** d.n_genes
        else:
            raw = int(np.prod([len(d.choices) for d in self.dimensions]))
        if raw > limit:
            raise InputError(f"space {self.name!r} is too large to enumerate ({raw} gene combinations)")
        seen: set[str] = set()
        ranges = [range(u + 1) for u in self.gene_upper_bounds]
        for genes in itertools.product(*ranges):
            config = self.from_genes(genes, validate=False)
            if not self.is_valid(config):
                continue
            k = self.key(config)
            if k not in seen:
                seen.add(k)
                yield self.canonical(config)


def parse_config(text: str, space: SearchSpace) -> Config:
    """Parse a JSON configuration from the command line and validate it against ``space``."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"configuration is not valid JSON ({exc.msg} at char {exc.pos}): {text!r}") from None
    return space.validate(config)
