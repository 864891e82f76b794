"""Pieces shared by the command modules: output, common options, progress bars."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

stderr = Console(stderr=True)


def emit(document: Any, as_json: bool, table: Table | None = None) -> None:
    """Print ``document`` as JSON on stdout, or ``table`` (human form) on stdout."""
    if as_json:
        click.echo(json.dumps(document, indent=2))
    elif table is not None:
        Console().print(table)


supernet_option = click.option(
    "--supernet", "plugin", default=None, metavar="MODULE:FACTORY",
    help="Load a plug-in supernet; its spaces become available by name.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


def progress_bar(*fields: str) -> Progress:
    """A progress bar with ETA on stderr, then one text column per format in ``fields``
    (default: the task's ``item`` field, e.g. the block being measured)."""
    columns = [TextColumn(f) for f in fields or ("{task.fields[item]}",)]
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), *columns, console=stderr, transient=False)
