"""Atomic file writes and the timestamp shared by the profile, the run directory, the manifests
and the reports."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary sibling and a rename.

    A crash leaves either the old file or the new one, never half of it. The file gets the
    usual permissions (0666 minus the umask), not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if getattr(exc, "filename", None) or not exc.errno:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``path`` (``.NAME.XXXXXXXX.tmp``) that
    :func:`atomic_write_text` leaves when its process is killed (``kill -9``, power loss) between
    writing the temporary file and renaming it. Call only while holding the output's lock
    (:func:`hwnas.locking.exclusive`): then no live process is writing any of them.

    Returns:
        the files removed.
    """
    path = Path(path)
    parent = path.resolve().parent
    # tempfile.mkstemp's names: the prefix, 8 characters of [a-z0-9_], the suffix
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if pattern.match(entry.name) and entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
            except OSError:
                continue
            removed.append(entry)
    return removed


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds (``2026-01-01T12:00:00+00:00``): the one form of
    every time hwnas records in a file (run.json, manifest.json, report.json, quickstart.json)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
