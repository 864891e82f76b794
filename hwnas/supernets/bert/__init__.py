"""The elastic BERT supernet (built-in): network, supernet and spaces, its synthetic task, OSE op counts."""

from hwnas.supernets.bert.network import BertArch, BertNetwork, LayerSpec, init_bert_weights
from hwnas.supernets.bert.supernet import (
    BERT_LINAS,
    BERT_MINI,
    BERT_OSE,
    BORT,
    SPACES,
    BertSpaceSettings,
    ElasticBert,
    make_bert_supernet,
    make_supernets,
)

__all__ = ["BERT_LINAS", "BERT_MINI", "BERT_OSE", "BORT", "SPACES", "BertArch", "BertNetwork",
           "BertSpaceSettings", "ElasticBert", "LayerSpec", "init_bert_weights", "make_bert_supernet",
           "make_supernets"]
