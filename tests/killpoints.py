"""Fault injection for the kill tests: ``hwnas`` commands run in real processes and die by
SIGKILL at chosen, deterministic points.

Each command runs as ``hwnas.cli.main(args)`` in a fresh process forked from a *fork server*
(:mod:`multiprocessing`'s ``forkserver``, which imported hwnas, torch and onnxruntime once):
the same code path as ``python -m hwnas.cli ARGS`` without paying the 3–4 s of imports per
process. The server's only work is training the example plug-in's shared weights, on one torch
thread (as ``mlp_digits`` always does), so no intra-op thread pool exists to be lost by a fork
and the children do not spend seconds training them again; it never runs ONNX Runtime.

A kill point is keyed to the command's own progress, never to wall-clock time, so it lands at
the same place on a loaded machine:

* ``KillPoint("append", n)``: right after the n-th row this process appended to
  evaluations.jsonl (search);
* ``KillPoint("append", n, torn=True)``: *during* the n-th append: half the row's bytes reach
  the file (written and fsynced), then SIGKILL — the torn last line a kill mid-write leaves;
* ``KillPoint("replace", n)``: at the n-th ``os.replace`` of this process, before the rename —
  an atomic write whose temporary file is complete but not yet renamed (run.json, pareto.json,
  hypervolume.csv, the profile; an export's staging directory);
* ``KillPoint("save", n)``: right after the n-th profile save (an item measured and stored).

:func:`run` can also kill from outside once a condition on the files holds (e.g. an export's
staging directory holds k files); that lands anywhere in the next few milliseconds of work.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PRELOAD = ["hwnas.cli", "hwnas.commands.search", "hwnas.commands.profile", "hwnas.commands.export",
           "hwnas.search.driver", "hwnas.deploy.pipeline", "hwnas.profiling.profiler", "onnxruntime", "onnx",
           "sklearn.linear_model", "search_synthetic", "killpoints"]


@dataclass(frozen=True)
class KillPoint:
    """Where a child process kills itself with SIGKILL (see the module docstring)."""

    at: str  # "append", "replace" or "save"
    n: int
    torn: bool = False


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached


def _install(point: KillPoint) -> None:
    """Patch this (child) process so that it dies at ``point``."""
    calls = [0]

    def due() -> bool:
        calls[0] += 1
        return calls[0] == point.n

    if point.at == "append":
        import json

        from hwnas.search.store import EVALUATIONS, RunDirectory

        real_append = RunDirectory.append

        def append(self, row):
            if not due():
                return real_append(self, row)
            if point.torn:  # the first half of the line is on disk, the rest never comes
                data = (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode()
                with open(self.path / EVALUATIONS, "ab") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                _die()
            real_append(self, row)
            _die()

        RunDirectory.append = append
    elif point.at == "replace":
        real_replace = os.replace

        def replace(src, dst, **kwargs):
            if due():
                _die()
            return real_replace(src, dst, **kwargs)

        os.replace = replace
    elif point.at == "save":
        from hwnas.profiling.profile import Profile

        real_save = Profile.save

        def save(self, path):
            real_save(self, path)
            if due():
                _die()

        Profile.save = save
    else:
        raise ValueError(f"unknown kill point {point.at!r}")


def _child(args: Sequence[str], env: dict[str, str], log: str, point: KillPoint | None) -> None:
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if point is not None:
        _install(point)
    from hwnas.cli import main

    main(list(args))  # exits through SystemExit: the process's exit status


_context: multiprocessing.context.BaseContext | None = None
#: Set while the fork server starts: its import of this module then trains the example plug-in's
#: shared weights once (deterministic, one torch thread), as a process that used them before would
#: hold them — its children do not spend seconds training them again.
SERVER_ENV = "HWNAS_KILLPOINTS_SERVER"


def _server() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        from multiprocessing import forkserver

        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
        # Python 3.11's fork server ignores this process's sys.path: give it this directory (for
        # this module and the test plug-ins) and the repository (this hwnas) on PYTHONPATH.
        saved = os.environ.get("PYTHONPATH")
        here = Path(__file__).resolve().parent
        os.environ["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), *([saved] if saved else [])])
        os.environ[SERVER_ENV] = "1"
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(SERVER_ENV, None)
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    return _context


@dataclass
class Outcome:
    """How a child ended: ``code`` (exit status; -9 when killed) and what it printed."""

    code: int
    log: str

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


def run(args: Sequence[str], log: Path, *, point: KillPoint | None = None, env: dict[str, str] | None = None,
        kill_when: Callable[[], bool] | None = None, timeout: float = 120.0) -> Outcome:
    """Run ``hwnas ARGS`` in a forked child; kill it at ``point`` (from inside) or as soon as
    ``kill_when()`` is true (from outside, polled every 5 ms). Returns how it ended."""

    child = _server().Process(target=_child, args=(list(args), dict(env or {}), str(log), point))
    child.start()
    end = time.monotonic() + timeout
    try:
        while child.exitcode is None and time.monotonic() < end:
            if kill_when is not None and kill_when():
                os.kill(child.pid, signal.SIGKILL)
                kill_when = None
            child.join(0.005)
        if child.exitcode is None:
            raise AssertionError(f"hwnas {' '.join(args)} did not end within {timeout} s")
    finally:
        if child.exitcode is None:
            child.kill()
            child.join()
    return Outcome(child.exitcode, Path(log).read_text(errors="replace"))


if os.environ.get(SERVER_ENV) == "1":  # imported by the fork server as it starts
    from hwnas.examples.mlp_digits import TrainSettings, trained_weights

    trained_weights(TrainSettings())


__all__ = ["KillPoint", "Outcome", "run"]
