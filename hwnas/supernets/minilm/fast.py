"""Mean-pooled sentence embeddings of many sub-networks of one weight store, fast.

What the no-training objectives spend their time on is running a sub-network over a few hundred
fixed sentences. :class:`FastEncoder` computes exactly what
:meth:`~hwnas.supernets.minilm.network.SentenceEncoder.encode` followed by
:func:`~hwnas.supernets.minilm.network.mean_pool` computes (the same post-LN layers, erf GELU,
additive attention mask), with less work around the matrix products:

* no copy of the sub-network: each layer runs on views of the importance-ordered full weights
  (the first ``A`` heads' rows, the first ``I`` neurons' rows and columns);
* Q, K and V are one matrix product: their rows are stored once, interleaved by head
  (head 0's q, k, v, head 1's …), so the first ``A`` heads are the first ``3·A·dh`` rows;
* attention through :func:`torch.nn.functional.scaled_dot_product_attention` (no transposed
  copies of Q, K, V, the softmax fused).

:class:`SentenceBatches` holds a fixed set of tokenised sentences as tensors once, sorted by
length and cut into small batches trimmed to their longest sentence, so that padding costs
little (batch 128 over MR's lengths pads ~60% extra tokens, batch 32 ~14%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.supernets.bert.network import MASK_VALUE, LayerSpec
from hwnas.supernets.minilm.network import EncoderStore

TOKENS = 512
"""Padded tokens per forward pass (sentences are length-sorted, so a batch pads little)."""


@dataclass(frozen=True)
class SentenceBatches:
    """Tokenised sentences as length-sorted, trimmed batches of tensors.

    Attributes:
        batches: (input_ids, attention_mask, token_type_ids) int64 [b, s] per batch.
        rows: for each batch, the positions of its sentences in the original order, int64 [b].
        count: the number of sentences.
    """

    batches: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]
    rows: tuple[np.ndarray, ...]
    count: int

    @classmethod
    def of(cls, split, n: int, tokens: int = TOKENS) -> SentenceBatches:
        """The first ``n`` sentences of ``split`` (a :class:`~hwnas.supernets.minilm.mr.TokenSplit`),
        shortest first, in batches of at most ``tokens`` padded tokens (at least one sentence)."""
        n = min(n, len(split))
        lengths = split.attention_mask[:n].sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        starts = [0]
        for i in range(1, n):  # sorted: the padded size of a batch is its count × its last length
            if (i - starts[-1] + 1) * lengths[order[i]] > tokens:
                starts.append(i)
        batches, rows = [], []
        for start, end in zip(starts, starts[1:] + [n]):
            part = order[start:end]
            feeds = split.feeds(part, trim=True)
            batches.append(tuple(torch.as_tensor(feeds[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))
            rows.append(part)
        return cls(tuple(batches), tuple(rows), n)


class FastEncoder:
    """Mean-pooled embeddings of any sub-network of an (importance-ordered) :class:`EncoderStore`.

    Built from the store's weights as they are (apply the importance order first); later changes
    to the store are not seen.
    """

    def __init__(self, store: EncoderStore):
        config = store.config
        self.hidden, self.head_dim = config.hidden, config.head_dim
        self.heads, self.ffn = config.heads, config.intermediate
        emb = store.embeddings
        self.word, self.position, self.token_type = (emb.word.weight.detach(), emb.position.weight.detach(),
                                                     emb.token_type.weight.detach())
        self.embed_norm = (emb.norm.weight.detach(), emb.norm.bias.detach(), emb.norm.eps)
        self.layers = []
        n, d, h = config.heads, config.head_dim, config.hidden
        with torch.no_grad():
            for layer in store.layers:
                qkv_w = torch.stack([lin.weight.view(n, d, h) for lin in (layer.query, layer.key, layer.value)], 1)
                qkv_b = torch.stack([lin.bias.view(n, d) for lin in (layer.query, layer.key, layer.value)], 1)
                self.layers.append({
                    "qkv_w": qkv_w.reshape(n * 3 * d, h).contiguous(), "qkv_b": qkv_b.reshape(-1).contiguous(),
                    "out_w": layer.attn_out.weight.detach(), "out_b": layer.attn_out.bias.detach(),
                    "norm1": (layer.attn_norm.weight.detach(), layer.attn_norm.bias.detach(), layer.attn_norm.eps),
                    "in_w": layer.ffn_in.weight.detach(), "in_b": layer.ffn_in.bias.detach(),
                    "ffn_w": layer.ffn_out.weight.detach(), "ffn_b": layer.ffn_out.bias.detach(),
                    "norm2": (layer.ffn_norm.weight.detach(), layer.ffn_norm.bias.detach(), layer.ffn_norm.eps)})

    def _layer(self, index: int, x: torch.Tensor, mask: torch.Tensor, spec: LayerSpec) -> torch.Tensor:
        p, d, h = self.layers[index], self.head_dim, self.hidden
        a, i = spec.heads, spec.ffn
        batch, seq_len = x.shape[0], x.shape[1]
        qkv = F.linear(x, p["qkv_w"][: 3 * a * d], p["qkv_b"][: 3 * a * d])
        q, k, v = qkv.view(batch, seq_len, a, 3, d).permute(3, 0, 2, 1, 4).unbind(0)  # each [B, A, S, dh]
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        context = context.transpose(1, 2).reshape(batch, seq_len, a * d)
        x = F.layer_norm(x + F.linear(context, p["out_w"][:, : a * d], p["out_b"]), (h,), *p["norm1"])
        y = F.gelu(F.linear(x, p["in_w"][:i], p["in_b"][:i]))
        return F.layer_norm(x + F.linear(y, p["ffn_w"][:, :i], p["ffn_b"]), (h,), *p["norm2"])

    def embed(self, sentences: SentenceBatches, specs: tuple[LayerSpec, ...]) -> np.ndarray:
        """Mean-pooled last hidden states of the sub-network with layers ``specs``, float32 [n, H]
        in the sentences' original order."""
        if len(specs) > len(self.layers) or any(s.head_dim != self.head_dim or not 1 <= s.heads <= self.heads
                                                or not 1 <= s.ffn <= self.ffn for s in specs):
            raise ValueError(f"layer specs {specs} do not fit the store ({len(self.layers)} layers, head size "
                             f"{self.head_dim}, {self.heads} heads, {self.ffn} FFN neurons)")
        out = np.zeros((sentences.count, self.hidden), dtype=np.float32)
        with torch.inference_mode():
            for (ids, attention, types), rows in zip(sentences.batches, sentences.rows):
                seq_len = ids.shape[1]
                x = F.embedding(ids, self.word) + self.position[:seq_len] + F.embedding(types, self.token_type)
                x = F.layer_norm(x, (self.hidden,), *self.embed_norm)
                mask = (1.0 - attention[:, None, None, :].to(x.dtype)) * MASK_VALUE
                for index, spec in enumerate(specs):
                    x = self._layer(index, x, mask, spec)
                weights = attention.to(x.dtype).unsqueeze(-1)
                out[rows] = ((x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)).numpy()
        return out
