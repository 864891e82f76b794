"""`hwnas export`: standalone, verified ONNX models, from a run's Pareto front or one configuration."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from hwnas.commands.common import emit, json_option, stderr, supernet_option


def config_summary(config: dict) -> str:
    """Short human form of a configuration: ``D=3 A=4,4,2 I=512,256,128``."""
    parts = []
    for key, value in config.items():
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def models_table(manifest: dict, title: str) -> Table:
    """The exported models as a compact table: config, params, test accuracy, predicted and
    measured ms, INT8 ms and accuracy (files, parity and sizes are in manifest.json)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    labels = [p["label"] for p in manifest.get("profiles", [])]
    int8 = manifest.get("int8") is not None
    columns = ["#", "config", "params", "test\nacc"]
    columns += [f"pred ms\n{lb}" if len(labels) > 1 else "pred\nms" for lb in labels] + ["meas\nms"]
    columns += ["INT8\nms", "INT8\nacc"] if int8 else []
    for column in columns:
        if column == "config":
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)

    def fmt(value, spec):
        return "—" if value is None else format(value, spec)

    for k, m in enumerate(manifest["models"], 1):
        row = [str(k), config_summary(m["config"]).replace(" ", "\n"), f"{m['params'] / 1e6:.2f}M",
               fmt(m.get("test_accuracy"), ".4f")]
        row += [fmt((m.get("predicted_ms") or {}).get(lb), ".3f") for lb in labels]
        row += [fmt(m.get("measured_ms"), ".3f")]
        if int8:
            q = m.get("int8") or {}
            row += [fmt(q.get("measured_ms"), ".3f"), fmt(q.get("test_accuracy"), ".4f")]
        table.add_row(*row)
    return table


@click.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Search run directory: export its validated Pareto front.")
@click.option("--top", type=int, default=None,
              help="With --run: export K points spread along the front [default: all of it].")
@click.option("--space", default=None, help="Space name; with --run, the space the run must be of.")
@click.option("--config", "config_text", default=None, metavar="JSON", help="One configuration to export (with --space).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New output directory.")
@click.option("--int8", is_flag=True, help="Also write an INT8 variant of each model (ONNX Runtime dynamic quantization).")
@click.option("--ep", type=click.Choice(["cpu", "cuda", "openvino"]), default=None,
              help="Execution provider for timing [default: the run's profile's, else cpu].")
@click.option("--threads", type=int, default=None,
              help="Intra-op threads for timing [default: the profile's, else physical cores].")
@supernet_option
@json_option
def export(run_dir: Path | None, top: int | None, space: str | None, config_text: str | None, out: Path,
           int8: bool, ep: str | None, threads: int | None, plugin: str | None, as_json: bool) -> None:
    """Export sub-networks as standalone, verified ONNX models with manifest.json.

    Each model: onnx.checker, ONNX Runtime vs PyTorch parity (<= 1e-4), latency measured here
    beside each profile's prediction, test accuracy where the supernet has an evaluator.
    """
    from hwnas import api

    manifest = api.export(run_dir, out=out, top=top, space=space, config=config_text, int8=int8, ep=ep,
                          threads=threads, plugin=plugin, progress=lambda m: stderr.print(m, highlight=False))
    for warning in manifest["warnings"]:
        stderr.print(f"warning: {warning}", style="yellow", highlight=False)
    emit(manifest, as_json, models_table(manifest, f"exported to {out} ({manifest['wall_seconds']:.1f} s)"))
