"""Bort-style sub-networks of a pretrained BERT checkpoint, scored on MR without training.

:class:`PretrainedBert` is an elastic BERT (:class:`~hwnas.supernets.bert.supernet.ElasticBert`:
the same spaces' genes, blocks, analytic counts) whose weights are a Hugging Face checkpoint
(:mod:`~hwnas.supernets.minilm.hf`), importance-ordered once
(:mod:`~hwnas.supernets.minilm.importance`). A sub-network keeps the first ``D`` layers and,
per layer, the ``A`` most important heads and the ``I`` most important FFN neurons; the hidden
size stays the checkpoint's. Its outputs are ``last_hidden_state`` [B, S, H] and ``logits``
[B, 2]: mean pooling and a logistic-regression probe fitted on that sub-network's embeddings of
a fixed set of MR training sentences (:class:`ProbeSettings`).

Objectives that need no training (one pass over :attr:`ProbeSettings.probe_train` +
:attr:`ProbeSettings.validation` sentences per configuration, cached; run on the shared weights
by :class:`~hwnas.supernets.minilm.fast.FastEncoder` over sentences tokenised and batched once):

* ``accuracy`` (:meth:`evaluate`) — MR validation accuracy of the probe; ``test_evaluate``: the
  same probe on MR test sentences;
* ``fidelity`` (:meth:`fidelity`) — mean cosine similarity of the mean-pooled embeddings to the
  full model's, on the first :attr:`ProbeSettings.fidelity` validation sentences.

OSE's ê (``loss``): :meth:`brief_training_network` is the extracted sub-network with its
pretrained weights and a fresh seeded linear head on the mean-pooled embedding — Bort's
setting — fine-tuned on MR's train split.

Spaces, derived from the checkpoint's config (L layers, N heads, F FFN width):

* ``<name>`` — per layer: D ∈ 1..L, A_n ∈ {N/4, N/2, 3N/4, N}, I_n ∈ {F/4, F/2, 3F/4, F};
* ``<name>-ose`` — OSE's global dimensions: A ∈ {N/3, 2N/3, N}, D ∈ {L/3, 2L/3, L},
  I ∈ {F/4, F/2, F} (27 configurations for MiniLM, enumerable).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.errors import InputError
from hwnas.space import Config, Dimension, SearchSpace
from hwnas.supernets.base import BuiltBlock, Feeds, Shape
from hwnas.supernets.bert.network import LayerSpec
from hwnas.supernets.bert.supernet import BertSpaceSettings, ElasticBert
from hwnas.supernets.minilm import hf, importance
from hwnas.supernets.minilm.fast import FastEncoder, SentenceBatches
from hwnas.supernets.minilm.network import EncoderStore, PooledProbe, SentenceEncoder, mean_pool
from hwnas.supernets.minilm.probe import fit_probe
from hwnas.task import Split, Task

NUM_LABELS = 2
EMBED_BATCH = 32
"""Sentences per forward pass of :meth:`PretrainedBert.embed` (sorted by length, trimmed)."""


@dataclass(frozen=True)
class ProbeSettings:
    """Which MR sentences the no-training objectives use (first rows of each fixed split).

    Attributes:
        probe_train: train sentences the probe is fitted on.
        validation: validation sentences ``accuracy`` is measured on.
        fidelity: validation sentences ``fidelity`` is measured on (the first of the above).
        test: test sentences ``test_evaluate`` uses.
        importance: train sentences the head/neuron importance is computed on.
        probe_c: inverse L2 strength of the logistic regression.
    """

    probe_train: int = 256
    validation: int = 256
    fidelity: int = 128
    test: int = 1000
    importance: int = 256
    probe_c: float = 1.0


class PretrainedBert(ElasticBert):
    """Elastic sub-networks of a pretrained BERT checkpoint folder (see the module doc).

    Args:
        space: one of the spaces of :func:`pretrained_spaces`.
        checkpoint_dir: the folder (config.json, model.safetensors, tokenizer.json).
        config: its config (read by the caller, so that spaces exist before the weights are read).
        task: returns the MR :class:`~hwnas.task.Task` tokenised with the checkpoint's tokenizer.
        require: raises InputError when the files are missing (e.g. naming the fetch command).
        probe: the sentences of the no-training objectives.
    """

    input_names = ("input_ids", "attention_mask", "token_type_ids")
    output_names = ("last_hidden_state", "logits")
    dynamic_axes = {
        "input_ids": {0: "batch", 1: "seq_len"},
        "attention_mask": {0: "batch", 1: "seq_len"},
        "token_type_ids": {0: "batch", 1: "seq_len"},
        "last_hidden_state": {0: "batch", 1: "seq_len"},
        "logits": {0: "batch"},
    }

    def __init__(self, space: SearchSpace, checkpoint_dir: str | Path, config: hf.BertCheckpointConfig,
                 task: Callable[[], Task], require: Callable[[], None] = lambda: None,
                 probe: ProbeSettings = ProbeSettings(), default_seq_len: int = 64):
        settings = BertSpaceSettings(config.vocab_size, config.max_positions, config.type_vocab_size, NUM_LABELS,
                                     head_dim=config.head_dim, default_seq_len=default_seq_len)
        super().__init__(space, settings, seed=0, checkpoint=None)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_config = config
        self._task_fn, self._require = task, require
        self.probe_settings = probe
        self._store: EncoderStore | None = None
        self._fast: FastEncoder | None = None
        self._sentences: dict[str, SentenceBatches] = {}
        self._scores: dict[str, tuple[float, float, np.ndarray, np.ndarray]] = {}
        self._reference: np.ndarray | None = None

    # -- weights -------------------------------------------------------------------------------
    def module(self) -> EncoderStore:
        """The checkpoint's weights, importance-ordered (read, ordered and cached on first use)."""
        if self._store is None:
            self._require()
            config = hf.read_config(self.checkpoint_dir)
            if config != self.checkpoint_config:
                raise InputError(f"{self.checkpoint_dir / hf.CONFIG_FILE} changed since the space "
                                 f"{self.name!r} was made from it")
            store = EncoderStore(config)
            store.load_state_dict(hf.read_weights(self.checkpoint_dir, config))
            store.eval()
            order = importance.cached_order(
                self.checkpoint_dir / importance.ORDER_FILE,
                importance.weights_digest(self.checkpoint_dir / hf.WEIGHTS_FILE),
                lambda: self._compute_order(store),
                {"method": "|dL/dmask| (Michel et al. 2019; DynaBERT)", "data": "MR train",
                 "sentences": self.probe_settings.importance})
            importance.apply_order(store, importance.check_order(
                order, config.layers, config.heads, config.intermediate,
                str(self.checkpoint_dir / importance.ORDER_FILE)))
            self._store = store
            self._fast = FastEncoder(store)
        return self._store

    def _compute_order(self, store: EncoderStore) -> dict[str, list[list[int]]]:
        train = self.task().train
        rows = np.arange(len(train) - min(self.probe_settings.importance, len(train)), len(train))
        return importance.compute_order(store, train, rows)

    def task(self) -> Task:
        """MR, tokenised with the checkpoint's tokenizer (fixed train / validation / test)."""
        self._require()
        return self._task_fn()

    def specs(self, config: Config) -> tuple[LayerSpec, ...]:
        """Per-layer sizes of ``config`` (validated)."""
        return self.arch(config).layers

    # -- sharing and extraction ----------------------------------------------------------------
    def forward(self, inputs: Feeds | tuple[torch.Tensor, ...], config: Config) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask, types = self._tensors(inputs)
        hidden = self.module().hidden_states(ids, mask, types, self.specs(config))
        return hidden, self.probe(config)(hidden, mask)

    def extract(self, config: Config) -> SentenceEncoder:
        return self.module().extract(self.specs(config), self.probe(config))

    def encoder(self, config: Config) -> SentenceEncoder:
        """The sub-network with an untrained probe (for embeddings only: no probe is fitted)."""
        return self.module().extract(self.specs(config), PooledProbe(self.checkpoint_config.hidden, NUM_LABELS))

    # -- the no-training objectives ------------------------------------------------------------
    def sentence_embeddings(self, config: Config, split: str, n: int) -> np.ndarray:
        """``config``'s mean-pooled embeddings of the first ``n`` sentences of the MR split ``split``
        ("train", "validation" or "test"), float32 [n, H] in row order — what
        ``mean_pool(self.encoder(config).encode(...))`` gives, computed on the shared weights
        (:class:`~hwnas.supernets.minilm.fast.FastEncoder`)."""
        specs = self.specs(config)
        self.module()
        key = f"{split}:{n}"
        if key not in self._sentences:
            self._sentences[key] = SentenceBatches.of(getattr(self.task(), split), n)
        assert self._fast is not None
        return self._fast.embed(self._sentences[key], specs)

    def embed(self, encoder: SentenceEncoder, split: Any, n: int) -> np.ndarray:
        """Mean-pooled embeddings of the first ``n`` sentences of ``split`` by a standalone
        ``encoder`` (e.g. an extracted one), float32 [n, H] (row order)."""
        n = min(n, len(split))
        rows = np.arange(n)
        lengths = split.attention_mask[:n].sum(axis=1)
        order = rows[np.argsort(lengths, kind="stable")]
        out = np.zeros((n, self.checkpoint_config.hidden), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, n, EMBED_BATCH):
                part = order[i:i + EMBED_BATCH]
                feeds = split.feeds(part, trim=True)
                tensors = [torch.as_tensor(feeds[k]) for k in self.input_names]
                out[part] = mean_pool(encoder.encode(*tensors), tensors[1]).numpy()
        return out

    def _score(self, config: Config) -> tuple[float, float, np.ndarray, np.ndarray]:
        """(validation accuracy, fidelity, probe weight [C, H], probe bias [C]) of ``config``, cached."""
        config = self.space.canonical(self.space.validate(config))
        key = self.space.key(config)
        if key not in self._scores:
            task, p = self.task(), self.probe_settings
            train = self.sentence_embeddings(config, "train", p.probe_train)
            weight, bias = fit_probe(train, task.train.labels[: len(train)], p.probe_c)
            val = self.sentence_embeddings(config, "validation", p.validation)
            labels = task.validation.labels[: len(val)]
            accuracy = float(np.mean(np.argmax(val @ weight.T + bias, axis=1) == labels))
            n = min(p.fidelity, len(val))
            reference = self.reference_embeddings()[:n]
            cosine = np.sum(val[:n] * reference, axis=1) / (
                np.linalg.norm(val[:n], axis=1) * np.linalg.norm(reference, axis=1) + 1e-12)
            self._scores[key] = (accuracy, float(np.mean(cosine)), weight, bias)
        return self._scores[key]

    def reference_embeddings(self) -> np.ndarray:
        """The full model's embeddings of the fidelity sentences, float32 [n, H] (computed once, in
        the same batches as every configuration's validation embeddings)."""
        if self._reference is None:
            p = self.probe_settings
            full = self.sentence_embeddings(self.full_config(), "validation", p.validation)
            self._reference = full[: min(p.fidelity, len(full))]
        return self._reference

    def full_config(self) -> Config:
        """The largest configuration of the space (the checkpoint itself where the space reaches it)."""
        genes = np.array([len(d.choices) - 1 for d in self.space.dimensions for _ in range(d.n_genes)])
        return self.space.canonical(self.space.from_genes(genes))

    def probe(self, config: Config) -> PooledProbe:
        """The probe fitted on ``config``'s embeddings (see :class:`ProbeSettings`)."""
        _, _, weight, bias = self._score(config)
        probe = PooledProbe(self.checkpoint_config.hidden, NUM_LABELS)
        with torch.no_grad():
            probe.classifier.weight.copy_(torch.as_tensor(weight))
            probe.classifier.bias.copy_(torch.as_tensor(bias))
        return probe.eval()

    def evaluate(self, configs: list[Config]) -> np.ndarray:
        """MR validation accuracy of each configuration's probe, float64 [N]."""
        return np.array([self._score(c)[0] for c in configs], dtype=np.float64)

    def fidelity(self, configs: list[Config]) -> np.ndarray:
        """Mean cosine similarity of each configuration's sentence embeddings to the full model's, float64 [N]."""
        return np.array([self._score(c)[1] for c in configs], dtype=np.float64)

    def test_evaluate(self, configs: list[Config]) -> np.ndarray:
        """MR test accuracy of each configuration's probe (the first ``ProbeSettings.test`` sentences)."""
        out = []
        for config in configs:
            _, _, weight, bias = self._score(config)
            test = self.task().test
            emb = self.sentence_embeddings(config, "test", self.probe_settings.test)
            out.append(float(np.mean(np.argmax(emb @ weight.T + bias, axis=1) == test.labels[: len(emb)])))
        return np.asarray(out, dtype=np.float64)

    def deployment_test_split(self) -> Split:
        """The first ``ProbeSettings.test`` MR test sentences, tokenised: what
        :meth:`test_evaluate` scores, so an exported file's accuracy (its ``logits``) compares."""
        test = self.task().test
        return test.subset(np.arange(min(self.probe_settings.test, len(test))), name="test")

    def deployment_files(self) -> dict[str, Path]:
        """The tokenizer, copied beside exported models (raw text → ids without hwnas)."""
        path = self.checkpoint_dir / hf.TOKENIZER_FILE
        return {hf.TOKENIZER_FILE: path} if path.is_file() else {}

    # -- OSE -----------------------------------------------------------------------------------
    def brief_training_network(self, config: Config, seed: int) -> nn.Module:
        """The extracted sub-network with its pretrained weights and a fresh linear head on the
        mean-pooled embedding (weights normal, std 0.02, seeded by ``seed``; bias 0): Bort's setting.
        Takes the encoder's three inputs, returns logits [b, 2]."""
        encoder = self.encoder(config)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            weight = encoder.probe.classifier.weight
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.02)
            encoder.probe.classifier.bias.zero_()
        return _LogitsOf(encoder)

    def brief_training_params(self, config: Config) -> int:
        """Parameters of :meth:`brief_training_network`: the extracted encoder with its head
        (the checkpoint's whole vocabulary; nothing is cut to the task)."""
        return self.count_params(config)

    def op_counts(self, genes: np.ndarray, shape: Shape) -> np.ndarray:
        """The elastic BERT's count with its tanh pooler swapped for mean pooling."""
        h, s, batch = self.checkpoint_config.hidden, int(shape["seq_len"]), int(shape.get("batch", 1))
        pooler = 2 * h * h + h  # h² adds, h² mults, h tanh
        pooling = s * h + h  # sum over tokens, one division per feature
        return super().op_counts(genes, shape) - batch * (pooler - pooling)

    # -- blocks and counts ---------------------------------------------------------------------
    def build_block(self, key: str, shape: Shape) -> BuiltBlock:
        info = self.parse_block(key)
        if info["kind"] != "head":
            return super().build_block(key, shape)
        batch, seq_len = shape["batch"], shape["seq_len"]
        module = PooledProbe(info["H"], NUM_LABELS)
        rng = np.random.default_rng(0)
        feeds = {"hidden": rng.standard_normal((batch, seq_len, info["H"]), dtype=np.float32),
                 "attention_mask": np.ones((batch, seq_len), dtype=np.int64)}
        axes = {"hidden": {0: "batch", 1: "seq_len"}, "attention_mask": {0: "batch", 1: "seq_len"},
                "logits": {0: "batch"}}
        return BuiltBlock(module.eval(), feeds, ("logits",), axes)

    def count_params(self, config: Config) -> int:
        """Embeddings, encoder layers and the probe (no pooler)."""
        h = self.checkpoint_config.hidden
        return super().count_params(config) - (h * h + h)

    def count_macs(self, config: Config, shape: Shape) -> int:
        h = self.checkpoint_config.hidden
        return super().count_macs(config, shape) - shape["batch"] * h * h


class _LogitsOf(nn.Module):
    """A :class:`SentenceEncoder` returning its logits only (what brief training needs)."""

    def __init__(self, encoder: SentenceEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask, token_type_ids)[1]


def _fractions(total: int, parts: tuple[int, ...], denominator: int) -> tuple[int, ...]:
    """Distinct ``round(total · k / denominator)`` for k in parts, at least 1, sorted."""
    return tuple(sorted({max(1, round(total * k / denominator)) for k in parts}))


def pretrained_spaces(name: str, config: hf.BertCheckpointConfig, supernet: str = "pretrained-bert"
                      ) -> tuple[SearchSpace, SearchSpace]:
    """The per-layer space ``name`` and the OSE space ``name-ose`` of a checkpoint (module doc)."""
    layers, heads, ffn = config.layers, config.heads, config.intermediate
    per_layer = SearchSpace(
        name=name, supernet=supernet,
        dimensions=(Dimension("D", tuple(range(1, layers + 1))),
                    Dimension("A", _fractions(heads, (1, 2, 3, 4), 4), per_layer=layers),
                    Dimension("I", _fractions(ffn, (1, 2, 3, 4), 4), per_layer=layers)),
        depth="D", fixed={"H": config.hidden})
    ose = SearchSpace(
        name=f"{name}-ose", supernet=supernet,
        dimensions=(Dimension("A", _fractions(heads, (1, 2, 3), 3)),
                    Dimension("D", _fractions(layers, (1, 2, 3), 3)),
                    Dimension("I", _fractions(ffn, (1, 2, 4), 4))),
        depth="D", fixed={"H": config.hidden})
    return per_layer, ose


def pretrained_bert_supernets(name: str, checkpoint_dir: str | Path, mr_path: Callable[[], Path] | str | Path,
                              config: hf.BertCheckpointConfig | None = None,
                              require: Callable[[], None] = lambda: None,
                              probe: ProbeSettings = ProbeSettings()) -> list[PretrainedBert]:
    """Both spaces' supernets over the checkpoint folder ``checkpoint_dir``, scored on the MR file
    ``mr_path`` — e.g. a plug-in's factory: ``pretrained_bert_supernets("mybert", "/models/mybert",
    hwnas.supernets.minilm.fetch.mr_file())``.

    ``config``: the checkpoint's config when the folder may not exist yet (built-ins before the
    fetch); default: read from the folder (InputError if missing or unsupported).
    """
    from hwnas.supernets.minilm.mr import mr_task

    checkpoint_dir = Path(checkpoint_dir)
    config = config or hf.read_config(checkpoint_dir)

    def task() -> Task:
        path = mr_path() if callable(mr_path) else mr_path
        return mr_task(str(path), str(checkpoint_dir / hf.TOKENIZER_FILE))

    spaces = pretrained_spaces(name, config)
    return [PretrainedBert(space, checkpoint_dir, config, task, require, probe) for space in spaces]


def chance_loss(num_classes: int = NUM_LABELS) -> float:
    """Cross-entropy of a uniform guess, ln C nats."""
    return math.log(num_classes)
