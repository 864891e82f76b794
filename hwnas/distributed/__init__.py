"""Scale-out on Ray (the optional ``hwnas[ray]`` extra): parallel validation for every search
(:mod:`hwnas.distributed.ray_executor`) and profiling a fleet of devices from one command
(:mod:`hwnas.distributed.fleet`).

Nothing in the core imports this package; the commands import it only when ``--executor ray``
or ``--fleet`` is given. :func:`require_ray` is the one place that turns a missing Ray into
the install hint (exit status 2).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hwnas.errors import InputError

INSTALL_HINT = "install hwnas[ray] (pip install 'hwnas[ray]')"


def require_ray(what: str) -> ModuleType:
    """The ``ray`` module, or InputError naming ``what`` needed it (e.g. ``"--executor ray"``)."""
    try:
        import ray
    except ImportError:
        raise InputError(f"{what} needs Ray: {INSTALL_HINT}") from None
    return ray


def connect(ray: ModuleType, address: str | None) -> bool:
    """Join the cluster at ``address`` (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``), or
    start a local Ray instance with this machine's cores when None. A Ray already initialised
    in this process is used as it is.

    Returns:
        True when this call initialised Ray (so the caller shuts it down again).
    Raises:
        InputError: no cluster answers at ``address``.
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": "WARNING"}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--ray-address {address!r}" if address else "a local Ray instance"
        raise InputError(f"could not connect to {where}: {str(exc).splitlines()[0][:200]}") from None
    return True
