"""Trained weight files of built-in supernets ("hwnas-checkpoint/1").

A checkpoint is a ``torch.save`` of a plain dict, readable with ``torch.load(weights_only=True)``::

    {"schema": "hwnas-checkpoint/1", "space": "bert-mini",
     "state_dict": {name: float32 tensor, ...},      # the supernet's weight store
     "meta": {"seed": int, "steps": int, "accuracies": {...}, ...}}

The package ships one for ``bert-mini`` (``hwnas/data/bert-mini.pt``, made by
``tools/train_supernet.py``); other built-in spaces have none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from hwnas.errors import InputError

SCHEMA = "hwnas-checkpoint/1"

#: Package data file of each built-in space that ships trained weights.
PACKAGED = {"bert-mini": "bert-mini.pt", "mbv3-fmnist": "mbv3-fmnist.pt"}

PathLike = str | os.PathLike


def packaged_checkpoint(space: str) -> Path | None:
    """Path of the checkpoint shipped for ``space`` (it may be missing on disk), or None."""
    if space not in PACKAGED:
        return None
    return Path(str(resources.files("hwnas").joinpath("data", PACKAGED[space])))


def save_checkpoint(path: PathLike, space: str, state_dict: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write a checkpoint (tensors copied to contiguous float32 CPU tensors, ``meta`` made JSON-plain)."""
    meta = json.loads(json.dumps(meta, default=str))  # plain types only: weights_only loading
    state = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state_dict.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"schema": SCHEMA, "space": space, "state_dict": state, "meta": meta}, path)
    return path


def read_checkpoint(path: PathLike, space: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and check a checkpoint for ``space``.

    Returns:
        (state_dict, meta).
    Raises:
        InputError: naming the file and what is wrong (missing, unreadable, not a checkpoint,
            another schema or space, weights that are not tensors).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for truncated or foreign files
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"checkpoint {path} is corrupt or not a torch file ({type(exc).__name__}: {reason})") from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        found = obj.get("schema") if isinstance(obj, dict) else type(obj).__name__
        raise InputError(f"checkpoint {path} is not an {SCHEMA} file (found {found!r})")
    if obj.get("space") != space:
        raise InputError(f"checkpoint {path} is for space {obj.get('space')!r}, not {space!r}")
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"checkpoint {path} has no valid 'state_dict' (a dict of tensors)")
    meta = obj.get("meta")
    return state, dict(meta) if isinstance(meta, dict) else {}


def load_weights(net: torch.nn.Module, state: Mapping[str, torch.Tensor], space: str) -> torch.nn.Module:
    """``state`` loaded into the freshly built weight store ``net``, returned in eval mode.

    Raises:
        InputError: the tensors do not fit ``space``'s weight store (names or shapes differ).
    """
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"checkpoint does not fit space {space!r}: {first}") from None
    return net.eval()
