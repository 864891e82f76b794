"""Search algorithms by name (``hwnas search --algo``), all driven by ask/tell
(:class:`~hwnas.search.algorithms.base.Algorithm`)."""

from __future__ import annotations

from hwnas.errors import InputError
from hwnas.search.algorithms.base import Algorithm, Proposal
from hwnas.search.algorithms.linas import LINAS
from hwnas.search.algorithms.nsga2 import NSGA2Search
from hwnas.search.algorithms.ose import OSE
from hwnas.search.algorithms.random import RandomSearch

ALGORITHMS: dict[str, type[Algorithm]] = {"random": RandomSearch, "nsga2": NSGA2Search, "linas": LINAS, "ose": OSE}


def make_algorithm(name: str, **settings) -> Algorithm:
    """An algorithm by name with its settings, checked.

    Raises:
        InputError: unknown algorithm, unknown setting or a bad setting value.
    """
    if name not in ALGORITHMS:
        raise InputError(f"unknown algorithm {name!r} (known: {', '.join(sorted(ALGORITHMS))})")
    return ALGORITHMS[name](**settings)


__all__ = ["ALGORITHMS", "Algorithm", "Proposal", "make_algorithm"]
