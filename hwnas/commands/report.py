"""`hwnas report`: plots and a Markdown summary of a run or an export directory."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, stderr


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report directory [default: DIRECTORY/report]: new, empty, or a previous report "
                   "(recognised by its report.json), which is replaced.")
@click.option("--export", "export_dir", type=click.Path(path_type=Path), default=None,
              help="Export directory to mark on a run's plots [default: a sibling exported from the run].")
@json_option
def report(directory: Path, out: Path | None, export_dir: Path | None, as_json: bool) -> None:
    """PNG plots and report.md for a search run (run.json) or an export (manifest.json)."""
    from hwnas import api

    summary = api.report(directory, export=export_dir, out=out)
    stderr.print(f"report written to {summary['markdown']}", highlight=False)
    table = Table(title=f"report {summary['report']}")
    table.add_column("file")
    for path in [summary["markdown"], *summary["plots"]]:
        table.add_row(path)
    emit(summary, as_json, table)
