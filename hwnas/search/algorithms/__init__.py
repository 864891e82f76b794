"""Search algorithms by name (``hwnas search --algo``).

``ose`` is registered when :mod:`hwnas.search.algorithms.ose` is present (class ``OSE``).
"""

from __future__ import annotations

import importlib.util

from hwnas.errors import InputError
from hwnas.search.algorithms.base import Algorithm, BudgetExhausted, Validate
from hwnas.search.algorithms.linas import LINAS
from hwnas.search.algorithms.nsga2 import NSGA2Search
from hwnas.search.algorithms.random import RandomSearch

ALGORITHMS: dict[str, type[Algorithm]] = {"random": RandomSearch, "nsga2": NSGA2Search, "linas": LINAS}

if importlib.util.find_spec("hwnas.search.algorithms.ose") is not None:
    from hwnas.search.algorithms.ose import OSE

    ALGORITHMS["ose"] = OSE

KNOWN = ("linas", "nsga2", "ose", "random")


def make_algorithm(name: str, **settings) -> Algorithm:
    """An algorithm by name with its settings.

    Raises:
        InputError: unknown algorithm or setting.
    """
    if name not in ALGORITHMS:
        if name in KNOWN:
            raise InputError(f"algorithm {name!r} is not available in this build (available: {', '.join(sorted(ALGORITHMS))})")
        raise InputError(f"unknown algorithm {name!r} (known: {', '.join(KNOWN)})")
    return ALGORITHMS[name](**settings)


__all__ = ["ALGORITHMS", "Algorithm", "BudgetExhausted", "Validate", "make_algorithm"]
