"""Old name of :mod:`hwnas.search.store`, for ``hwnas.search.runner`` until it imports the store.

TODO(merge): remove this module once runner.py (driver.py) imports from hwnas.search.store.
"""

from hwnas.search.store import SCHEMA, RunDirectory, identity_mismatch, inspect_out_dir, now_iso  # noqa: F401
