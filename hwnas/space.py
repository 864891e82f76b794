"""Search spaces as data: named dimensions, choices, constraints, genes ⇄ configurations.

A *configuration* is a plain dict keyed by dimension name. A global dimension holds one value
(``{"D": 4}``); a per-layer dimension holds a list with one value per layer
(``{"heads": [4, 2, 1]}``).

*Depth.* Some layers may be inactive, set by a depth gene. Two forms:

* ``depth="D"`` (bert-*, mlp-digits): one global depth dimension gates every per-layer
  dimension from layer 0; per-layer lists are *truncated* to the depth in the canonical form
  (``{"D": 2, "A": [4, 1], "I": [512, 128]}``).
* ``groups=(DepthGroup(...), ...)`` (Once-for-All style): each group is one depth gene (of a
  global dimension, or one gene of a per-layer depth dimension, e.g. one stage's depth) gating a
  contiguous segment of layers of one or more per-layer dimensions. Configurations hold
  *full-length* lists; the canonical form replaces each inactive entry by the dimension's first
  choice (gene 0), and validation accepts any valid choice there. :func:`stages` builds the
  groups of a staged space.

Either way, two configurations that differ only in inactive layers have the same canonical form,
key and genes.

A *gene vector* is an integer vector (one gene per global dimension, ``per_layer`` genes per
per-layer dimension, in dimension order), each gene the index of a choice; canonical gene vectors
have 0 in every inactive gene. Genes are what the search algorithms (pymoo) manipulate;
configurations are what supernets, profiles and files hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from hwnas.errors import InputError

Config = dict[str, Any]


@dataclass(frozen=True)
class Dimension:
    """One named dimension of a space.

    Attributes:
        name: key in configurations.
        choices: allowed values, in gene order (distinct).
        per_layer: 0 for a global dimension, else the number of genes (the maximum depth).
    """

    name: str
    choices: tuple[Any, ...]
    per_layer: int = 0

    def __post_init__(self) -> None:
        if not self.choices or len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"dimension {self.name!r}: choices must be distinct and non-empty, got {self.choices}")
        if self.per_layer < 0:
            raise ValueError(f"dimension {self.name!r}: per_layer must be >= 0, got {self.per_layer}")

    @property
    def n_genes(self) -> int:
        return self.per_layer or 1


@dataclass(frozen=True)
class Constraint:
    """A predicate over a canonical configuration, with the message shown when it fails."""

    description: str
    check: Callable[[Config], bool]


@dataclass(frozen=True)
class DepthGroup:
    """One depth gene gating a contiguous segment of layers of one or more per-layer dimensions.

    With ``depth`` the value of gene ``gene`` of dimension ``depth``, layers
    ``start .. start + depth - 1`` of every dimension in ``dims`` are active and layers
    ``start + depth .. start + size - 1`` inactive.

    Attributes:
        depth: name of the depth dimension (integer choices, each <= ``size``).
        dims: names of the gated per-layer dimensions.
        start: first gated layer (an index into each of ``dims``' lists).
        size: number of gated layers (the segment length); None: to the end of each list.
        gene: which gene of the depth dimension: 0 for a global one, the stage for a per-layer one.
    """

    depth: str
    dims: tuple[str, ...]
    start: int = 0
    size: int | None = None
    gene: int = 0


def stages(depth: str, dims: Sequence[str], blocks: Sequence[int]) -> tuple[DepthGroup, ...]:
    """Depth groups of a staged space: gene ``s`` of the per-layer dimension ``depth`` sets how
    many of stage ``s``'s ``blocks[s]`` blocks run; stage ``s`` is the segment of layers starting
    at ``sum(blocks[:s])`` of every dimension in ``dims``.

    Example (Once-for-All MobileNetV3: 5 stages of 4 blocks): ``stages("d", ("ks", "e"), (4,) * 5)``.
    """
    out, start = [], 0
    for s, n in enumerate(blocks):
        out.append(DepthGroup(depth, tuple(dims), start=start, size=int(n), gene=s))
        start += int(n)
    return tuple(out)


class GeneGate(NamedTuple):
    """One depth gene's effect on gene vectors: gene ``cols[k]`` is inactive when
    ``offsets[k] >= depth_values[genes[depth_col]]``."""

    depth_col: int
    depth_values: np.ndarray  # int64 [n choices of the depth dimension]
    cols: np.ndarray  # int64 [K] gated gene columns
    offsets: np.ndarray  # int64 [K] layer index of each gated gene within its segment
    dims: tuple[str, ...]  # [K] dimension name of each gated gene
    layers: tuple[int, ...]  # [K] index of each gated gene in its dimension's list


#: Largest number of configurations (before constraints) that :meth:`SearchSpace.count_valid`
#: enumerates to count a space with constraints exactly.
COUNT_LIMIT = 200_000


@dataclass(frozen=True)
class SearchSpace:
    """A named search space over one supernet.

    Attributes:
        name: e.g. ``"bert-ose"``.
        supernet: name of the supernet family the space is defined over.
        dimensions: global and per-layer dimensions.
        constraints: predicates every valid configuration satisfies.
        depth: name of the global dimension that sets how many layers of every per-layer
            dimension are active, from layer 0 (lists truncated to it); or None.
        fixed: constants of the space that configurations do not carry (e.g. ``{"H": 768}``).
        groups: depth groups (full-length lists, inactive entries canonicalised to the first
            choice); exclusive with ``depth``. See :class:`DepthGroup` and :func:`stages`.
        depth_groups: the groups in effect (derived): ``groups``, or for ``depth="D"`` the one
            group ``DepthGroup("D", <every per-layer dimension>)``, or none.
    """

    name: str
    supernet: str
    dimensions: tuple[Dimension, ...]
    constraints: tuple[Constraint, ...] = ()
    depth: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[DepthGroup, ...] = ()
    depth_groups: tuple[DepthGroup, ...] = field(default=(), init=False, repr=False, compare=False)
    _gates: tuple[GeneGate, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError(f"space {self.name!r}: duplicate dimension names {names}")
        dims = {d.name: d for d in self.dimensions}
        if self.depth is not None and self.groups:
            raise ValueError(f"space {self.name!r}: give depth (lists truncated) or groups, not both")
        if self.depth is not None:
            if self.depth not in dims:
                raise ValueError(f"space {self.name!r}: no depth dimension {self.depth!r}")
            depth_dim = dims[self.depth]
            max_layers = max((d.per_layer for d in self.dimensions), default=0)
            if depth_dim.per_layer or (max_layers and max(depth_dim.choices) > max_layers):
                raise ValueError(f"space {self.name!r}: bad depth dimension {self.depth!r}")
            groups: tuple[DepthGroup, ...] = (
                DepthGroup(self.depth, tuple(d.name for d in self.dimensions if d.per_layer)),
            )
        else:
            groups = tuple(self.groups)
            self._check_groups(dims)
        object.__setattr__(self, "depth_groups", groups)
        object.__setattr__(self, "_gates", self._build_gates(dims))

    def _check_groups(self, dims: Mapping[str, Dimension]) -> None:
        """Raise ValueError naming the first ill-formed explicit depth group."""
        depth_names = {g.depth for g in self.groups}
        taken: set[tuple[str, int]] = set()
        genes: set[tuple[str, int]] = set()
        for g in self.groups:
            where = f"space {self.name!r}: depth group {g}"
            if g.depth not in dims:
                raise ValueError(f"{where}: no depth dimension {g.depth!r}")
            depth_dim = dims[g.depth]
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in depth_dim.choices):
                raise ValueError(f"{where}: depth choices must be integers >= 0")
            if not 0 <= g.gene < depth_dim.n_genes or (g.depth, g.gene) in genes:
                raise ValueError(f"{where}: gene {g.gene} of {g.depth!r} is out of range or used twice")
            genes.add((g.depth, g.gene))
            if not g.dims:
                raise ValueError(f"{where}: gates no dimension")
            for name in g.dims:
                dim = dims.get(name)
                if dim is None or not dim.per_layer or name in depth_names:
                    raise ValueError(f"{where}: {name!r} is not a per-layer, non-depth dimension")
                size = dim.per_layer - g.start if g.size is None else g.size
                if g.start < 0 or size < 1 or g.start + size > dim.per_layer:
                    raise ValueError(f"{where}: segment outside {name!r} (layers 0..{dim.per_layer - 1})")
                if max(depth_dim.choices) > size:
                    raise ValueError(f"{where}: depth {max(depth_dim.choices)} exceeds the segment ({size} layers)")
                for layer in range(g.start, g.start + size):
                    if (name, layer) in taken:
                        raise ValueError(f"{where}: layer {layer} of {name!r} is gated twice")
                    taken.add((name, layer))

    def _build_gates(self, dims: Mapping[str, Dimension]) -> tuple[GeneGate, ...]:
        first: dict[str, int] = {}
        col = 0
        for dim in self.dimensions:
            first[dim.name] = col
            col += dim.n_genes
        gates = []
        for g in self.depth_groups:
            cols, offsets, names, layers = [], [], [], []
            for name in g.dims:
                dim = dims[name]
                size = dim.per_layer - g.start if g.size is None else g.size
                for k in range(size):
                    cols.append(first[name] + g.start + k)
                    offsets.append(k)
                    names.append(name)
                    layers.append(g.start + k)
            gates.append(GeneGate(first[g.depth] + g.gene, np.asarray(dims[g.depth].choices, dtype=np.int64),
                                  np.asarray(cols, dtype=np.int64), np.asarray(offsets, dtype=np.int64),
                                  tuple(names), tuple(layers)))
        return tuple(gates)

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

    @property
    def truncated(self) -> bool:
        """Whether canonical per-layer lists are cut to the depth (``depth="D"`` spaces)."""
        return self.depth is not None

    def gene_gates(self) -> tuple[GeneGate, ...]:
        """Per depth gene, the gene columns it gates (for vectorised canonicalisation)."""
        return self._gates

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: dimensions with choices and gene counts, depth groups, totals.

        ``valid_configurations`` is None (JSON null) when unknown (see :meth:`count_valid`).
        """
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
            "depth": self.depth,
            "depth_groups": [
                {"depth": g.depth, "gene": g.gene, "dims": list(g.dims), "start": g.start, "size": g.size}
                for g in self.depth_groups
            ],
            "lists": "truncated" if self.truncated else "full",
            "genes": self.n_genes,
            "valid_configurations": self.count_valid(),
        }

    # -- validation --------------------------------------------------------------------------
    def active_layers(self, config: Mapping[str, Any]) -> int | None:
        """Number of active layers of a configuration (None when the space has no ``depth``)."""
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
                    + (" (inactive layers included)" if self.depth_groups and depth is None else "")
                )
            canonical[dim.name] = [self._check_value(dim, v, i) for i, v in enumerate(value)][:needed]
        if not self.truncated:
            self._mask(canonical)
        for constraint in self.constraints:
            if not constraint.check(canonical):
                raise InputError(
                    f"configuration {json.dumps(canonical)} violates {constraint.description}"
                )
        return canonical

    def _mask(self, config: Config) -> Config:
        """Set inactive entries of a full-list configuration to their first choice (in place)."""
        if not self._gates:
            return config
        first = {d.name: d.choices[0] for d in self.dimensions}
        for group, gate in zip(self.depth_groups, self._gates):
            value = config[group.depth]
            depth = value[group.gene] if isinstance(value, list) else value
            for name, layer, offset in zip(gate.dims, gate.layers, gate.offsets.tolist()):
                if offset >= depth:
                    config[name][layer] = first[name]
        return config

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        try:
            self.validate(config)
        except InputError:
            return False
        return True

    def canonical(self, config: Mapping[str, Any]) -> Config:
        """Canonical form (inactive layers cut or set to the first choice); same as :meth:`validate`."""
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
        """Canonical gene vector (int64 [n_genes]) of a configuration; inactive layer genes are 0."""
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
        """Canonical configuration of a gene vector (genes of inactive layers are ignored).

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
        config = self._config_of(genes.tolist())
        return self.validate(config) if validate else config

    def _config_of(self, genes: Sequence[int]) -> Config:
        """Canonical configuration of an in-range gene vector (constraints not checked)."""
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
        else:
            self._mask(config)
        return config

    def _satisfies(self, config: Config) -> bool:
        return all(c.check(config) for c in self.constraints)

    # -- sampling and enumeration -------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = 0, unique: bool = False,
               hold: np.ndarray | None = None) -> list[Config]:
        """``n`` valid canonical configurations drawn uniformly over genes (rejecting invalid ones).

        With ``unique``, no two returned configurations are equal (raises when the space has fewer).
        ``hold``: int [n_genes]; where it is ≥ 0 the gene is held at that value instead of drawn
        (a sub-space, e.g. a phase of progressive shrinking; every gene is still drawn from the
        generator, so the stream does not depend on ``hold``).
        """
        rng = np.random.default_rng(seed)
        upper = self.gene_upper_bounds
        held = None if hold is None else np.asarray(hold, dtype=np.int64) >= 0
        out: list[Config] = []
        seen: set[str] = set()
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 1000 * max(n, 1) + 10_000:
                raise InputError(f"could not draw {n} distinct valid configurations from {self.name!r}")
            genes = rng.integers(0, upper + 1)
            if held is not None:
                genes = np.where(held, hold, genes)
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

    def count_unconstrained(self) -> int:
        """Number of distinct canonical configurations ignoring constraints (closed form, exact):
        Π over ungated genes of their choices × Π over depth groups of
        Σ_depth Π over the group's active genes of their choices."""
        uppers = self.gene_upper_bounds.tolist()
        gated = {gate.depth_col for gate in self._gates}
        total = 1
        for gate in self._gates:
            gated.update(gate.cols.tolist())
            sizes = [uppers[c] + 1 for c in gate.cols.tolist()]
            offsets = gate.offsets.tolist()
            total *= sum(math.prod(s for s, o in zip(sizes, offsets) if o < d) for d in gate.depth_values.tolist())
        for col, upper in enumerate(uppers):
            if col not in gated:
                total *= upper + 1
        return total

    def count_valid(self, limit: int = COUNT_LIMIT) -> int | None:
        """Number of distinct valid canonical configurations, exact; None when unknown.

        Without constraints: :meth:`count_unconstrained` (closed form, any size). With constraints:
        counted by enumeration when the space has at most ``limit`` configurations before
        constraints, else None (too large to count exactly).
        """
        n = self.count_unconstrained()
        if not self.constraints:
            return n
        if n > limit:
            return None
        return sum(1 for _ in self.enumerate(limit=limit))

    def enumerate(self, limit: int = 1_000_000) -> Iterator[Config]:
        """All valid canonical configurations of a small space, in gene order (lexicographic
        order of their canonical gene vectors).

        Raises:
            InputError: if the space has more than ``limit`` configurations before constraints.
        """
        n = self.count_unconstrained()
        if n > limit:
            raise InputError(f"space {self.name!r} is too large to enumerate ({n} configurations)")
        for genes in self._canonical_rows():
            config = self._config_of(genes)
            if self._satisfies(config):
                yield config

    def _canonical_rows(self) -> Iterator[list[int]]:
        """Every canonical gene vector (inactive genes 0), in lexicographic order, each once.

        Depth-first over genes: a gated gene is 0 once its depth gene (earlier) makes it inactive,
        or when no depth choice reaches it; a depth gene takes only the values that keep every
        earlier nonzero gated gene active. Every partial vector extends, so no work is wasted.
        """
        n = self.n_genes
        uppers = self.gene_upper_bounds.tolist()
        target: dict[int, tuple[GeneGate, int]] = {}
        depth_of: dict[int, GeneGate] = {}
        for gate in self._gates:
            depth_of[gate.depth_col] = gate
            for col, offset in zip(gate.cols.tolist(), gate.offsets.tolist()):
                target[col] = (gate, offset)
        row = [0] * n

        def options(col: int) -> list[int]:
            if col in target:
                gate, offset = target[col]
                if gate.depth_col < col:
                    active = offset < int(gate.depth_values[row[gate.depth_col]])
                else:
                    active = offset < int(gate.depth_values.max())
                return list(range(uppers[col] + 1)) if active else [0]
            if col in depth_of:
                gate = depth_of[col]
                before = [(c, o) for c, o in zip(gate.cols.tolist(), gate.offsets.tolist()) if c < col and row[c]]
                return [i for i, d in enumerate(gate.depth_values.tolist()) if all(o < d for _, o in before)]
            return list(range(uppers[col] + 1))

        if n == 0:
            yield []
            return
        stack = [iter(options(0))]
        while stack:
            col = len(stack) - 1
            value = next(stack[-1], None)
            if value is None:
                stack.pop()
                continue
            row[col] = value
            if col == n - 1:
                yield list(row)
            else:
                stack.append(iter(options(col + 1)))


#: The longest configuration JSON taken from the command line (characters); real ones are < 1,000.
MAX_CONFIG_CHARS = 65_536
#: The deepest nesting and the longest number or string a configuration may hold.
MAX_CONFIG_DEPTH = 8
MAX_CONFIG_TOKEN = 100


def _clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message (its length said when cut)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _config_json(text: str) -> Any:
    """Strict, bounded JSON for a configuration: no NaN/Infinity, no duplicate keys, no huge
    numbers or strings, no deep nesting (each refused fast with InputError)."""
    depth = 0
    for char in text:  # nesting, counted before the recursive parser sees it
        if char in "[{":
            depth += 1
            if depth > MAX_CONFIG_DEPTH:
                raise InputError(f"configuration is nested deeper than {MAX_CONFIG_DEPTH} levels: {_clip(text)!r}")
        elif char in "]}":
            depth -= 1

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if len(key) > MAX_CONFIG_TOKEN:
                raise InputError(f"configuration key {_clip(key)!r} is longer than {MAX_CONFIG_TOKEN} characters")
            if key in out:
                raise InputError(f"configuration has the key {_clip(key)!r} twice")
            if isinstance(value, str) and len(value) > MAX_CONFIG_TOKEN:
                raise InputError(f"configuration value of {_clip(key)!r} is a string of {len(value):,} characters")
            out[key] = value
        return out

    def number(kind: type) -> Any:
        def parse(token: str) -> Any:
            if len(token) > MAX_CONFIG_TOKEN:
                raise InputError(f"configuration holds a number of {len(token):,} characters: {_clip(token, 40)!r}")
            return kind(token)
        return parse

    def constant(name: str) -> Any:
        raise InputError(f"configuration holds {name}, which is not a number JSON allows")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_int=number(int), parse_float=number(float),
                          parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"configuration is not valid JSON ({exc.msg} at char {exc.pos}): {_clip(text)!r}") from None
    except RecursionError:
        raise InputError(f"configuration is nested too deeply: {_clip(text)!r}") from None


def parse_config(text: str, space: SearchSpace) -> Config:
    """Parse a JSON configuration from the command line and validate it against ``space``.

    Bounded and strict (:func:`_config_json`): more than :data:`MAX_CONFIG_CHARS` characters,
    nesting deeper than :data:`MAX_CONFIG_DEPTH`, numbers or strings longer than
    :data:`MAX_CONFIG_TOKEN` characters, duplicate keys and NaN are refused with InputError,
    whose message never echoes more than a short piece of the text.
    """
    if len(text) > MAX_CONFIG_CHARS:
        raise InputError(f"configuration is {len(text):,} characters long (at most {MAX_CONFIG_CHARS:,}): "
                         f"{_clip(text)!r}")
    config = _config_json(text)
    try:
        return space.validate(config)
    except InputError as exc:
        message = str(exc)
        raise InputError(_clip(message, 300)) from None
