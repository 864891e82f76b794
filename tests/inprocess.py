"""Run an ``hwnas`` command in this process and capture it as :func:`subprocess.run` would.

``hwnas.cli.main`` is what ``python -m hwnas.cli`` and the installed ``hwnas`` script run, so a
command's exit status, stdout and stderr are the same; what is saved is the interpreter start
importing torch and ONNX Runtime (3–4 s per command). For tests of exit statuses and messages;
tests/test_cli_foundation.py keeps running the CLI as real processes.
"""

from __future__ import annotations

import contextlib
import io
import subprocess

from hwnas.cli import main


def hwnas(*args: str) -> subprocess.CompletedProcess:
    """``hwnas ARGS`` run by ``main`` here: returncode, stdout and stderr as text."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["hwnas", *args], code, out.getvalue(), err.getvalue())
