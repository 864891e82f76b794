"""`hwnas export`: standalone, verified ONNX models."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, stderr, supernet_option


@click.command()
@click.option("--space", required=True, help="Space name (see `hwnas spaces`).")
@click.option("--config", "config_text", required=True, metavar="JSON", help="Configuration to export.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New output directory.")
@supernet_option
@json_option
def export(space: str, config_text: str, out: Path, plugin: str | None, as_json: bool) -> None:
    """Export one configuration as a standalone, verified ONNX model with manifest.json."""
    from hwnas.export import export_configs, prepare_output_dir
    from hwnas.space import parse_config
    from hwnas.supernets.registry import get_supernet

    supernet = get_supernet(space, plugin)
    config = parse_config(config_text, supernet.space)
    prepare_output_dir(out)
    stderr.print(f"exporting {json.dumps(config)} from {space} …")
    manifest = export_configs(supernet, [config], out)
    table = Table(title=f"exported to {out}")
    for column in ("file", "params", "MACs", "parity (max abs)"):
        table.add_column(column)
    for m in manifest["models"]:
        table.add_row(m["file"], f"{m['params'] / 1e6:.2f} M", f"{m['macs'] / 1e9:.2f} G",
                      f"{m['parity_max_abs_diff']:.2e}")
    emit(manifest, as_json, table)
