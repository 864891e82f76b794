"""The run store: the one module that reads and writes a search run directory.

:class:`RunDirectory` writes a run (and reopens it to resume a killed search); :func:`read_run`
reads a snapshot of one (:class:`Run`) for export, report and tools.

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
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InputError
from hwnas.fileio import atomic_write_text as write_atomic
from hwnas.fileio import remove_stale_temporaries
from hwnas.locking import held_by
from hwnas.outdir import OutputKind, check_out_dir

SCHEMA = "hwnas-run/1"
RUN_JSON = "run.json"
EVALUATIONS = "evaluations.jsonl"
PARETO = "pareto.json"
HYPERVOLUME = "hypervolume.csv"

#: run.json fields that must match for a directory to be resumed.
IDENTITY = ("schema", "space", "plugin", "algo", "evals", "seed", "objectives", "constraints",
            "settings", "space_fingerprint")


#: What ``--out`` of a search may be (:mod:`hwnas.outdir`): new, empty, or a run to resume.
RUN_KIND = OutputKind("run", RUN_JSON, SCHEMA, parents=True)

__all__ = ["EVALUATIONS", "HYPERVOLUME", "IDENTITY", "PARETO", "RUN_JSON", "RUN_KIND", "SCHEMA", "Run",
           "RunDirectory", "check_row", "front_of", "identity_mismatch", "inspect_out_dir", "read_rows",
           "read_run"]


def inspect_out_dir(out: str | os.PathLike) -> dict[str, Any] | None:
    """Check ``--out`` of a search before any work (:func:`hwnas.outdir.check_out_dir`): the
    run.json of an existing run there, or None when the directory is new or empty.

    Raises:
        InputError: ``out`` is a file, not writable, a non-empty directory without a run, or
            holds a corrupt run.json.
    """
    return check_out_dir(out, RUN_KIND)


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


#: Objective units whose values can never be negative; a ``fraction`` lies in [0, 1].
NON_NEGATIVE_UNITS = ("ms", "count", "nats")
#: The largest objective value taken as real (a latency of 1e12 ms is a corrupt file).
ABSURD = 1e12


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_row(row: Any, position: int, objectives: Sequence[dict[str, Any]] | None = None) -> None:
    """Check one evaluations.jsonl row as :meth:`RunDirectory.append` writes it.

    ``objectives`` (run.json's ``[{"name", "unit"}, ...]``), when given: the row's objectives
    are exactly those, each a finite number within its unit's range (``fraction`` in [0, 1];
    ``ms``, ``count``, ``nats`` at least 0; all below :data:`ABSURD`).

    Raises:
        ValueError: naming the first bad field.
    """
    if not isinstance(row, dict):
        raise ValueError(f"not a JSON object but {type(row).__name__}")
    index = row.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ValueError(f"field 'index' is {_clip(index)}, not an integer")
    if index != position:
        raise ValueError(f"field 'index' is {index}, expected {position} (rows out of order or repeated)")
    if not isinstance(row.get("config"), dict):
        raise ValueError("field 'config' is missing or not an object")
    values = row.get("objectives")
    if not isinstance(values, dict):
        raise ValueError("field 'objectives' is missing or not an object")
    if "validated" in row and not isinstance(row["validated"], bool):
        raise ValueError(f"field 'validated' is {_clip(row['validated'])}, not true/false")
    if objectives is None:
        return
    for objective in objectives:
        name, unit = objective["name"], objective.get("unit", "")
        if name not in values:
            raise ValueError(f"field 'objectives.{name}' is missing")
        value = values[name]
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"field 'objectives.{name}' is {_clip(value)}, not a finite number")
        if unit == "fraction" and not 0.0 <= value <= 1.0:
            raise ValueError(f"field 'objectives.{name}' is {value!r}, not a fraction in [0, 1]")
        if unit in NON_NEGATIVE_UNITS and value < 0:
            raise ValueError(f"field 'objectives.{name}' is {value!r}, negative")
        if abs(value) > ABSURD:
            raise ValueError(f"field 'objectives.{name}' is {value!r}, absurdly large")
    extra = sorted(set(values) - {o["name"] for o in objectives})
    if extra:
        raise ValueError(f"field 'objectives.{_clip(extra[0])}' is not an objective of this run")


def _clip(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _loads_strict(line: bytes) -> Any:
    """A JSON line; NaN, Infinity and duplicate keys are refused (the writer never makes them)."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {_clip(key)}")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    return json.loads(line, object_pairs_hook=pairs, parse_constant=constant)


def _parse_rows(path: Path, objectives: Sequence[dict[str, Any]] | None = None
                ) -> tuple[list[dict[str, Any]], int, bool]:
    """Rows of an evaluations.jsonl, the byte length of its complete, valid part, and whether a
    torn last line was left out.

    Row k must pass :func:`check_row` (``index`` k, ``config`` and ``objectives`` objects; with
    ``objectives`` given, valid values of exactly those). A last line without a newline, or a
    last line that is not JSON, is a write cut short (``kill -9`` mid-append): left out, never
    read as data. Any other bad line, the last one included when it parses, raises InputError
    naming the file, the line and the first bad field.
    """
    if not path.is_file():
        return [], 0, False
    data = path.read_bytes()
    rows: list[dict[str, Any]] = []
    offset = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1]):  # lines[-1]: text after the final newline
        last = number == len(lines) - 2 and lines[-1] == b""
        try:
            row = _loads_strict(line)
        except (ValueError, RecursionError) as exc:
            if last:
                return rows, offset, True  # the last line is not JSON: a write cut short
            raise InputError(f"{str(path)!r} line {number + 1} is not a JSON row ({_clip(str(exc), 120)})") from None
        try:
            check_row(row, len(rows), objectives)
        except ValueError as exc:
            raise InputError(f"{str(path)!r} line {number + 1}: {exc}") from None
        rows.append(row)
        offset += len(line) + 1
    return rows, offset, lines[-1].strip() != b""


def read_rows(path: Path, objectives: Sequence[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of an evaluations.jsonl and the byte length of its complete, valid part (a torn last
    line is left out, see :func:`_parse_rows`; a bad line raises InputError)."""
    rows, good, _ = _parse_rows(Path(path), objectives)
    return rows, good


def front_of(rows: Sequence[dict[str, Any]], objectives: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The non-dominated rows (duplicates of a front point kept), sorted by the first objective,
    best first, then by index: what the search writes to pareto.json, rebuilt from the rows."""
    from hwnas.search.pareto import non_dominated_mask

    if not rows:
        return []
    names = [o["name"] for o in objectives]
    sign = np.array([-1.0 if o["maximize"] else 1.0 for o in objectives])
    F = np.array([[float(r["objectives"][n]) for n in names] for r in rows], dtype=np.float64) * sign
    keep = non_dominated_mask(F)
    front = [r for r, k in zip(rows, keep) if k]
    return sorted(front, key=lambda r: (sign[0] * r["objectives"][names[0]], r["index"]))


@dataclass
class Run:
    """A snapshot of a run directory as read from disk (:func:`read_run`).

    Attributes:
        path: the directory.
        meta: ``run.json`` (``objectives`` normalised to ``{"name", "maximize", "unit"}``).
        evaluations: the validated rows of ``evaluations.jsonl`` in file order.
        front: ``pareto.json``'s front (``{"index", "config", "objectives"}``), empty when missing.
        hypervolume: ``(evaluations, hypervolume)`` rows of ``hypervolume.csv``.
        problems: why the run is not complete (empty when it is).
    """

    path: Path
    meta: dict[str, Any]
    evaluations: list[dict[str, Any]]
    front: list[dict[str, Any]]
    hypervolume: list[tuple[int, float]]
    problems: list[str]

    @property
    def space(self) -> str:
        return str(self.meta["space"])

    @property
    def objectives(self) -> list[dict[str, Any]]:
        """``[{"name", "maximize", "unit"}, ...]`` in the run's order."""
        return list(self.meta["objectives"])

    @property
    def complete(self) -> bool:
        return not self.problems

    def values(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Objective values float64 [len(rows), M] in natural units, run objective order
        (NaN where a row lacks one)."""
        names = [o["name"] for o in self.objectives]
        return np.array([[float(r["objectives"].get(n, math.nan)) for n in names] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(names))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {str(path)!r} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # an integer of 100,000 digits, lists nested 60,000 deep
        raise InputError(f"{what} {str(path)!r} is corrupt ({_clip(str(exc), 120)})") from None


def read_run(path: str | os.PathLike, *, space: str | None = None, require_complete: bool = True) -> Run:
    """Read and check a run directory.

    Args:
        path: the run directory (``hwnas search --out``).
        space: when given, the space the run must be of.
        require_complete: refuse a run that is still running, was killed, or lacks its front.

    Raises:
        InputError: the directory or its ``run.json`` is missing or corrupt, a row before the last
            one is corrupt, the run is of another space, or (``require_complete``) it is
            incomplete: ``status`` is not ``"complete"``, the last row is cut short,
            ``evaluations.jsonl`` has fewer validated rows than ``evals`` (unless the algorithm
            ran out of configurations), or ``pareto.json`` is missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"run directory {str(path)!r} does not exist")
    if not (path / RUN_JSON).is_file():
        raise InputError(f"{str(path)!r} is not a search run directory (no run.json)")
    meta = _read_json(path / RUN_JSON, "run file")
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{str(path / RUN_JSON)!r} has schema {found!r}; this hwnas reads {SCHEMA!r}")
    try:
        run_space, evals = str(meta["space"]), int(meta["evals"])
        objectives = [{"name": str(o["name"]), "maximize": bool(o["maximize"]), "unit": str(o.get("unit", ""))}
                      for o in meta["objectives"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{str(path / RUN_JSON)!r} is corrupt: missing or bad field {exc}") from None
    if not objectives:
        raise InputError(f"{str(path / RUN_JSON)!r} lists no objectives")
    if not isinstance(meta["evals"], int) or isinstance(meta["evals"], bool) or meta["evals"] < 1:
        raise InputError(f"{str(path / RUN_JSON)!r} is corrupt: field 'evals' is {_clip(meta['evals'])}, "
                         "not a positive integer")
    meta = {**meta, "objectives": objectives}
    if space is not None and run_space != space:
        raise InputError(f"run {str(path)!r} is of space {run_space!r}, not --space {space!r}")

    writer = held_by(path)
    if writer is not None:
        raise InputError(f"run {str(path)!r} is being written by a running search (PID {writer}); "
                         "wait for it to finish, then read it")
    problems: list[str] = []
    if meta.get("status") != "complete":
        problems.append(f"status is {meta.get('status')!r}")
    rows, _, truncated = _parse_rows(path / EVALUATIONS, objectives)
    if truncated:
        problems.append("the last row of evaluations.jsonl is truncated (torn by an interrupted write)")
    if len(rows) > evals:
        raise InputError(f"{str(path / EVALUATIONS)!r} holds {len(rows)} rows, more than the budget "
                         f"'evals' {evals} of {str(path / RUN_JSON)!r}")
    seen: dict[str, int] = {}
    for row in rows:
        key = json.dumps(row["config"], sort_keys=True)
        if key in seen:
            raise InputError(f"{str(path / EVALUATIONS)!r} line {row['index'] + 1}: field 'config' repeats the "
                             f"configuration of line {seen[key] + 1}")
        seen[key] = row["index"]
    evaluations = [r for r in rows if r.get("validated", True)]
    # A search whose algorithm ran out of configurations to try ends complete with fewer rows.
    ran_out = meta.get("status") == "complete" and meta.get("stop_reason") == "nothing left to try"
    if len(evaluations) < evals and not ran_out:
        problems.append(f"{len(evaluations)} of {evals} evaluations in evaluations.jsonl")

    # The front is rebuilt from the checked rows; pareto.json is never trusted, only compared.
    front = [{"index": r["index"], "config": r["config"], "objectives": r["objectives"]}
             for r in front_of(evaluations, objectives)]
    if (path / PARETO).is_file():
        pareto = _read_json(path / PARETO, "Pareto file")
        try:
            recorded = [{"index": p["index"], "config": dict(p["config"]), "objectives": dict(p["objectives"])}
                        for p in pareto["front"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{str(path / PARETO)!r} is corrupt: missing or bad field {exc}") from None
        if not problems:
            # A complete run's pareto.json holds the front of its rows (in any order); anything
            # else was edited: refused, naming the first entry that is not a front row.
            ours = {json.dumps(p, sort_keys=True) for p in front}
            for where, entry in enumerate(recorded):
                if json.dumps(entry, sort_keys=True) not in ours:
                    raise InputError(f"{str(path / PARETO)!r} disagrees with evaluations.jsonl: field "
                                     f"'front[{where}]' (row {_clip(entry['index'])}) is not a validated "
                                     "non-dominated row of the run")
            if len(recorded) != len(front):
                raise InputError(f"{str(path / PARETO)!r} disagrees with evaluations.jsonl: field 'front' has "
                                 f"{len(recorded)} entries, the rows' front {len(front)}")
    else:
        problems.append("pareto.json is missing")

    hypervolume: list[tuple[int, float]] = []
    if (path / HYPERVOLUME).is_file():
        try:
            text = (path / HYPERVOLUME).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {str(path / HYPERVOLUME)!r}: {_clip(str(exc), 120)}") from None
        for line in text.splitlines()[1:]:
            parts = line.strip().split(",")
            try:
                hypervolume.append((int(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                continue  # a header repeated or a half-written last line
    run = Run(path, meta, evaluations, front, hypervolume, problems)
    if require_complete and problems:
        raise InputError(f"run {str(path)!r} is incomplete ({'; '.join(problems)}); "
                         "rerun the same `hwnas search` command to finish it first")
    return run


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
        """Create the run directory, or reopen it for the same search. Call it holding the run
        directory's lock (:func:`hwnas.locking.exclusive`).

        ``header`` is the run.json of a new run. Temporary files of run.json, pareto.json and
        hypervolume.csv left by a writer killed mid-rename are removed. When the directory already holds this search,
        its recorded run.json (reference point, creation time) is kept and its rows reloaded.

        Raises:
            InputError: see :func:`inspect_out_dir`; another search in the directory.
        """
        out = Path(out)
        existing = inspect_out_dir(out)
        for name in (RUN_JSON, PARETO, HYPERVOLUME):  # left by a writer killed mid-rename; we hold the lock
            remove_stale_temporaries(out / name)
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
        evaluations = out / EVALUATIONS
        # Stored rows get the same checks as new ones (finite, in range, in order).
        rows, good = read_rows(evaluations, header.get("objectives"))
        if len(rows) > int(existing["evals"]):
            raise InputError(f"{str(evaluations)!r} holds {len(rows)} rows, more than the budget {existing['evals']}")
        if evaluations.exists() and evaluations.stat().st_size != good:
            torn = evaluations.stat().st_size - good
            sys.stderr.write(f"hwnas: warning: {str(evaluations)!r}: dropped a torn last line ({torn} bytes after "
                             f"row {len(rows) - 1}) left by an interrupted write; it is evaluated again\n")
            sys.stderr.flush()
            with open(evaluations, "r+b") as fh:  # drop a half-written last line
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
        short = len(rows) < int(existing["evals"]) and existing.get("stop_reason") != "nothing left to try"
        if existing.get("status") == "complete" and short:
            # A complete run that lost its last row(s) is resumed, never left stuck.
            existing = {**existing, "status": "running", "finished": None}
        # Keep what was recorded at the start; refresh what describes this process.
        merged = dict(existing)
        for key in ("versions", "fingerprints", "host", "threads"):
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
        path = self.path / EVALUATIONS
        with open(path, "ab") as fh:
            before = fh.tell()
            try:
                fh.write(line.encode())
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:  # a full disk, an I/O error: cut back to the last good row
                try:
                    fh.truncate(before)
                except OSError:
                    pass  # a torn last line is then dropped (with a warning) on resume
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
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
        try:
            if self._hv_fh is None:
                self._hv_fh = open(self.path / HYPERVOLUME, "a")
            self._hv_fh.write(f"{evaluations},{hv!r}\n")
            self._hv_fh.flush()
        except OSError as exc:  # rewritten whole at the end and on resume; name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path / HYPERVOLUME)) from None

    def close(self) -> None:
        if self._hv_fh is not None:
            self._hv_fh.close()
            self._hv_fh = None
