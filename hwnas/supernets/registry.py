"""Where supernets come from: providers named ``package.module:factory``.

A provider's factory takes no arguments and returns a
:class:`~hwnas.supernets.base.Supernet` or an iterable of them; each one's space becomes
available by name. Providers are found in three places, in this order:

1. the built-in ones (:data:`BUILTIN_PROVIDERS`);
2. installed packages that declare one under the ``hwnas.supernets`` entry-point group (as
   pytest finds its plug-ins), e.g. in the package's ``pyproject.toml``::

       [project.entry-points."hwnas.supernets"]
       my-supernet = "my_package.supernets:make_supernets"

3. the one named on the command line (``--supernet MODULE:FACTORY``), which also wins over the
   others when it provides a space of the same name.

Built-in and entry-point providers are imported only when a space is looked up or listed; an
entry point that fails to load is skipped with a warning naming it (it must not break hwnas),
while a failing ``--supernet`` is an InputError.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata

from hwnas.errors import InputError
from hwnas.space import SearchSpace
from hwnas.supernets.base import Supernet

ENTRY_POINT_GROUP = "hwnas.supernets"

#: The providers shipped with hwnas.
BUILTIN_PROVIDERS = ("hwnas.supernets.bert:make_supernets", "hwnas.supernets.mbv3:make_supernets",
                     "hwnas.supernets.minilm:make_supernets")

#: The built-in default space (``hwnas quickstart``): trained weights ship with the package.
DEFAULT_SPACE = "bert-mini"

_REQUIRED = ("forward", "extract", "blocks", "all_blocks", "build_block", "count_params",
             "count_macs", "example_inputs", "module")
_ATTRIBUTES = ("input_names", "output_names", "default_shape")


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut to its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def load_plugin(spec: str) -> dict[str, Supernet]:
    """Import ``module:factory``, call the factory and return its supernets by space name.

    The current directory is searched for the module too (after ``sys.path``), so a plug-in
    file beside the user works without setting ``PYTHONPATH``.

    Raises:
        InputError: the spec is malformed, the module does not import, the factory is missing,
            raises or exits, or what it returns is not a :class:`Supernet` with the whole protocol.
    """
    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise InputError(f"--supernet must look like 'package.module:factory', got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 — any import-time failure of the user's code
        raise InputError(f"plug-in module {module_name!r} does not import: {_one_line(exc)}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise InputError(f"plug-in module {module_name!r} has no callable {factory_name!r}")
    try:
        made = factory()
    except InputError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 — the user's factory failed
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


def entry_point_providers() -> list[str]:
    """``module:factory`` of every provider installed packages declare under
    :data:`ENTRY_POINT_GROUP`, sorted by entry-point name."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [ep.value for ep in sorted(found, key=lambda ep: ep.name)]


def _installed() -> dict[str, tuple[str, Supernet]]:
    """Supernets of the built-in and entry-point providers: space name → (provider, supernet)."""
    out: dict[str, tuple[str, Supernet]] = {}
    for spec in BUILTIN_PROVIDERS:
        for name, net in load_plugin(spec).items():
            out.setdefault(name, (spec, net))
    for spec in entry_point_providers():
        try:
            nets = load_plugin(spec)
        except InputError as exc:
            warnings.warn(f"hwnas.supernets entry point {spec!r} skipped: {exc}", stacklevel=2)
            continue
        for name, net in nets.items():
            if name in out:
                warnings.warn(f"hwnas.supernets entry point {spec!r}: space {name!r} is already provided by "
                              f"{out[name][0]!r}; ignored", stacklevel=2)
                continue
            out[name] = (spec, net)
    return out


def available_supernets(plugin: str | None = None) -> dict[str, Supernet]:
    """Every supernet hwnas can find (see module doc), by space name; ``plugin``'s win."""
    nets = {name: net for name, (_, net) in _installed().items()}
    if plugin:
        nets.update(load_plugin(plugin))
    return nets


def builtin_spaces() -> dict[str, SearchSpace]:
    """The spaces of the built-in and installed providers, by name."""
    return {name: net.space for name, (_, net) in _installed().items()}


def get_supernet(space: str, plugin: str | None = None) -> Supernet:
    """A fresh supernet of ``space``: from ``plugin`` when given, else from the built-in and
    installed providers.

    Raises:
        InputError: no provider has the space (naming the spaces that exist).
    """
    if plugin:
        nets = load_plugin(plugin)
        if space not in nets:
            raise InputError(f"plug-in {plugin!r} has no space {space!r} (has: {', '.join(nets)})")
        return nets[space]
    installed = _installed()
    if space not in installed:
        raise InputError(f"unknown space {space!r} (known: {', '.join(installed)})")
    return installed[space][1]
