"""Shared fixtures. Supernets are built once per test session (bert-ose's weight store is
~160 M parameters)."""

from __future__ import annotations

import psutil
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


@pytest.fixture(autouse=True)
def _restore_cpu_affinity():
    """Profiles and measurements run in this process pin it to their ``--threads`` cores
    (:func:`hwnas.profiling.timing.pin_threads`) and leave it so; put the affinity back after
    each test, or every later subprocess, fork-server child and Ray worker inherits one core."""
    proc = psutil.Process()
    before = proc.cpu_affinity() if hasattr(proc, "cpu_affinity") else None
    yield
    if before is not None and proc.cpu_affinity() != before:
        proc.cpu_affinity(before)
