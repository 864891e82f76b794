"""Device profiles opened for prediction: :class:`ProfileRef`, one per profile a search or an
export uses.

* :func:`load_profiles` opens the files given to a search (strict: every problem is an error);
* :func:`run_profiles` reopens the profiles a run recorded in its run.json, for export (lenient:
  a file that moved or changed is noted, and predictions then come from the run's values).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import InputError
from hwnas.supernets.base import Supernet


@dataclass(frozen=True)
class ProfileRef:
    """A profile and what predicts with it.

    Attributes:
        path: the profile file (as given to a search; resolved when found from a run), or None
            when a run's profile file was not found.
        label: the device id, or the file stem when two profiles share a device id.
        objective: the latency objective it feeds: ``"latency"`` (the only profile) or
            ``"latency:<label>"``.
        device_id: the profiled device's id.
        sha256: of the file's bytes (a resumed run refuses a profile that changed); None when
            not found.
        device: the profile's device fingerprint.
        predictor: its :class:`~hwnas.predictors.latency.LatencyPredictor`, or None when the file
            was not found.
        differences: how this machine differs from the profiled device (empty: the same).
        note: what happened, e.g. that predictions come from the run because the file is missing.
    """

    path: str | None
    label: str
    objective: str
    device_id: str | None
    sha256: str | None = None
    device: Mapping[str, Any] = field(default_factory=dict)
    predictor: Any = None
    differences: list[str] = field(default_factory=list)
    note: str | None = None

    def describe(self) -> dict[str, Any]:
        """The run.json form: ``path``, ``label``, ``device_id``, ``sha256``."""
        return {"path": self.path, "label": self.label, "device_id": self.device_id, "sha256": self.sha256}

    def describe_for_export(self) -> dict[str, Any]:
        """The manifest.json form: ``label``, ``objective``, ``path``, ``device_id``,
        ``same_device`` (None without a predictor), ``differences``, ``calibration``, ``note``."""
        p = self.predictor
        return {
            "label": self.label,
            "objective": self.objective,
            "path": self.path,
            "device_id": self.device_id,
            "same_device": (not self.differences) if p is not None else None,
            "differences": self.differences,
            "calibration": (p.choice.name if p is not None and p.choice else None),
            "note": self.note,
        }


def _objective(label: str, count: int) -> str:
    return "latency" if count == 1 else f"latency:{label}"


def load_profiles(paths: Sequence[str | os.PathLike], supernet: Supernet) -> list[ProfileRef]:
    """Open profiles for a search over ``supernet``'s space and label them.

    Raises:
        InputError: a missing, corrupt or incomplete profile, one of another space, the same
            file given twice, or two profiles with the same label.
    """
    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile

    loaded = []
    seen_hashes: dict[str, str] = {}
    for raw in paths:
        path = str(raw)
        profile = load_profile(path, space=supernet.name)
        if not profile.blocks:
            raise InputError(f"profile {path!r} has no measured blocks")
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if digest in seen_hashes:
            raise InputError(f"profile {path!r} is the same file as {seen_hashes[digest]!r}")
        seen_hashes[digest] = path
        device_id = str(profile.device.get("id") or Path(path).stem)
        predictor = LatencyPredictor(profile, supernet)
        # All blocks of the space must be in the profile, or prediction fails mid-search.
        missing = sorted(set(supernet.all_blocks(profile.shape)) - set(profile.blocks))
        if missing:
            raise InputError(f"profile {path!r} is incomplete: no measurement of block {missing[0]!r} "
                             f"({len(missing)} missing); rerun `hwnas profile` to finish it")
        loaded.append((path, device_id, digest, dict(profile.device), predictor))
    ids = [d for _, d, *_ in loaded]
    refs = []
    for path, device_id, digest, device, predictor in loaded:
        label = device_id if ids.count(device_id) == 1 else Path(path).stem
        refs.append(ProfileRef(path, label, _objective(label, len(loaded)), device_id, digest, device, predictor))
    labels = [r.label for r in refs]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise InputError(f"two profiles are labelled {dup!r} (same device id and file name); rename one file")
    return refs


def _find(raw: str, run_dir: Path) -> Path | None:
    """A run's recorded profile path: absolute as is; relative to the current directory, the run
    directory or its parent (the first that exists), resolved."""
    candidate = Path(raw)
    options = [candidate] if candidate.is_absolute() else [Path.cwd() / candidate, run_dir / candidate,
                                                          run_dir.parent / candidate]
    return next((p.resolve() for p in options if p.is_file()), None)


def run_profiles(entries: Sequence[Mapping[str, Any]], run_dir: str | os.PathLike,
                 supernet: Supernet) -> list[ProfileRef]:
    """Reopen the profiles a run recorded (run.json ``profiles``: ``path``, ``label``,
    ``device_id``, ``sha256``) with their predictors. Not fatal: a missing file gives a ref
    without predictor and a note; a changed file (other sha256) is used as it is, noted."""
    from hwnas.predictors.latency import LatencyPredictor
    from hwnas.profiling.profile import load_profile

    refs: list[ProfileRef] = []
    for entry in entries:
        label = str(entry.get("label") or Path(str(entry.get("path", "profile"))).stem)
        objective = _objective(label, len(entries))
        path = _find(str(entry["path"]), Path(run_dir)) if entry.get("path") else None
        if path is None:
            refs.append(ProfileRef(None, label, objective, entry.get("device_id"), entry.get("sha256"),
                                   note=f"profile {entry.get('path')!r} not found; predicted ms taken from "
                                        "the run's objective values"))
            continue
        predictor = LatencyPredictor(load_profile(path, space=supernet.name), supernet)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        changed = bool(entry.get("sha256")) and digest != entry["sha256"]
        refs.append(ProfileRef(
            str(path), label, objective, predictor.profile.device.get("id", entry.get("device_id")), digest,
            dict(predictor.profile.device), predictor, predictor.device_warnings(),
            "profile file changed since the search; predicted ms are from the file as it is now" if changed else None,
        ))
    return refs
