"""The BERT-style network of the elastic BERT supernet: its parts, run whole or sliced.

Architecture: embeddings (word + position + token type 0, LayerNorm) → D post-LN encoder layers
(multi-head self-attention with ``A`` heads of size ``dh``, FFN of width ``I`` with GELU) →
pooler (tanh over [CLS]) → classifier. Inputs: ``input_ids``, ``attention_mask`` and
``token_type_ids`` (int64 [batch, seq_len]); output: ``logits`` (float32 [batch, num_labels]).

The same module classes serve as supernet parts (sliced at run time) and as the standalone
parts of an extracted sub-network (sliced once, copied), so both run exactly the same arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

LN_EPS = 1e-12
MASK_VALUE = -10000.0


# ---------------------------------------------------------------------------------------------
# Shapes of a sub-network
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSpec:
    """One encoder layer: ``heads`` × ``head_dim`` attention features, ``ffn`` FFN units."""

    heads: int
    head_dim: int
    ffn: int

    @property
    def inner(self) -> int:
        return self.heads * self.head_dim


@dataclass(frozen=True)
class BertArch:
    """Fixed sizes of a BERT-style network (of the supernet, or of one sub-network)."""

    vocab_size: int
    max_positions: int
    type_vocab_size: int
    num_labels: int
    hidden: int
    layers: tuple[LayerSpec, ...]


# ---------------------------------------------------------------------------------------------
# Parts: each runs at its full size, or sliced to smaller sizes (supernet use)
# ---------------------------------------------------------------------------------------------
def _linear(layer: nn.Linear, out_features: int, in_features: int, x: torch.Tensor) -> torch.Tensor:
    if out_features == layer.out_features and in_features == layer.in_features:
        return layer(x)
    return F.linear(x, layer.weight[:out_features, :in_features], layer.bias[:out_features])


def _layer_norm(ln: nn.LayerNorm, hidden: int, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (hidden,), ln.weight[:hidden], ln.bias[:hidden], ln.eps)


def _sliced_linear(layer: nn.Linear, out_features: int, in_features: int) -> nn.Linear:
    # skip_init: a random initialisation would only be overwritten (for BERT-large-sized
    # sub-networks a noticeable part of the profiler's export).
    new = skip_init(nn.Linear, in_features, out_features)
    with torch.no_grad():
        new.weight.copy_(layer.weight[:out_features, :in_features])
        new.bias.copy_(layer.bias[:out_features])
    return new


def _sliced_layer_norm(ln: nn.LayerNorm, hidden: int) -> nn.LayerNorm:
    new = skip_init(nn.LayerNorm, hidden, eps=ln.eps)
    with torch.no_grad():
        new.weight.copy_(ln.weight[:hidden])
        new.bias.copy_(ln.bias[:hidden])
    return new


class Embeddings(nn.Module):
    """Token ids, mask and token types (int64 [B, S]) → hidden states [B, S, H] and the additive
    attention mask [B, 1, 1, S]."""

    def __init__(self, vocab_size: int, max_positions: int, type_vocab_size: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.word = nn.Embedding(vocab_size, hidden)
        self.position = nn.Embedding(max_positions, hidden)
        self.token_type = nn.Embedding(type_vocab_size, hidden)
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        hidden: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = hidden or self.hidden
        seq_len = input_ids.shape[1]
        if h == self.hidden:
            words, positions, types = self.word.weight, self.position.weight, self.token_type.weight
        else:
            words, positions = self.word.weight[:, :h], self.position.weight[:, :h]
            types = self.token_type.weight[:, :h]
        x = F.embedding(input_ids, words) + positions[:seq_len] + F.embedding(token_type_ids, types)
        x = _layer_norm(self.norm, h, x)
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * MASK_VALUE
        return x, mask

    def sliced(self, hidden: int) -> Embeddings:
        new = Embeddings.__new__(Embeddings)
        nn.Module.__init__(new)
        new.hidden = hidden
        with torch.no_grad():  # _weight: no random initialisation to overwrite
            for name in ("word", "position", "token_type"):
                table = getattr(self, name).weight
                setattr(new, name, nn.Embedding(table.shape[0], hidden, _weight=table[:, :hidden].clone()))
        new.norm = _sliced_layer_norm(self.norm, hidden)
        return new


class EncoderLayer(nn.Module):
    """Post-LN transformer encoder layer: x [B, S, H], mask [B, 1, 1, S] → [B, S, H]."""

    def __init__(self, hidden: int, spec: LayerSpec):
        super().__init__()
        self.hidden, self.spec = hidden, spec
        self.query = nn.Linear(hidden, spec.inner)
        self.key = nn.Linear(hidden, spec.inner)
        self.value = nn.Linear(hidden, spec.inner)
        self.attn_out = nn.Linear(spec.inner, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.ffn_in = nn.Linear(hidden, spec.ffn)
        self.ffn_out = nn.Linear(spec.ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, hidden: int | None = None, spec: LayerSpec | None = None
    ) -> torch.Tensor:
        h, s = hidden or self.hidden, spec or self.spec
        batch, seq_len = x.shape[0], x.shape[1]

        def heads(t: torch.Tensor) -> torch.Tensor:  # [B, S, A·dh] → [B, A, S, dh]
            return t.view(batch, seq_len, s.heads, s.head_dim).transpose(1, 2)

        q = heads(_linear(self.query, s.inner, h, x)) * (1.0 / math.sqrt(s.head_dim))
        k = heads(_linear(self.key, s.inner, h, x))
        v = heads(_linear(self.value, s.inner, h, x))
        probs = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(batch, seq_len, s.inner)
        x = _layer_norm(self.attn_norm, h, x + _linear(self.attn_out, h, s.inner, context))
        y = F.gelu(_linear(self.ffn_in, s.ffn, h, x))
        return _layer_norm(self.ffn_norm, h, x + _linear(self.ffn_out, h, s.ffn, y))

    def sliced(self, hidden: int, spec: LayerSpec) -> EncoderLayer:
        new = EncoderLayer.__new__(EncoderLayer)
        nn.Module.__init__(new)
        new.hidden, new.spec = hidden, spec
        new.query = _sliced_linear(self.query, spec.inner, hidden)
        new.key = _sliced_linear(self.key, spec.inner, hidden)
        new.value = _sliced_linear(self.value, spec.inner, hidden)
        new.attn_out = _sliced_linear(self.attn_out, hidden, spec.inner)
        new.attn_norm = _sliced_layer_norm(self.attn_norm, hidden)
        new.ffn_in = _sliced_linear(self.ffn_in, spec.ffn, hidden)
        new.ffn_out = _sliced_linear(self.ffn_out, hidden, spec.ffn)
        new.ffn_norm = _sliced_layer_norm(self.ffn_norm, hidden)
        return new


class Head(nn.Module):
    """Pooler (tanh over the [CLS] position) and classifier: [B, S, H] → logits [B, C]."""

    def __init__(self, hidden: int, num_labels: int):
        super().__init__()
        self.hidden = hidden
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor, hidden: int | None = None) -> torch.Tensor:
        h = hidden or self.hidden
        pooled = torch.tanh(_linear(self.pooler, h, h, x[:, 0]))
        return _linear(self.classifier, self.classifier.out_features, h, pooled)

    def sliced(self, hidden: int) -> Head:
        new = Head(hidden, self.classifier.out_features)
        new.pooler = _sliced_linear(self.pooler, hidden, hidden)
        new.classifier = _sliced_linear(self.classifier, self.classifier.out_features, hidden)
        return new


class BertNetwork(nn.Module):
    """A whole BERT-style network of fixed sizes: (input_ids, attention_mask, token_type_ids)
    → logits [B, C].

    As a standalone sub-network it runs at its own sizes; as the supernet's weight store it is
    built at the largest sizes and run sliced through :meth:`forward_sliced`.
    """

    def __init__(self, arch: BertArch):
        super().__init__()
        self.arch = arch
        self.embeddings = Embeddings(arch.vocab_size, arch.max_positions, arch.type_vocab_size, arch.hidden)
        self.layers = nn.ModuleList(EncoderLayer(arch.hidden, spec) for spec in arch.layers)
        self.head = Head(arch.hidden, arch.num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        x, mask = self.embeddings(input_ids, attention_mask, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask)
        return self.head(x)

    def forward_sliced(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor, sub: BertArch
    ) -> torch.Tensor:
        h = sub.hidden
        x, mask = self.embeddings(input_ids, attention_mask, token_type_ids, hidden=h)
        for layer, spec in zip(self.layers, sub.layers):
            x = layer(x, mask, hidden=h, spec=spec)
        return self.head(x, hidden=h)

    def extract(self, sub: BertArch) -> BertNetwork:
        new = BertNetwork.__new__(BertNetwork)
        nn.Module.__init__(new)
        new.arch = sub
        new.embeddings = self.embeddings.sliced(sub.hidden)
        new.layers = nn.ModuleList(
            layer.sliced(sub.hidden, spec) for layer, spec in zip(self.layers, sub.layers)
        )
        new.head = self.head.sliced(sub.hidden)
        return new.eval()


def init_bert_weights(module: nn.Module, seed: int) -> None:
    """BERT's initialisation (weights normal with std 0.02), seeded.

    Biases and LayerNorm parameters get small seeded noise around BERT's 0 and 1 instead of
    exact constants: the ONNX exporter merges initializers with identical values, which would
    make an untrained model's weight tensors undercount its parameters.
    """
    generator = torch.Generator().manual_seed(seed)

    def noise(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * 0.02

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Embedding)):
                sub.weight.copy_(noise(sub.weight.shape))
                if isinstance(sub, nn.Linear):
                    sub.bias.copy_(noise(sub.bias.shape))
            elif isinstance(sub, nn.LayerNorm):
                sub.weight.copy_(1.0 + noise(sub.weight.shape))
                sub.bias.copy_(noise(sub.bias.shape))
