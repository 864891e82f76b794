"""Shared fixtures. Supernets are built once per test session (bert-ose's weight store is
~160 M parameters)."""

from __future__ import annotations

import pytest
import torch

from hwnas.supernets.bert import make_bert_supernet

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bert_nets():
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = make_bert_supernet(name)
        return cache[name]

    return get
