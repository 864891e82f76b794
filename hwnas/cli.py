"""The ``hwnas`` command. Thin: parses arguments, calls the library, prints.

Exit status: 0 success; 2 usage or input error (one line on stderr naming the bad value);
1 anything else. With ``--json`` a command prints one JSON document on stdout; progress and
logs go to stderr.
"""

from __future__ import annotations

import os
import sys

import click

from hwnas.commands.export import export
from hwnas.commands.fetch import fetch
from hwnas.commands.predict import measure, predict
from hwnas.commands.profile import profile
from hwnas.commands.quickstart import quickstart
from hwnas.commands.report import report
from hwnas.commands.search import search
from hwnas.commands.spaces import spaces
from hwnas.errors import InputError

COMMANDS = [spaces, fetch, profile, predict, measure, export, report, quickstart, search]


@click.group()
@click.version_option(package_name="hwnas")
def cli() -> None:
    """Hardware-aware latency profiling, multi-objective NAS and verified ONNX export."""


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and maps errors to exit statuses."""
    try:
        cli.main(args=argv, prog_name="hwnas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("hwnas: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"hwnas: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except InputError as exc:
        click.echo(f"hwnas: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("hwnas: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if os.environ.get("HWNAS_DEBUG"):
            raise
        # a full disk, an I/O error: one line naming the file (the previous good file is intact)
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"hwnas: failed: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("HWNAS_DEBUG"):
            raise
        click.echo(f"hwnas: failed: {type(exc).__name__}: {exc} (HWNAS_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
