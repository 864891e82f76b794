"""The run directory: what a search writes, and how a killed search finds its way back.

Layout (schema ``hwnas-run/1``, documented in the README)::

    DIR/run.json           settings, versions, seed, fingerprints, reference point, status
    DIR/evaluations.jsonl  one validated evaluation per line, appended and fsynced
    DIR/pareto.json        the validated non-dominated set, sorted by the first objective
    DIR/hypervolume.csv    evaluations,hypervolume — one row per validated evaluation

Robustness rules:

* run.json, pareto.json and hypervolume.csv are replaced atomically (temporary file, rename).
* evaluations.jsonl is append-only; each line is flushed and fsynced before the search goes
  on, so after ``kill -9`` at most the last line is half-written. Reopening ignores and cuts off
  a last line that is incomplete (no newline) or unparseable; a bad line elsewhere is an error.
* A directory is reopened only for the same search (:data:`IDENTITY`: space, plug-in,
  algorithm, budget, seed, objectives, profiles by content, constraints, settings, space
  definition); anything else — other settings, another space, a non-empty directory that is
  not a run — is refused with :class:`~hwnas.errors.InputError` before any work starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas.errors import InputError
from hwnas.fileio import atomic_write_text as write_atomic

SCHEMA = "hwnas-run/1"
RUN_JSON = "run.json"
EVALUATIONS = "evaluations.jsonl"
PARETO = "pareto.json"
HYPERVOLUME = "hypervolume.csv"

#: run.json fields that must match for a directory to be resumed.
IDENTITY = ("schema", "space", "plugin", "algo", "evals", "seed", "objectives", "constraints",
            "settings", "space_fingerprint")


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def inspect_out_dir(out: Path) -> dict[str, Any] | None:
    """Check ``--out`` before any work: the run.json of an existing run there, or None when the
    directory is new or empty.

    Raises:
        InputError: ``out`` is a file, not writable, a non-empty directory without a run, or
            holds a corrupt run.json.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a directory")
    if not out.exists():
        base = _nearest_existing(out)
        if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
            raise InputError(f"--out {str(out)!r} cannot be created: {str(base)!r} is not writable")
        return None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {str(out)!r} is not writable")
    run_json = out / RUN_JSON
    if not run_json.exists():
        if any(out.iterdir()):
            raise InputError(f"--out {str(out)!r} is not empty and holds no hwnas run; choose a new directory")
        return None
    try:
        header = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"--out {str(out)!r}: run.json is unreadable or corrupt ({exc})") from None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        found = header.get("schema") if isinstance(header, dict) else None
        raise InputError(f"--out {str(out)!r}: run.json has schema {found!r}, not {SCHEMA!r}")
    return header


def identity_mismatch(existing: dict[str, Any], header: dict[str, Any]) -> str | None:
    """The first identity field (:data:`IDENTITY`, profiles by label/device/content) in which two
    run headers differ, as ``"field: <there> (run) vs <here> (now)"``; None when they match."""
    for key in IDENTITY:
        if existing.get(key) != header.get(key):
            return f"{key}: {json.dumps(existing.get(key))} (run) vs {json.dumps(header.get(key))} (now)"
    ours = [(p.get("label"), p.get("device_id"), p.get("sha256")) for p in header.get("profiles", [])]
    theirs = [(p.get("label"), p.get("device_id"), p.get("sha256")) for p in existing.get("profiles", [])]
    if ours != theirs:
        return (f"profiles: {json.dumps(theirs)} (run) vs {json.dumps(ours)} (now) "
                "(same labels, devices and file contents needed)")
    return None


def read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of an evaluations.jsonl and the byte length of its complete, valid part.

    A last line without a newline, or one that does not parse, is ignored (a write cut short);
    a bad line before the last one raises InputError.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    rows: list[dict[str, Any]] = []
    offset = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        last = number == len(lines) - 1
        if last:  # text after the final newline: a half-written line (or nothing)
            break
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or row.get("index") != len(rows):
                raise ValueError(f"expected index {len(rows)}")
        except ValueError as exc:
            if number == len(lines) - 2 and lines[-1] == b"":
                break  # the last complete line is itself corrupt: cut short, ignore it
            raise InputError(f"{str(path)!r} line {number + 1} is corrupt ({exc})") from None
        rows.append(row)
        offset += len(line) + 1
    return rows, offset


def read_run(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """run.json and the validated evaluations of a run directory (for export and report).

    Raises:
        InputError: no run there, or a corrupt file.
    """
    path = Path(path)
    if not (path / RUN_JSON).is_file():
        raise InputError(f"{str(path)!r} is not a search run directory (no run.json)")
    header = inspect_out_dir(path)
    assert header is not None
    rows, _ = read_rows(path / EVALUATIONS)
    return header, rows


class RunDirectory:
    """An open run directory: its header (run.json) and its validated rows.

    Use :meth:`open`; then :meth:`append` each new evaluation, :meth:`write_pareto`,
    :meth:`write_hypervolume` and :meth:`update` run.json.
    """

    def __init__(self, path: Path, header: dict[str, Any], rows: list[dict[str, Any]]):
        self.path = path
        self.header = header
        self.rows = rows
        self._hv_fh = None

    @classmethod
    def open(cls, out: str | os.PathLike, header: dict[str, Any]) -> RunDirectory:
        """Create the run directory, or reopen it for the same search.

        ``header`` is the run.json of a new run. When the directory already holds this search,
        its recorded run.json (reference point, creation time) is kept and its rows reloaded.

        Raises:
            InputError: see :func:`inspect_out_dir`; another search in the directory.
        """
        out = Path(out)
        existing = inspect_out_dir(out)
        if existing is None:
            out.mkdir(parents=True, exist_ok=True)
            run = cls(out, dict(header), [])
            run._write_header()  # first, so a crash right after leaves a run, not a foreign dir
            (out / EVALUATIONS).touch()
            return run
        mismatch = identity_mismatch(existing, header)
        if mismatch:
            raise InputError(f"--out {str(out)!r} holds a different search ({mismatch}); "
                             "use the same settings to resume it, or a new directory")
        rows, good = read_rows(out / EVALUATIONS)
        evaluations = out / EVALUATIONS
        if evaluations.exists() and evaluations.stat().st_size != good:
            with open(evaluations, "r+b") as fh:  # drop a half-written last line
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        if len(rows) > int(existing["evals"]):
            raise InputError(f"{str(evaluations)!r} holds {len(rows)} rows, more than the budget {existing['evals']}")
        # Keep what was recorded at the start; refresh what describes this process.
        merged = dict(existing)
        for key in ("versions", "fingerprints", "host"):
            if key in header:
                merged.setdefault("previous_" + key, existing.get(key))
                merged[key] = header[key]
        return cls(out, merged, rows)

    # -- files -----------------------------------------------------------------------------------
    def _write_header(self) -> None:
        write_atomic(self.path / RUN_JSON, json.dumps(self.header, indent=1) + "\n")

    def update(self, **fields: Any) -> None:
        """Set run.json fields and rewrite it atomically."""
        self.header.update(fields)
        self._write_header()

    def append(self, row: dict[str, Any]) -> None:
        """Append one validated evaluation (its ``index`` must be the next one); fsynced."""
        if row.get("index") != len(self.rows):
            raise ValueError(f"row index {row.get('index')} is not the next index {len(self.rows)}")
        line = json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n"
        with open(self.path / EVALUATIONS, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)

    def write_pareto(self, names: list[str], front: Iterable[dict[str, Any]]) -> None:
        """pareto.json: ``{"objectives": names, "front": [{"index", "config", "objectives"}]}``."""
        doc = {"objectives": names, "front": [
            {"index": r["index"], "config": r["config"], "objectives": r["objectives"]} for r in front]}
        write_atomic(self.path / PARETO, json.dumps(doc, indent=1) + "\n")

    def write_hypervolume(self, series: list[float]) -> None:
        """hypervolume.csv rewritten whole: row k = hypervolume after k validated evaluations."""
        text = "evaluations,hypervolume\n" + "".join(f"{i + 1},{hv!r}\n" for i, hv in enumerate(series))
        write_atomic(self.path / HYPERVOLUME, text)

    def append_hypervolume(self, evaluations: int, hv: float) -> None:
        """One more hypervolume.csv row (flushed; rewritten whole at the end and on resume)."""
        if self._hv_fh is None:
            self._hv_fh = open(self.path / HYPERVOLUME, "a")
        self._hv_fh.write(f"{evaluations},{hv!r}\n")
        self._hv_fh.flush()

    def close(self) -> None:
        if self._hv_fh is not None:
            self._hv_fh.close()
            self._hv_fh = None
