"""Supernets: the protocol (:mod:`~hwnas.supernets.base`), its checker, the registry of providers,
and the built-in supernets (the only place that names a concrete one)."""

from hwnas.supernets.base import BuiltBlock, Supernet
from hwnas.supernets.check import SupernetCheckError, check_supernet
from hwnas.supernets.registry import available_supernets, get_supernet, load_plugin

__all__ = ["BuiltBlock", "Supernet", "SupernetCheckError", "available_supernets", "check_supernet",
           "get_supernet", "load_plugin"]
