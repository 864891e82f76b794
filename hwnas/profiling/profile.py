"""The profile file: one device context's latency lookup table and calibration set.

JSON, schema ``hwnas-profile/1`` (documented in the README). Written atomically (temporary
file in the same directory, then ``os.replace``), so a crash never leaves a half-written
profile and an existing good profile is only ever replaced by a complete, newer one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import InputError
from hwnas.fileio import atomic_write_text

SCHEMA = "hwnas-profile/1"


@dataclass
class Profile:
    """Latency lookup table of one space on one device context.

    Attributes:
        space: space name.
        device: fingerprint of the device (see :mod:`hwnas.profiling.fingerprint`) plus ``id``.
        settings: ep, threads, shape (batch, seq_len, …), warm-up/repeat policy, calibration size.
        blocks: block key → timing dict (``median_ms``, ``q1_ms``, ``q3_ms``, ``p90_ms``, …).
        calibration: whole sub-networks measured end to end: ``{"config", "median_ms", …}``.
        noise_floor: how much an item's round medians differ (median and max over items of
            (max - min) / median), the reference blocks and their largest drift.
        noise: the interference report (:func:`hwnas.profiling.rounds.noise_report`):
            ``noisy`` and how noisy; empty for profiles made before it.
        placement: for a provider other than the CPU's, how many graph nodes ran on each
            provider (summed over items), from ONNX Runtime's session profiling.
        progress: the measurement schedule's state while the profile is being made (resumed
            from it); empty once measured.
        failures: block or calibration key → error message.
        stats: wall, ONNX Runtime run, export and session seconds of the runs that made it.
    """

    space: str
    device: dict[str, Any]
    settings: dict[str, Any]
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    noise_floor: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    placement: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    complete: bool = False
    hwnas_version: str = ""
    source: str = field(default="profile", compare=False, repr=False)  # for messages; not saved

    @property
    def shape(self) -> dict[str, int]:
        return dict(self.settings["shape"])

    @property
    def ep(self) -> str:
        return str(self.settings["ep"])

    @property
    def precision(self) -> str:
        """``fp32`` or ``int8`` (profiles made before INT8 are FP32)."""
        return str(self.settings.get("precision", "fp32"))

    @property
    def noisy(self) -> bool:
        """True when the profiler could not get a clean measurement of every item."""
        return bool(self.noise.get("noisy"))

    def noise_warning(self) -> str | None:
        """The warning a noisy profile gives wherever it is loaded, else None."""
        if not self.noisy:
            return None
        from hwnas.profiling.rounds import describe_noise

        return (f"{self.source} is noisy: {describe_noise(self.noise)}; its predictions may be off - profile "
                "again (into another file) on a quiet machine")

    def block_ms(self, key: str) -> float:
        """Median latency (ms) of a measured block."""
        try:
            return float(self.blocks[key]["median_ms"])
        except KeyError:
            raise InputError(f"profile of {self.space!r} has no measurement of block {key!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "hwnas_version": self.hwnas_version,
            "space": self.space,
            "complete": self.complete,
            "device": self.device,
            "settings": self.settings,
            "blocks": self.blocks,
            "calibration": self.calibration,
            "noise_floor": self.noise_floor,
            "noise": self.noise,
            "placement": self.placement,
            "progress": self.progress,
            "failures": self.failures,
            "stats": self.stats,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temporary file beside ``path``, then rename over it."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "profile") -> Profile:
        if not isinstance(data, dict):
            raise InputError(f"{source} is not a hwnas profile (not a JSON object)")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise InputError(f"{source} has schema {schema!r}; this hwnas reads {SCHEMA!r}")
        try:
            profile = cls(
                space=str(data["space"]),
                device=dict(data["device"]),
                settings=dict(data["settings"]),
                blocks=dict(data["blocks"]),
                calibration=list(data["calibration"]),
                noise_floor=dict(data.get("noise_floor") or {}),
                noise=dict(data.get("noise") or {}),
                placement=dict(data.get("placement") or {}),
                progress=dict(data.get("progress") or {}),
                failures=dict(data.get("failures") or {}),
                stats=dict(data.get("stats") or {}),
                complete=bool(data.get("complete", False)),
                hwnas_version=str(data.get("hwnas_version", "")),
            )
            dict(profile.settings["shape"]), str(profile.settings["ep"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source} is corrupt: missing or bad field {exc}") from None
        for key, timing in profile.blocks.items():
            _check_timing(timing, f"blocks[{_clip(key)}]", source)
        for number, entry in enumerate(profile.calibration):
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise InputError(f"{source} is corrupt: field 'calibration[{number}].config' is missing or "
                                 "not an object")
            _check_timing(entry, f"calibration[{number}]", source)
        profile.source = source
        return profile

    def check_configs(self, space: Any) -> None:
        """Refuse a calibration entry that is not a valid configuration of ``space``
        (a :class:`~hwnas.space.SearchSpace`), naming the file and the entry."""
        for number, entry in enumerate(self.calibration):
            try:
                space.validate(entry["config"])
            except InputError as exc:
                raise InputError(f"{self.source} is corrupt: field 'calibration[{number}].config' is not a valid "
                                 f"configuration ({_clip(str(exc), 200)})") from None


#: Latency fields a timing must have; every other ``*_ms`` field it has is checked the same way.
REQUIRED_MS = ("median_ms",)
#: The largest latency taken as real (ms); anything above is a corrupt file.
ABSURD_MS = 1e12


def _clip(text: Any, limit: int = 60) -> str:
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_timing(timing: Any, where: str, source: str) -> None:
    """A timing's latencies: real numbers (not strings or booleans), finite, at least 0 and below
    :data:`ABSURD_MS`. Raises InputError naming ``source`` and the first bad field."""
    if not isinstance(timing, dict):
        raise InputError(f"{source} is corrupt: field {where!r} is not an object")
    for name in [*REQUIRED_MS, *sorted(k for k in timing if k.endswith("_ms") and k not in REQUIRED_MS)]:
        field_name = f"{where}.{name}"
        if name not in timing:
            raise InputError(f"{source} is corrupt: field {field_name!r} is missing")
        value = timing[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{source} is corrupt: field {field_name!r} is {_clip(value)}, not a number")
        if not math.isfinite(value) or value < 0 or value > ABSURD_MS:
            raise InputError(f"{source} is corrupt: field {field_name!r} is {value!r}, not a latency "
                             f"(a finite number of ms from 0 to {ABSURD_MS:g})")


def load_profile(path: str | os.PathLike, space: str | None = None) -> Profile:
    """Read and check a profile file.

    Raises:
        InputError: missing, unreadable, not JSON, another schema version, corrupt, or (when
            ``space`` is given) made for another space.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"profile {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read profile {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # a binary file given as a profile
        raise InputError(f"profile {str(path)!r} is corrupt (not UTF-8 text: byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"profile {str(path)!r} is corrupt (not JSON: {exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # an integer of 100,000 digits, lists nested 60,000 deep
        raise InputError(f"profile {str(path)!r} is corrupt (not a profile: {_clip(str(exc), 120)})") from None
    profile = Profile.from_dict(data, source=f"profile {str(path)!r}")
    if space is not None and profile.space != space:
        raise InputError(f"profile {str(path)!r} is for space {profile.space!r}, not {space!r}")
    return profile
