"""Declarative checks for user settings (CLI flags, algorithm settings, config keys).

Two layers:

* functions — ``check_int(name, value, lo, hi=None)``, ``check_float``, ``check_probability``,
  ``check_choice``, ``check_bool`` — return the value normalised (Python ``int`` / ``float`` /
  ``bool``) or raise :class:`~hwnas.errors.InputError` with one line naming the setting and
  the bad value;
* specs — :class:`Int`, :class:`Float`, :class:`Probability`, :class:`Choice`, :class:`Bool` —
  the same checks as values, for a ``schema`` mapping each setting to its check, applied by
  :func:`check_settings`.

Every numeric check rejects ``bool`` (``True`` is an ``int`` to Python, never a count to a
user), strings and other non-numbers; float checks also reject NaN and ±inf. Integer checks
accept Python and numpy integers only (``3.0`` is refused: a count given as a float is a typo
more often than not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import InputError

#: A check: (setting name, value) -> normalised value, or InputError.
Check = Callable[[str, Any], Any]


def _is_int(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def _is_real(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else "finite"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (either bound optional)."""
    if not _is_int(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None and lo is not None:
            bounds = f">= {lo}"
        elif lo is None and hi is not None:
            bounds = f"<= {hi}"
        elif lo is not None:
            bounds = f"in [{lo}, {hi}]"
        else:
            bounds = ""
        raise InputError(f"{name} must be an integer{' ' + bounds if bounds else ''}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite ``float`` between ``lo`` and ``hi`` (closed unless ``*_open``)."""
    ok = _is_real(value) and math.isfinite(float(value))
    if ok:
        x = float(value)
        ok = (lo is None or (x > lo if lo_open else x >= lo)) and (hi is None or (x < hi if hi_open else x <= hi))
    if not ok:
        raise InputError(f"{name} must be a number {_interval(lo, hi, lo_open, hi_open)}, got {value!r}")
    return float(value)


def check_probability(name: str, value: Any) -> float:
    """``value`` as a ``float`` in [0, 1]."""
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:  # NaN fails the comparison too
        raise InputError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` when it is one of ``choices`` (compared with ``==``, types must match)."""
    options = tuple(choices)
    if not any(type(value) is type(c) and value == c for c in options):
        raise InputError(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is ``True`` or ``False`` (not 0/1, not "yes")."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be true or false, got {value!r}")
    return bool(value)


# ---------------------------------------------------------------------------------------------
# Specs: the checks as values, for a declarative schema
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Int:
    """An integer in ``[lo, hi]``."""

    lo: int | None = None
    hi: int | None = None

    def __call__(self, name: str, value: Any) -> int:
        return check_int(name, value, self.lo, self.hi)


@dataclass(frozen=True)
class Float:
    """A finite number between ``lo`` and ``hi`` (closed unless ``*_open``)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __call__(self, name: str, value: Any) -> float:
        return check_float(name, value, self.lo, self.hi, lo_open=self.lo_open, hi_open=self.hi_open)


@dataclass(frozen=True)
class Probability:
    """A number in [0, 1]."""

    def __call__(self, name: str, value: Any) -> float:
        return check_probability(name, value)


@dataclass(frozen=True)
class Choice:
    """One of ``choices``."""

    choices: tuple[Any, ...]

    def __call__(self, name: str, value: Any) -> Any:
        return check_choice(name, value, self.choices)


@dataclass(frozen=True)
class Bool:
    """True or false."""

    def __call__(self, name: str, value: Any) -> bool:
        return check_bool(name, value)


def check_settings(settings: Mapping[str, Any], schema: Mapping[str, Check], prefix: str = "") -> dict[str, Any]:
    """Every setting checked by its schema entry (``prefix`` + key names it in messages).

    Settings without a schema entry pass unchanged; unknown keys are the caller's business.

    Returns:
        a new dict, same keys and order, with the normalised values.
    """
    return {key: schema[key](f"{prefix}{key}", value) if key in schema else value
            for key, value in settings.items()}


__all__ = ["Bool", "Check", "Choice", "Float", "Int", "Probability", "check_bool", "check_choice",
           "check_float", "check_int", "check_probability", "check_settings"]
