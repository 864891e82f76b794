"""The one policy for output directories (``--out`` of search, export, report and quickstart).

A directory hwnas writes into must be one of:

* new: it does not exist, and its parent is an existing, writable directory (for a search run,
  whose missing parents are created, the nearest existing ancestor);
* empty;
* an existing directory that provably holds an earlier hwnas output of the same kind: its
  marker file (a run's ``run.json``, an export's ``manifest.json``, a report's ``report.json``,
  a quickstart's ``quickstart.json``) parses and carries that kind's ``schema``; kinds that own
  their directory whole (a report is replaced whole, a quickstart holds only its steps) also
  require every entry to be one of the kind's own files.

Anything else is refused with one-line :class:`~hwnas.errors.InputError`, before any work: a
file, an unwritable directory, a non-empty directory without the marker (a folder of the user's
photos is never taken for a report), ``/``, the home directory and the current directory.
Symbolic links are resolved before the checks, so a link to ``/`` is ``/``.

:func:`staged_output` writes a whole output atomically: into a hidden sibling, renamed into place
at the end, so a failed or interrupted write never leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import InputError


@dataclass(frozen=True)
class OutputKind:
    """One kind of hwnas output directory.

    Attributes:
        name: what it is called in messages (``"run"``, ``"export"``, ``"report"``, ``"quickstart"``).
        marker: the file that identifies it (``"run.json"``...), a JSON object with ``schema``.
        schema: the marker's ``schema`` value (``"hwnas-run/1"``...).
        own: when set, the names (besides the marker) such a directory may hold; any other entry
            makes it foreign. None: any entries once the marker is there (a run directory).
        parents: whether missing parent directories are created too (a search's ``--out``, as
            ``hwnas search`` always did); then the nearest existing ancestor must be a writable
            directory. False: the parent must exist.
    """

    name: str
    marker: str
    schema: str
    own: re.Pattern[str] | None = None
    parents: bool = False


def _refused_place(real: Path) -> str | None:
    """Why ``real`` (resolved) can never be an output directory, or None."""
    if real == Path(real.anchor):
        return "the root directory"
    if real == Path.home().resolve():
        return "the home directory"
    if real == Path.cwd().resolve():
        return "the current directory"
    return None


def check_out_dir(out: str | os.PathLike, kind: OutputKind, *, reuse: bool = True,
                  option: str = "--out") -> dict[str, Any] | None:
    """Check an output directory before any work (see the module docstring).

    Args:
        out: the directory as the user gave it.
        kind: the kind of output that will be written there.
        reuse: whether an earlier output of ``kind`` there is acceptable (a run is resumed, a
            report replaced); False: only a new or empty directory (an export).
        option: the option named in messages.

    Returns:
        The marker file's content (a dict) when ``out`` holds an earlier output of ``kind``;
        None when ``out`` is new or empty.

    Raises:
        InputError: any other directory, naming ``out`` and why.
    """
    given = str(out)
    real = Path(out).resolve()
    place = _refused_place(real)
    if place:
        raise InputError(f"{option} {given!r} is {place}; choose a new directory")
    if real.exists() and not real.is_dir():
        raise InputError(f"{option} {given!r} exists and is not a directory")
    if not real.exists():
        parent = real.parent
        while kind.parents and not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise InputError(f"{option} {given!r} cannot be created: {str(parent)!r} is not an existing directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"{option} {given!r} cannot be created: {str(parent)!r} is not writable")
        return None
    if not os.access(real, os.W_OK | os.X_OK):
        raise InputError(f"{option} {given!r} is not writable")
    names = sorted(p.name for p in real.iterdir())
    if not names:
        return None
    if kind.own is not None:
        foreign = [n for n in names if n != kind.marker and not kind.own.match(n)]
        if foreign:
            raise InputError(f"{option} {given!r} holds {foreign[0]!r}, which is not part of an hwnas "
                             f"{kind.name}; choose a new directory")
    if kind.marker not in names:
        raise InputError(f"{option} {given!r} is not empty and holds no hwnas {kind.name}; choose a new directory")
    try:
        marker = json.loads((real / kind.marker).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{option} {given!r}: {kind.marker} is unreadable or corrupt ({exc})") from None
    if not isinstance(marker, dict) or marker.get("schema") != kind.schema:
        found = marker.get("schema") if isinstance(marker, dict) else None
        raise InputError(f"{option} {given!r}: {kind.marker} has schema {found!r}, not {kind.schema!r}")
    if not reuse:
        raise InputError(f"{option} {given!r} is not empty (it holds an earlier hwnas {kind.name}); "
                         "choose a new directory")
    return marker


def refuse_mount_point(out: str | os.PathLike, option: str = "--out") -> None:
    """Refuse ``out`` when it is a mount point: an output written whole (export, report) is
    renamed into place, which a mount point can never be (checked before any work)."""
    real = Path(out).resolve()
    if real.is_dir() and os.path.ismount(real):
        raise InputError(f"{option} {str(out)!r} is a mount point, which hwnas cannot replace with its output; "
                         "choose a new directory inside it")


@contextmanager
def staged_output(out: str | os.PathLike, kind: OutputKind, *, replace: bool = False,
                  option: str = "--out") -> Iterator[Path]:
    """Yield a new hidden sibling of ``out`` to write a whole output of ``kind`` into; rename it
    to ``out`` on success.

    ``out`` is checked with :func:`check_out_dir` before and again just before the rename (so
    nothing that appeared meanwhile is lost). With ``replace``, an earlier output of ``kind`` in
    ``out`` is removed then; without it, ``out`` must be new or empty. On any error the staging
    directory is removed and ``out`` is left as it was.
    """
    from hwnas.locking import exclusive, remove_stale_staging

    check_out_dir(out, kind, reuse=replace, option=option)
    refuse_mount_point(out, option)
    real = Path(out).resolve()
    with exclusive(out, option):
        remove_stale_staging(out)  # left by a killed writer: we hold the lock, nobody writes them
        staging = Path(tempfile.mkdtemp(prefix=f".{real.name}.partial-", dir=real.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; the user expects a normal directory
        try:
            yield staging
            earlier = check_out_dir(out, kind, reuse=replace, option=option)
            if earlier is not None:
                shutil.rmtree(real)  # provably an earlier output of this kind, checked just now
            elif real.is_dir():
                real.rmdir()  # empty
            os.replace(staging, real)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise write_error(exc, out) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def write_error(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` (an I/O error while writing an output: ENOSPC, EIO, ...) as an OSError whose
    message names ``path`` when it names no file itself."""
    if getattr(exc, "filename", None) or not exc.errno:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))
