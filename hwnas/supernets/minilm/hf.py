"""Read a Hugging Face BERT-architecture checkpoint folder without ``transformers``.

A folder holds ``config.json`` (``model_type`` "bert", absolute positions, GELU), ``model.safetensors``
in the key layout of ``transformers``' ``BertModel`` (``embeddings.*``, ``encoder.layer.N.*``,
``pooler.*``) — or of a ``BertFor…`` model, the same keys under ``bert.`` beside task heads
(``cls.*``, ``classifier.*``, ignored) — and optionally ``tokenizer.json`` (the ``tokenizers``
library's format). :func:`read_config` and :func:`read_weights` turn them into
:class:`BertCheckpointConfig` and a state dict in the naming of
:mod:`hwnas.supernets.bert.network` (embeddings.word / position / token_type / norm;
layers.N.query / key / value / attn_out / attn_norm / ffn_in / ffn_out / ffn_norm).

Anything else — a missing file, another architecture, an activation or position scheme the
network does not compute, a key it does not know, a tensor of the wrong shape — is an
:class:`~hwnas.errors.InputError` naming it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from hwnas.errors import InputError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"

#: HF name of each part of one encoder layer → ours.
_LAYER_KEYS = {
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attn_out", "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ffn_in", "output.dense": "ffn_out", "output.LayerNorm": "ffn_norm",
}
_EMBED_KEYS = {"word_embeddings": "word", "position_embeddings": "position",
               "token_type_embeddings": "token_type", "LayerNorm": "norm"}
#: Keys read but not used: the pooler (sentence embeddings are mean-pooled), position ids.
_IGNORED = re.compile(r"^(pooler\.dense\.(weight|bias)|embeddings\.position_ids)$")
#: Task heads of ``BertFor…`` checkpoints (beside the ``bert.`` prefix), ignored.
_HEADS = re.compile(r"^(cls|classifier|qa_outputs)\.")
_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_EMBED_RE = re.compile(r"^embeddings\.(\w+)\.(weight|bias|gamma|beta)$")
_PARAM = {"gamma": "weight", "beta": "bias", "weight": "weight", "bias": "bias"}


@dataclass(frozen=True)
class BertCheckpointConfig:
    """The sizes of a BERT checkpoint (from its ``config.json``)."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def as_json(self) -> dict[str, object]:
        """The ``config.json`` fields these come from (a minimal BERT config)."""
        return {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
                "position_embedding_type": "absolute", "vocab_size": self.vocab_size,
                "hidden_size": self.hidden, "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads, "intermediate_size": self.intermediate,
                "max_position_embeddings": self.max_positions, "type_vocab_size": self.type_vocab_size,
                "layer_norm_eps": self.layer_norm_eps}


def _file(directory: str | os.PathLike, name: str) -> Path:
    path = Path(directory) / name
    if not Path(directory).is_dir():
        raise InputError(f"checkpoint folder {directory} does not exist")
    if not path.is_file():
        raise InputError(f"checkpoint folder {directory} has no {name}")
    return path


def parse_config(data: dict, where: str = "config.json") -> BertCheckpointConfig:
    """:class:`BertCheckpointConfig` of a parsed ``config.json``.

    Raises:
        InputError: not a BERT model, an unsupported activation or position scheme, a missing or
            non-positive size, a hidden size not divisible by the number of heads.
    """
    if not isinstance(data, dict):
        raise InputError(f"{where} is not a JSON object")
    model_type = data.get("model_type")
    if model_type != "bert":
        raise InputError(f"{where}: unsupported architecture model_type={model_type!r} (only 'bert')")
    act = data.get("hidden_act", "gelu")
    if act != "gelu":
        raise InputError(f"{where}: unsupported hidden_act={act!r} (only 'gelu', the erf form)")
    positions = data.get("position_embedding_type", "absolute")
    if positions != "absolute":
        raise InputError(f"{where}: unsupported position_embedding_type={positions!r} (only 'absolute')")
    sizes = {}
    for ours, key in (("vocab_size", "vocab_size"), ("hidden", "hidden_size"), ("layers", "num_hidden_layers"),
                      ("heads", "num_attention_heads"), ("intermediate", "intermediate_size"),
                      ("max_positions", "max_position_embeddings"), ("type_vocab_size", "type_vocab_size")):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{where}: {key} must be a positive integer, got {value!r}")
        sizes[ours] = value
    if sizes["hidden"] % sizes["heads"]:
        raise InputError(f"{where}: hidden_size {sizes['hidden']} is not divisible by "
                         f"num_attention_heads {sizes['heads']}")
    eps = data.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise InputError(f"{where}: layer_norm_eps must be in (0, 1), got {eps!r}")
    return BertCheckpointConfig(**sizes, layer_norm_eps=float(eps))


def read_config(directory: str | os.PathLike) -> BertCheckpointConfig:
    """The config of the checkpoint folder ``directory`` (see :func:`parse_config`)."""
    path = _file(directory, CONFIG_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from None
    return parse_config(data, str(path))


def expected_shapes(config: BertCheckpointConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of our naming and its shape."""
    h, i = config.hidden, config.intermediate
    out: dict[str, tuple[int, ...]] = {
        "embeddings.word.weight": (config.vocab_size, h), "embeddings.position.weight": (config.max_positions, h),
        "embeddings.token_type.weight": (config.type_vocab_size, h),
        "embeddings.norm.weight": (h,), "embeddings.norm.bias": (h,),
    }
    for n in range(config.layers):
        for part, (rows, cols) in {"query": (h, h), "key": (h, h), "value": (h, h), "attn_out": (h, h),
                                   "ffn_in": (i, h), "ffn_out": (h, i)}.items():
            out[f"layers.{n}.{part}.weight"] = (rows, cols)
            out[f"layers.{n}.{part}.bias"] = (rows,)
        for part in ("attn_norm", "ffn_norm"):
            out[f"layers.{n}.{part}.weight"] = (h,)
            out[f"layers.{n}.{part}.bias"] = (h,)
    return out


def map_key(key: str) -> str | None:
    """Our name of a ``BertModel`` key (``bert.``-prefixed or not); None for keys that are read
    but not used (pooler, position ids, task heads).

    Raises:
        InputError: a key of no BERT part.
    """
    bare = key[len("bert."):] if key.startswith("bert.") else key
    if _IGNORED.match(bare) or (bare == key and _HEADS.match(key)):
        return None
    match = _LAYER_RE.match(bare)
    if match and match.group(2) in _LAYER_KEYS:
        return f"layers.{int(match.group(1))}.{_LAYER_KEYS[match.group(2)]}.{_PARAM[match.group(3)]}"
    match = _EMBED_RE.match(bare)
    if match and match.group(1) in _EMBED_KEYS:
        return f"embeddings.{_EMBED_KEYS[match.group(1)]}.{_PARAM[match.group(2)]}"
    raise InputError(f"unexpected key {key!r} in the checkpoint (not a BertModel weight)")


def convert_state(tensors: dict[str, torch.Tensor], config: BertCheckpointConfig,
                  where: str = WEIGHTS_FILE) -> dict[str, torch.Tensor]:
    """HF-named tensors → our state dict (float32), checked against ``config``.

    Raises:
        InputError: an unexpected key, a key twice (prefixed and not), a wrong shape, a missing tensor.
    """
    want = expected_shapes(config)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(tensors):
        ours = map_key(key)
        if ours is None:
            continue
        if ours not in want:
            raise InputError(f"{where}: key {key!r} is beyond config.json's sizes "
                             f"({config.layers} layers)")
        if ours in out:
            raise InputError(f"{where}: key {key!r} appears twice (with and without the 'bert.' prefix)")
        tensor = tensors[key]
        if tuple(tensor.shape) != want[ours]:
            raise InputError(f"{where}: {key!r} has shape {tuple(tensor.shape)}, config.json implies {want[ours]}")
        out[ours] = tensor.to(torch.float32)
    missing = [k for k in want if k not in out]
    if missing:
        raise InputError(f"{where}: no tensor for {missing[0]!r} (of {len(missing)} missing)")
    return out


def read_weights(directory: str | os.PathLike, config: BertCheckpointConfig) -> dict[str, torch.Tensor]:
    """The weights of the checkpoint folder in our naming (see :func:`convert_state`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _file(directory, WEIGHTS_FILE)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable safetensors file ({exc})") from None
    return convert_state(tensors, config, str(path))
