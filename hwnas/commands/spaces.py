"""`hwnas spaces`: list search spaces."""

from __future__ import annotations

import click
from rich.table import Table

from hwnas.commands.common import emit, json_option, supernet_option


@click.command()
@supernet_option
@json_option
def spaces(plugin: str | None, as_json: bool) -> None:
    """List search spaces with their dimensions, depth groups, gene counts and valid configurations.

    Valid configurations are exact; "unknown" (JSON null) for a space with constraints too large
    to count by enumeration."""
    from hwnas import api

    found = api.spaces(plugin)
    described = [space.describe() for space in found.values()]
    table = Table(title="search spaces")
    for column in ("space", "supernet", "dimensions", "genes", "valid configurations"):
        table.add_column(column)
    for d in described:
        dims = "; ".join(
            f"{x['name']}{'[' + str(x['genes']) + ']' if x['per_layer'] else ''} ∈ {x['choices']}"
            for x in d["dimensions"]
        )
        if d["fixed"]:
            dims += "; " + ", ".join(f"{k}={v}" for k, v in d["fixed"].items())
        if d["lists"] == "full" and d["depth_groups"]:
            dims += "; depth groups: " + ", ".join(_group(g) for g in d["depth_groups"])
        count = d["valid_configurations"]
        table.add_row(d["name"], d["supernet"], dims, str(d["genes"]), "unknown" if count is None else f"{count:,}")
    emit({"spaces": described}, as_json, table)


def _group(group: dict) -> str:
    """``d[1] → ks,e[4:8]``: depth gene and the layers it gates (``size`` None: to the end)."""
    end = "" if group["size"] is None else group["start"] + group["size"]
    return f"{group['depth']}[{group['gene']}] → {','.join(group['dims'])}[{group['start']}:{end}]"
