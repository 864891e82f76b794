"""Where supernets come from: the built-in spaces, or a user's plug-in module.

A plug-in is named ``package.module:factory``. The factory takes no arguments and returns a
:class:`~hwnas.supernets.base.Supernet` or an iterable of them; each one's space becomes
available by name, exactly like a built-in space.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping

from hwnas.errors import InputError
from hwnas.space import SearchSpace
from hwnas.supernets.base import Supernet
from hwnas.supernets.bert import SPACES as BERT_SPACES
from hwnas.supernets.bert import make_bert_supernet

_REQUIRED = ("forward", "extract", "blocks", "all_blocks", "build_block", "count_params",
             "count_macs", "example_inputs", "module")
_ATTRIBUTES = ("input_names", "output_names", "default_shape")


def builtin_spaces() -> dict[str, SearchSpace]:
    """The built-in spaces by name."""
    return dict(BERT_SPACES)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut to its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_plugin(spec: str) -> dict[str, Supernet]:
    """Import ``module:factory``, call the factory and return its supernets by space name.

    The current directory is searched for the module too (after ``sys.path``), so a plug-in
    file beside the user works without setting ``PYTHONPATH``.

    Raises:
        InputError: the spec is malformed, the module does not import, the factory is missing
            or raises, or what it returns is not a :class:`Supernet` with the whole protocol.
    """
    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise InputError(f"--supernet must look like 'package.module:factory', got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 — any import-time failure of the user's code
        raise InputError(f"plug-in module {module_name!r} does not import: {_one_line(exc)}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise InputError(f"plug-in module {module_name!r} has no callable {factory_name!r}")
    try:
        made = factory()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 — the user's factory failed
        raise InputError(f"plug-in factory {spec!r} raised {_one_line(exc)}") from None
    if isinstance(made, Mapping):
        made = list(made.values())
    elif made is None or hasattr(made, "space") or not isinstance(made, Iterable):
        made = [made]
    out: dict[str, Supernet] = {}
    for net in made:
        space = getattr(net, "space", None)
        if not isinstance(space, SearchSpace):
            raise InputError(f"plug-in {spec!r} returned {type(net).__name__}, not a supernet with a SearchSpace 'space'")
        missing = [m for m in _REQUIRED if not callable(getattr(net, m, None))]
        missing += [a for a in _ATTRIBUTES if getattr(net, a, None) is None]
        if missing:
            raise InputError(f"plug-in {spec!r}: supernet for space {space.name!r} misses {missing[0]!r}")
        if not isinstance(net, Supernet):
            raise InputError(f"plug-in {spec!r}: supernet for space {space.name!r} is a {type(net).__name__}; "
                             "subclass hwnas.supernets.base.Supernet")
        if space.name in out:
            raise InputError(f"plug-in {spec!r} returned two supernets for space {space.name!r}")
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
