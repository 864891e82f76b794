"""Pretrained BERT checkpoints as supernets (Bort-style sub-networks), with the built-in
all-MiniLM-L6-v2 on MR sentence polarity (``minilm-mr``, ``minilm-mr-ose``).

The built-in spaces exist before their files are fetched (their config is recorded here, and
checked against the fetched ``config.json`` by its SHA-256); anything that needs the weights or
the sentences exits 2 naming ``hwnas fetch minilm-mr`` until they are in the cache.
"""

from hwnas.supernets.minilm.hf import BertCheckpointConfig, parse_config, read_config, read_weights
from hwnas.supernets.minilm.supernet import (
    PretrainedBert,
    ProbeSettings,
    pretrained_bert_supernets,
    pretrained_spaces,
)

#: all-MiniLM-L6-v2's config.json (the fields read; the fetched file's hash pins it).
MINILM_CONFIG = BertCheckpointConfig(vocab_size=30522, hidden=384, layers=6, heads=12, intermediate=1536,
                                     max_positions=512, type_vocab_size=2, layer_norm_eps=1e-12)
BUILTIN_NAME = "minilm-mr"


def make_minilm_supernets(probe: ProbeSettings = ProbeSettings()) -> list[PretrainedBert]:
    """``minilm-mr`` and ``minilm-mr-ose`` over the cached all-MiniLM-L6-v2 and MR."""
    from hwnas.supernets.minilm import fetch

    return pretrained_bert_supernets(BUILTIN_NAME, fetch.model_dir(), fetch.mr_file, config=MINILM_CONFIG,
                                     require=fetch.require, probe=probe)


def make_supernets() -> list[PretrainedBert]:
    """The built-in provider (nothing is read until a supernet's weights or data are used)."""
    return make_minilm_supernets()


__all__ = ["MINILM_CONFIG", "BertCheckpointConfig", "PretrainedBert", "ProbeSettings", "make_minilm_supernets",
           "make_supernets", "parse_config", "pretrained_bert_supernets", "pretrained_spaces", "read_config",
           "read_weights"]
