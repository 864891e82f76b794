"""A pretrained BERT encoder as a sentence encoder: weight store, sub-networks, mean pooling, probe.

The embeddings and encoder layers are those of the elastic BERT
(:mod:`hwnas.supernets.bert.network`: post-LN, erf GELU, the arithmetic of ``transformers``'
``BertModel``), loaded with a checkpoint's weights. A sub-network keeps the first ``D`` layers
and, in layer ``n``, the first ``A_n`` heads and the first ``I_n`` FFN neurons (the weights are
importance-ordered before, see :mod:`hwnas.supernets.minilm.importance`).

A :class:`SentenceEncoder` (what is extracted and exported) maps ``input_ids``,
``attention_mask``, ``token_type_ids`` (int64 [B, S]) to ``last_hidden_state`` (float32
[B, S, H]) and ``logits`` (float32 [B, C]): the mean of the unmasked tokens' hidden states (the
sentence embedding of sentence-transformers) through a linear probe.
"""

from __future__ import annotations

import torch
from torch import nn

from hwnas.supernets.bert.network import Embeddings, EncoderLayer, LayerSpec, _sliced_linear
from hwnas.supernets.minilm.hf import BertCheckpointConfig


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the unmasked positions: hidden [B, S, H], mask int [B, S] → [B, H]."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class PooledProbe(nn.Module):
    """Mean pooling and a linear probe: hidden [B, S, H], mask [B, S] → logits [B, C]."""

    def __init__(self, hidden: int, num_labels: int):
        super().__init__()
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(mean_pool(hidden, attention_mask))


class SentenceEncoder(nn.Module):
    """A standalone sub-network: (input_ids, attention_mask, token_type_ids) → (last_hidden_state, logits)."""

    def __init__(self, embeddings: Embeddings, layers: list[EncoderLayer], probe: PooledProbe):
        super().__init__()
        self.embeddings = embeddings
        self.layers = nn.ModuleList(layers)
        self.probe = probe

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor) -> torch.Tensor:
        """last_hidden_state [B, S, H]."""
        x, mask = self.embeddings(input_ids, attention_mask, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        return hidden, self.probe(hidden, attention_mask)


class EncoderStore(nn.Module):
    """The checkpoint's embeddings and layers at full size: run sliced, or cut out."""

    def __init__(self, config: BertCheckpointConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config.vocab_size, config.max_positions, config.type_vocab_size, config.hidden)
        full = LayerSpec(config.heads, config.head_dim, config.intermediate)
        self.layers = nn.ModuleList(EncoderLayer(config.hidden, full) for _ in range(config.layers))
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.eps = config.layer_norm_eps

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                      specs: tuple[LayerSpec, ...]) -> torch.Tensor:
        """last_hidden_state [B, S, H] of the sub-network with layers ``specs`` (shared weights)."""
        x, mask = self.embeddings(input_ids, attention_mask, token_type_ids)
        for layer, spec in zip(self.layers, specs):
            x = layer(x, mask, spec=spec)
        return x

    def extract(self, specs: tuple[LayerSpec, ...], probe: PooledProbe) -> SentenceEncoder:
        """The sub-network as a :class:`SentenceEncoder` with copied weights and ``probe``."""
        h = self.config.hidden
        embeddings = self.embeddings.sliced(h)
        embeddings.norm.eps = self.embeddings.norm.eps
        layers = [layer.sliced(h, spec) for layer, spec in zip(self.layers, specs)]
        new_probe = PooledProbe(h, probe.classifier.out_features)
        new_probe.classifier = _sliced_linear(probe.classifier, probe.classifier.out_features, h)
        return SentenceEncoder(embeddings, layers, new_probe).eval()
