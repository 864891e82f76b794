"""The elastic BERT supernet and its three built-in spaces (``bert-ose``, ``bert-linas``, ``bert-mini``).

Weight sharing is by slicing, as in HAT and AutoTinyBERT: a sub-network uses the first ``H``
hidden features, the first ``A·dh`` attention features, the first ``I`` FFN units and the first
``D`` layers of the largest network (:mod:`hwnas.supernets.bert.network`).

Spaces (dimension names shared: A heads, D depth, H hidden, I FFN width):

* ``bert-ose`` — OSE/Bort's table: global A, D, H, I with head size H/A; H must be divisible
  by A; BERT-base vocabulary (30,522), 512 positions, 2 token types.
* ``bert-linas`` — DyNAS-T's BERT-base space: D ∈ 6..12, per-layer A (heads of size 64) and I,
  H = 768; same vocabulary as BERT-base.
* ``bert-mini`` — the same shape, small enough to train on a CPU in minutes: D ∈ 1..6,
  per-layer A ∈ {1, 2, 4} (heads of size 32), per-layer I ∈ {128, 256, 512}, H = 128.
  Ships trained weights (``hwnas/data/bert-mini.pt``, see ``tools/train_supernet.py``), read
  when the module is first built; the other spaces start from seeded random weights.

Every space's task is the built-in synthetic ``sentiment-synth``
(:mod:`hwnas.supernets.bert.sentiment`): ``bert-mini`` is scored on it with its trained weights;
all three train on it briefly for OSE's error estimate.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.errors import InputError
from hwnas.space import Config, Constraint, Dimension, SearchSpace
from hwnas.supernets.base import BuiltBlock, Feeds, Shape, Supernet
from hwnas.supernets.bert.network import (
    BertArch,
    BertNetwork,
    Embeddings,
    EncoderLayer,
    Head,
    LayerSpec,
    init_bert_weights,
)
from hwnas.supernets.bert.ops import bert_op_count_genes
from hwnas.supernets.bert.sentiment import TextTask, default_task
from hwnas.supernets.checkpoint import PathLike, load_weights, packaged_checkpoint, read_checkpoint

# ---------------------------------------------------------------------------------------------
# The supernet over a space
# ---------------------------------------------------------------------------------------------
_BLOCK_RE = re.compile(
    r"^(?:embed/H=(?P<eh>\d+)|head/H=(?P<hh>\d+)|layer/H=(?P<lh>\d+)/A=(?P<a>\d+)/dh=(?P<dh>\d+)/I=(?P<i>\d+))$"
)


def _arch_params(a: BertArch) -> int:
    """Exact parameter count of a BERT network of sizes ``a``."""
    h = a.hidden
    total = (a.vocab_size + a.max_positions + a.type_vocab_size) * h + 2 * h  # embeddings
    for spec in a.layers:
        total += 3 * (h * spec.inner + spec.inner) + spec.inner * h + h  # q, k, v, out
        total += h * spec.ffn + spec.ffn + spec.ffn * h + h  # FFN
        total += 4 * h  # two LayerNorms
    total += h * h + h + h * a.num_labels + a.num_labels  # pooler, classifier
    return total


@dataclass(frozen=True)
class BertSpaceSettings:
    """What distinguishes one BERT space: vocabulary and sizes, head size rule, default shape."""

    vocab_size: int
    max_positions: int
    type_vocab_size: int
    num_labels: int
    head_dim: int | None  # None: H / A (OSE); else fixed (DyNAS-T, HAT)
    default_seq_len: int


class ElasticBert(Supernet):
    """Weight-sharing BERT-style supernet over one of the ``bert-*`` spaces."""

    input_names = ("input_ids", "attention_mask", "token_type_ids")
    output_names = ("logits",)
    dynamic_axes = {
        "input_ids": {0: "batch", 1: "seq_len"},
        "attention_mask": {0: "batch", 1: "seq_len"},
        "token_type_ids": {0: "batch", 1: "seq_len"},
        "logits": {0: "batch"},
    }

    def __init__(
        self, space: SearchSpace, settings: BertSpaceSettings, seed: int = 0, checkpoint: PathLike | None = None
    ):
        self.space = space
        self.settings = settings
        self.seed = seed
        #: Trained weights, read when the module is first built; a missing file means seeded
        #: random weights (and no accuracy evaluator), a bad one an InputError.
        self.checkpoint = checkpoint
        self.checkpoint_meta: dict[str, Any] | None = None  # set once the checkpoint is loaded
        self.default_shape = {"batch": 1, "seq_len": settings.default_seq_len}
        self._module: BertNetwork | None = None

    # -- configurations → sizes ---------------------------------------------------------------
    def _values(self, config: Config, name: str, depth: int) -> list[int]:
        value = config[name] if name in config else self.space.fixed[name]
        return list(value) if isinstance(value, list) else [value] * depth

    def arch(self, config: Config) -> BertArch:
        """Sizes of the sub-network ``config`` (validated)."""
        c = self.space.validate(config)
        depth = c["D"]
        hidden = c["H"] if "H" in c else self.space.fixed["H"]
        heads, ffns = self._values(c, "A", depth), self._values(c, "I", depth)
        layers = tuple(
            LayerSpec(a, self.settings.head_dim or hidden // a, i) for a, i in zip(heads, ffns)
        )
        s = self.settings
        return BertArch(s.vocab_size, s.max_positions, s.type_vocab_size, s.num_labels, hidden, layers)

    def max_arch(self) -> BertArch:
        """Sizes of the weight store: the largest value of every dimension."""
        dims = {d.name: d for d in self.space.dimensions}
        hidden = max(dims["H"].choices) if "H" in dims else self.space.fixed["H"]
        depth = max(dims["D"].choices)
        heads = max(dims["A"].choices)
        # With head size H/A the attention width is H; with a fixed head size it is A·dh.
        inner = hidden if self.settings.head_dim is None else heads * self.settings.head_dim
        ffn = max(dims["I"].choices)
        s = self.settings
        spec = LayerSpec(heads, inner // heads, ffn)
        return BertArch(s.vocab_size, s.max_positions, s.type_vocab_size, s.num_labels, hidden, (spec,) * depth)

    # -- weights -------------------------------------------------------------------------------
    def module(self) -> BertNetwork:
        if self._module is None and self.checkpoint is not None and os.path.isfile(self.checkpoint):
            state, self.checkpoint_meta = read_checkpoint(self.checkpoint, self.name)
            try:
                self.load_state_dict(state)
            except InputError as exc:
                raise InputError(f"checkpoint {self.checkpoint}: {exc}") from None
        if self._module is None:
            net = BertNetwork(self.max_arch())
            init_bert_weights(net, self.seed)
            self._module = net.eval()
        return self._module

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the shared weights (e.g. with a trained checkpoint)."""
        self._module = load_weights(BertNetwork(self.max_arch()), state, self.name)

    def _tensors(self, inputs: Feeds | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if isinstance(inputs, dict):
            return tuple(torch.as_tensor(inputs[n]) for n in self.input_names)  # type: ignore[return-value]
        return inputs  # type: ignore[return-value]

    def forward(self, inputs: Feeds | tuple[torch.Tensor, ...], config: Config) -> torch.Tensor:
        return self.module().forward_sliced(*self._tensors(inputs), sub=self.arch(config))

    def extract(self, config: Config) -> BertNetwork:
        return self.module().extract(self.arch(config))

    def example_inputs(self, shape: Shape, seed: int = 0) -> Feeds:
        batch, seq_len = shape["batch"], shape["seq_len"]
        if seq_len > self.settings.max_positions:
            raise InputError(f"seq_len {seq_len} exceeds the {self.settings.max_positions} positions of {self.name!r}")
        rng = np.random.default_rng(seed)
        ids = rng.integers(4, self.settings.vocab_size, size=(batch, seq_len), dtype=np.int64)
        ids[:, 0] = 1  # [CLS]
        mask = np.ones((batch, seq_len), dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    # -- blocks --------------------------------------------------------------------------------
    @staticmethod
    def _layer_key(hidden: int, spec: LayerSpec) -> str:
        return f"layer/H={hidden}/A={spec.heads}/dh={spec.head_dim}/I={spec.ffn}"

    def blocks(self, config: Config, shape: Shape) -> list[str]:
        arch = self.arch(config)
        h = arch.hidden
        return [f"embed/H={h}"] + [self._layer_key(h, s) for s in arch.layers] + [f"head/H={h}"]

    def all_blocks(self, shape: Shape) -> list[str]:
        dims = {d.name: d for d in self.space.dimensions}
        hiddens = dims["H"].choices if "H" in dims else (self.space.fixed["H"],)
        keys: set[str] = set()
        for h in hiddens:
            keys.update({f"embed/H={h}", f"head/H={h}"})
            for a in dims["A"].choices:
                probe = {"A": a, "H": h, "D": min(dims["D"].choices), "I": dims["I"].choices[0]}
                if "H" not in dims:
                    probe.pop("H")
                if dims["A"].per_layer:
                    probe["A"], probe["I"] = [a] * probe["D"], [probe["I"]] * probe["D"]
                if not self.space.is_valid(probe):
                    continue
                for i in dims["I"].choices:
                    keys.add(self._layer_key(h, LayerSpec(a, self.settings.head_dim or h // a, i)))
        return sorted(keys)

    def layer_choices(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer sizes of gene vectors, vectorized.

        Args:
            genes: int [N, n_genes].
        Returns:
            hidden [N], heads [N, L], ffn [N, L], active [N, L] (bool), L the maximum depth.
        """
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        space, col, values = self.space, 0, {}
        depth_max = max(max(d.per_layer for d in space.dimensions), max(space.dimension("D").choices))
        for dim in space.dimensions:
            choices = np.asarray(dim.choices)
            block = choices[genes[:, col : col + dim.n_genes]]
            values[dim.name] = block if dim.per_layer else np.repeat(block, depth_max, axis=1)
            col += dim.n_genes
        n = genes.shape[0]
        hidden = values["H"][:, 0] if "H" in values else np.full(n, self.space.fixed["H"])
        active = np.arange(depth_max)[None, :] < values["D"][:, :1]
        return hidden, values["A"], values["I"], active

    def block_counts(self, genes: np.ndarray, keys: list[str], shape: Shape) -> np.ndarray:
        hidden, heads, ffn, active = self.layer_choices(genes)
        index = {k: i for i, k in enumerate(keys)}
        n = hidden.shape[0]
        counts = np.zeros((n, len(keys)))
        rows = np.arange(n)

        def column(key: str) -> int:
            if key not in index:
                raise InputError(f"block {key!r} is not in the profile of space {self.name!r}")
            return index[key]

        for h in np.unique(hidden):
            counts[rows[hidden == h], column(f"embed/H={h}")] += 1
            counts[rows[hidden == h], column(f"head/H={h}")] += 1
        # Encode (hidden, heads, ffn) per layer as one integer, then count each distinct code.
        code = (hidden[:, None] * 100_000 + heads) * 100_000 + ffn
        for value in np.unique(code[active]):
            h, a, i = int(value // 10**10), int(value // 100_000 % 100_000), int(value % 100_000)
            key = self._layer_key(h, LayerSpec(a, self.settings.head_dim or h // a, i))
            counts[:, column(key)] += ((code == value) & active).sum(axis=1)
        return counts

    def feature_matrix(self, genes: np.ndarray) -> np.ndarray:
        hidden, heads, ffn, active = self.layer_choices(genes)
        head_dim = self.settings.head_dim or (hidden[:, None] // heads)
        return np.column_stack([
            hidden, active.sum(axis=1), (heads * head_dim * active).sum(axis=1),
            (ffn * active).sum(axis=1), (heads * active).sum(axis=1),
        ]).astype(np.float64)

    def parse_block(self, key: str) -> dict[str, Any]:
        match = _BLOCK_RE.match(key)
        if not match:
            raise InputError(f"unknown block key {key!r} for space {self.name!r}")
        g = match.groupdict()
        if g["eh"]:
            return {"kind": "embed", "H": int(g["eh"])}
        if g["hh"]:
            return {"kind": "head", "H": int(g["hh"])}
        return {"kind": "layer", "H": int(g["lh"]), "A": int(g["a"]), "dh": int(g["dh"]), "I": int(g["i"])}


    def build_block(self, key: str, shape: Shape) -> BuiltBlock:
        info = self.parse_block(key)
        s, h = self.settings, info["H"]
        batch, seq_len = shape["batch"], shape["seq_len"]
        rng = np.random.default_rng(0)
        if info["kind"] == "embed":
            module: nn.Module = Embeddings(s.vocab_size, s.max_positions, s.type_vocab_size, h)
            feeds = self.example_inputs(shape)
            outputs = ("hidden", "mask")
        elif info["kind"] == "layer":
            module = EncoderLayer(h, LayerSpec(info["A"], info["dh"], info["I"]))
            feeds = {
                "hidden": rng.standard_normal((batch, seq_len, h), dtype=np.float32),
                "mask": np.zeros((batch, 1, 1, seq_len), dtype=np.float32),
            }
            outputs = ("out",)
        else:
            module = Head(h, s.num_labels)
            feeds = {"hidden": rng.standard_normal((batch, seq_len, h), dtype=np.float32)}
            outputs = ("logits",)
        init_bert_weights(module, seed=0)
        # Dynamic batch and sequence axes, as in the exported whole model (see BuiltBlock).
        axes = {"input_ids": {0: "batch", 1: "seq_len"}, "attention_mask": {0: "batch", 1: "seq_len"},
                "token_type_ids": {0: "batch", 1: "seq_len"}, "hidden": {0: "batch", 1: "seq_len"},
                "mask": {0: "batch", 3: "seq_len"}, "out": {0: "batch", 1: "seq_len"}, "logits": {0: "batch"}}
        names = (*feeds, *outputs)
        return BuiltBlock(module.eval(), feeds, outputs, {k: v for k, v in axes.items() if k in names})

    # -- analytics -----------------------------------------------------------------------------
    def count_params(self, config: Config) -> int:
        return _arch_params(self.arch(config))

    def brief_training_params(self, config: Config) -> int:
        """Parameters of :meth:`brief_training_network` (embeddings cut to the task)."""
        task = self.task()
        return _arch_params(replace(self.arch(config), vocab_size=task.vocab_size, max_positions=task.seq_len))


    def count_macs(self, config: Config, shape: Shape) -> int:
        """Multiply-accumulates of the matrix products (embedding look-ups count 0)."""
        a = self.arch(config)
        h, s = a.hidden, shape["seq_len"]
        macs = 0
        for spec in a.layers:
            macs += 4 * s * h * spec.inner  # q, k, v, out projections
            macs += 2 * s * s * spec.inner  # scores and context
            macs += 2 * s * h * spec.ffn  # FFN
        macs += h * h + h * a.num_labels
        return shape["batch"] * macs

    def features(self, config: Config) -> np.ndarray:
        """[hidden, depth, Σ attention width, Σ FFN width, Σ heads] (float64)."""
        a = self.arch(config)
        return np.array(
            [a.hidden, len(a.layers), sum(l.inner for l in a.layers), sum(l.ffn for l in a.layers),
             sum(l.heads for l in a.layers)],
            dtype=np.float64,
        )


    # -- task, OSE and deployment hooks ----------------------------------------------------------
    def task(self) -> TextTask:
        """The built-in synthetic sentiment task (every ``bert-*`` space)."""
        return default_task()

    def accuracy_task(self) -> TextTask:
        """The task, once the trained checkpoint is loaded; only ``bert-mini`` ships one."""
        if self.checkpoint is None:
            raise InputError(f"space {self.name!r} has no accuracy evaluator (no trained checkpoint); "
                             "use OSE's brief-training loss objective instead, or the bert-mini space")
        if not Path(self.checkpoint).is_file():
            raise InputError(f"space {self.name!r} has no accuracy evaluator: checkpoint {self.checkpoint} "
                             "is missing (make it with tools/train_supernet.py)")
        self.module()  # reads the checkpoint: InputError if corrupt or for another space
        if self.checkpoint_meta is None:
            raise InputError(f"space {self.name!r}: the supernet's weights were built before checkpoint "
                             f"{self.checkpoint} existed; load a fresh supernet")
        return self.task()

    def brief_training_network(self, config: Config, seed: int) -> BertNetwork:
        """The sub-network at its own sizes with BERT's initialisation seeded by ``seed``.

        Its word and position embeddings are cut to the task's vocabulary and sequence length:
        rows that are never looked up get no gradient and never reach the output, so the loss is
        that of the full-vocabulary model, while AdamW skips millions of unused weights.
        """
        task = self.task()
        arch = replace(self.arch(config), vocab_size=task.vocab_size, max_positions=task.seq_len)
        with torch.device("meta"):  # skip torch's default initialisation: ours replaces it
            net = BertNetwork(arch)
        net.to_empty(device="cpu")
        init_bert_weights(net, seed=seed)
        return net

    def op_counts(self, genes: np.ndarray, shape: Shape) -> np.ndarray:
        """OSE's operation count (:func:`~hwnas.supernets.bert.ops.bert_op_count`), vectorised."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        return bert_op_count_genes(self, genes, int(shape["seq_len"]), int(shape.get("batch", 1))).astype(np.float64)

    def reference_configs(self) -> list[dict[str, Any]]:
        """Bort's published architecture on ``bert-ose``."""
        if self.name != "bert-ose":
            return []
        return [{"name": "Bort", "config": dict(BORT),
                 "source": "Bort, de Wynter & Perry, arXiv 2010.10499 (published, not ours)"}]

    def parity_inputs(self, shape: Shape) -> Feeds:
        """Two samples, the second padded from the middle on, so attention masking is checked too."""
        feeds = self.example_inputs({**shape, "batch": 2}, seed=1)
        mask = feeds["attention_mask"]
        if mask.shape[1] > 2:
            mask[1, mask.shape[1] // 2 :] = 0
        return feeds


# ---------------------------------------------------------------------------------------------
# Built-in spaces
# ---------------------------------------------------------------------------------------------
BERT_BASE_VOCAB = 30522
BORT = {"A": 8, "D": 4, "H": 1024, "I": 768}
"""Bort's architecture as published by de Wynter & Perry (arXiv 2010.10499) — the paper's pick."""
MINI_VOCAB = 512


def _h_divisible_by_a(config: Config) -> bool:
    return config["H"] % config["A"] == 0


BERT_OSE = SearchSpace(
    name="bert-ose",
    supernet="elastic-bert",
    dimensions=(
        Dimension("A", (4, 8, 12, 16)),
        Dimension("D", (2, 4, 6, 8, 10, 12)),
        Dimension("H", (512, 768, 1024)),
        Dimension("I", (256, 512, 768, 1024, 3072)),
    ),
    constraints=(Constraint("H divisible by A", _h_divisible_by_a),),
    depth="D",
)

BERT_LINAS = SearchSpace(
    name="bert-linas",
    supernet="elastic-bert",
    dimensions=(
        Dimension("D", tuple(range(6, 13))),
        Dimension("A", (6, 8, 10, 12), per_layer=12),
        Dimension("I", (1024, 2048, 3072), per_layer=12),
    ),
    depth="D",
    fixed={"H": 768},
)

BERT_MINI = SearchSpace(
    name="bert-mini",
    supernet="elastic-bert",
    dimensions=(
        Dimension("D", (1, 2, 3, 4, 5, 6)),
        Dimension("A", (1, 2, 4), per_layer=6),
        Dimension("I", (128, 256, 512), per_layer=6),
    ),
    depth="D",
    fixed={"H": 128},
)

SETTINGS = {
    "bert-ose": BertSpaceSettings(BERT_BASE_VOCAB, 512, 2, 2, head_dim=None, default_seq_len=128),
    "bert-linas": BertSpaceSettings(BERT_BASE_VOCAB, 512, 2, 2, head_dim=64, default_seq_len=128),
    "bert-mini": BertSpaceSettings(MINI_VOCAB, 64, 2, 2, head_dim=32, default_seq_len=32),
}
SPACES = {s.name: s for s in (BERT_OSE, BERT_LINAS, BERT_MINI)}


def make_bert_supernet(space_name: str, seed: int = 0, checkpoint: PathLike | None = "packaged") -> ElasticBert:
    """The elastic BERT supernet over a built-in ``bert-*`` space.

    ``checkpoint``: ``"packaged"`` for the trained weights shipped with the package where there
    are some (``bert-mini``), a file path, or None for seeded random weights (``seed``).
    """
    if space_name not in SPACES:
        raise InputError(f"unknown BERT space {space_name!r} (known: {', '.join(SPACES)})")
    if isinstance(checkpoint, str) and checkpoint == "packaged":
        checkpoint = packaged_checkpoint(space_name)
    return ElasticBert(SPACES[space_name], SETTINGS[space_name], seed=seed, checkpoint=checkpoint)


def make_supernets() -> list[ElasticBert]:
    """The built-in provider: one supernet per ``bert-*`` space (weights built on first use)."""
    return [make_bert_supernet(name) for name in SPACES]
