"""Atomic file writes and the timestamp shared by the profile, the run directory, the manifests
and the reports."""

from __future__ import annotations

import os
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


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds (``2026-01-01T12:00:00+00:00``): the one form of
    every time hwnas records in a file (run.json, manifest.json, report.json, quickstart.json)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
