"""Where supernets come from: the built-in spaces, or a user's plug-in module.

A plug-in is named ``package.module:factory``. The factory takes no arguments and returns a
:class:`~hwnas.supernets.base.Supernet` or an iterable of them; each one's space becomes
available by name, exactly like a built-in space.
"""

from __future__ import annotations

import importlib
from typing import Iterable

from hwnas.errors import InputError
from hwnas.space import SearchSpace
from hwnas.supernets.base import Supernet
from hwnas.supernets.bert import SPACES as BERT_SPACES
from hwnas.supernets.bert import make_bert_supernet

_REQUIRED = ("forward", "extract", "blocks", "all_blocks", "build_block", "count_params",
             "count_macs", "example_inputs", "module")


def builtin_spaces() -> dict[str, SearchSpace]:
    """The built-in spaces by name."""
    return dict(BERT_SPACES)


def load_plugin(spec: str) -> dict[str, Supernet]:
    """Import ``module:factory`` and return its supernets by space name.

    Raises:
        InputError: the spec is malformed, the module does not import, the factory is missing,
            or what it returns lacks part of the supernet protocol.
    """
    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise InputError(f"--supernet must look like 'package.module:factory', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of the user's code
        raise InputError(f"plug-in module {module_name!r} does not import: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise InputError(f"plug-in module {module_name!r} has no callable {factory_name!r}")
    made = factory()
    supernets: Iterable = [made] if not isinstance(made, (list, tuple)) else made
    out: dict[str, Supernet] = {}
    for net in supernets:
        space = getattr(net, "space", None)
        if not isinstance(space, SearchSpace):
            raise InputError(f"plug-in {spec!r} returned {type(net).__name__} without a SearchSpace 'space'")
        missing = [m for m in _REQUIRED if not callable(getattr(net, m, None))]
        if missing:
            raise InputError(f"plug-in supernet for space {space.name!r} misses method {missing[0]!r}")
        out[space.name] = net
    if not out:
        raise InputError(f"plug-in {spec!r} returned no supernet")
    return out


def get_supernet(space: str, plugin: str | None = None) -> Supernet:
    """The supernet of a space: from the plug-in when given, else a built-in one."""
    if plugin:
        nets = load_plugin(plugin)
        if space not in nets:
            raise InputError(f"plug-in {plugin!r} has no space {space!r} (has: {', '.join(nets)})")
        return nets[space]
    if space in BERT_SPACES:
        return make_bert_supernet(space)
    raise InputError(f"unknown space {space!r} (known: {', '.join(BERT_SPACES)})")
