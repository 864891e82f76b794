"""One writer per output: an exclusive ``fcntl.flock`` on a hidden lock file beside it.

Every command that writes an output (``profile --out FILE``, ``search --out``, ``export --out``,
``report --out``, ``quickstart --out``) holds :func:`exclusive` on that output for as long as it
writes. The lock file is ``.NAME.lock`` in the output's parent directory (the output resolved,
symbolic links included), holds the PID of the writer, and is removed when the writer is done.
The kernel releases a ``flock`` when its process dies, so ``kill -9`` never leaves a lock that
blocks the rerun: a lock file left behind by a killed process is simply taken over.

A second writer on the same output is refused at once with one-line
:class:`~hwnas.errors.InputError` naming the output and the PID that holds it. Readers
(:func:`held_by`) can tell whether a writer is at work on an output without taking its lock.

The lock is re-entrant within one process (a library call that locks an output may call another
that locks it again), and only meaningful between processes on one machine: ``flock`` on a
network file system is not guaranteed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hwnas.errors import InputError

#: How long a writer retries before it gives up (a reader's probe holds the lock for microseconds).
RETRY_SECONDS = 1.0

_held: dict[str, int] = {}  # lock file -> nesting depth in this process
_guard = threading.Lock()


def lock_path(output: str | os.PathLike) -> Path:
    """The lock file of ``output``: ``.NAME.lock`` beside it (``output`` resolved first)."""
    real = Path(output).resolve()
    return real.parent / f".{real.name}.lock"


def _read_pid(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def held_by(output: str | os.PathLike) -> str | None:
    """The PID (as text; ``"unknown"`` when unreadable) of the live process writing ``output``,
    or None when nobody writes it. Creates no file."""
    path = lock_path(output)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # no lock file: no writer (a writer keeps it while it holds the lock)
    try:
        if str(path) in _held:
            return None  # this very process is the writer
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_pid(path)
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_locked(output: str | os.PathLike, what: str = "--out") -> None:
    """Raise InputError when another live process writes ``output`` (a cheap early check; the
    writer's own :func:`exclusive` is what guarantees it)."""
    pid = held_by(output)
    if pid is not None:
        raise InputError(_busy(output, what, pid))


def _busy(output: str | os.PathLike, what: str, pid: str) -> str:
    return (f"{what} {str(output)!r} is in use by another hwnas process (PID {pid}); "
            "wait for it to end or choose another output")


def _acquire(path: Path, output: str | os.PathLike, what: str) -> int:
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(f"{what} {str(output)!r}: cannot create its lock file {str(path)!r} "
                             f"({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"{what} {str(output)!r}: cannot lock {str(path)!r} ({exc.strerror})") from None
            if time.monotonic() >= deadline:
                raise InputError(_busy(output, what, _read_pid(path))) from None
            time.sleep(0.05)
            continue
        # The holder before us may have removed the file after we opened it: then our lock is on
        # a file nobody else will see. Lock the file that is at the path now instead.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def exclusive(output: str | os.PathLike, what: str = "--out") -> Iterator[Path]:
    """Hold the exclusive lock of ``output`` (see the module docstring); yields the lock file.

    Raises:
        InputError: another live process holds it (after :data:`RETRY_SECONDS`), naming
            ``output`` and that process's PID; or the lock file cannot be created.
    """
    path = lock_path(output)
    key = str(path)
    with _guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield path
        finally:
            with _guard:
                _held[key] -= 1
        return
    fd = _acquire(path, output, what)
    with _guard:
        _held[key] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with _guard:
            del _held[key]
        try:
            os.unlink(path)  # while still holding it: a waiter then retries on a new file
        except OSError:
            pass
        os.close(fd)


def remove_stale_staging(output: str | os.PathLike) -> list[Path]:
    """Remove the hidden staging directories (``.NAME.partial-XXXXXXXX``) that a killed writer
    of ``output`` left beside it. Call only while holding :func:`exclusive` on ``output``: then no
    live process is writing any of them. Returns what was removed."""
    real = Path(output).resolve()
    pattern = re.compile(rf"^\.{re.escape(real.name)}\.partial-[A-Za-z0-9_]{{8}}$")
    removed = []
    try:
        entries = list(real.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if pattern.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
