"""Pieces shared by the command modules: output, common options, progress bars."""

from __future__ import annotations

import json
from collections.abc import Sequence
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


shape_option = click.option(
    "--shape", "shape_items", multiple=True, metavar="KEY=VALUE",
    help="Input shape setting, repeatable (e.g. --shape seq_len=64, --shape resolution=160): a key of the "
         "supernet's default shape, a positive integer [default: the space's].",
)


def parse_shape(items: Sequence[str], **shorthands: int | None) -> dict[str, int]:
    """``--shape KEY=VALUE`` items merged with shorthand options, as ``{key: value}``.

    ``shorthands`` maps a shape key to its option's value (``batch=`` for ``--batch``, None when
    not given). Keys and values are checked against the supernet by ``Supernet.resolve_shape``
    (an unknown key or a value < 1 is an InputError there); here only the form is checked.

    Raises:
        click.UsageError: an item not ``KEY=INT``, or two values for one key (``--shape`` given
            twice, or disagreeing with its shorthand), naming the item.
    """
    shape: dict[str, int] = {}
    origin: dict[str, str] = {}
    for key, value in shorthands.items():
        if value is not None:
            shape[key] = value
            origin[key] = f"--{key.replace('_', '-')} {value}"
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if not sep or not key or value is None:
            raise click.UsageError(f"--shape {item!r}: expected KEY=VALUE with an integer value (e.g. seq_len=64)")
        if key in shape and shape[key] != value:
            raise click.UsageError(f"--shape {item!r} disagrees with {origin[key]}")
        shape[key] = value
        origin[key] = f"--shape {item}"
    return shape


def progress_bar(*fields: str) -> Progress:
    """A progress bar with ETA on stderr, then one text column per format in ``fields``
    (default: the task's ``item`` field, e.g. the block being measured)."""
    columns = [TextColumn(f) for f in fields or ("{task.fields[item]}",)]
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), *columns, console=stderr, transient=False)
