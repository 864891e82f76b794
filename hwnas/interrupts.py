"""SIGTERM stops a command the way Ctrl-C does.

:func:`terminate_as_interrupt` makes SIGTERM raise KeyboardInterrupt while a command writes its
output (search, profile, export, report), so both signals stop it the same clean way: the
partial output is saved or removed, and the CLI exits 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (like SIGINT) inside the block; the previous handler is
    restored afterwards. No-op outside the main thread (signals are delivered there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
