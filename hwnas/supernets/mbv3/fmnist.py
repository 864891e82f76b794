"""Fashion-MNIST from its four standard IDX files: reader, fixed splits and the :class:`Task`.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence): 70,000 real 28×28 grayscale images
of clothing in 10 classes, 60,000 for training and 10,000 for testing. hwnas never downloads
it; it reads the IDX files (plain, or gzipped as distributed: ``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
``t10k-labels-idx1-ubyte[.gz]``) from

1. the directory passed as ``directory``, else the one in ``$HWNAS_FASHION_MNIST``;
2. then :data:`DEBIAN_DIR` (``/usr/share/datasets/fashion-mnist``, where Debian's package
   ``dataset-fashion-mnist`` installs them: ``apt-get install dataset-fashion-mnist``).

The first of these that holds all four files is read. None found, or a file that is not a
valid IDX file of the expected shape: :class:`~hwnas.errors.InputError` (exit status 2) naming
the places looked at or the bad file, and how to install the data.

Splits (:func:`fashion_mnist_task`), fixed by ``seed`` (default 0): a seeded permutation of the
60,000 training images puts the first 5,000 in ``validation`` (scored during searches) and the
other 55,000 in ``train``; ``test`` is the official 10,000 test images (scored on exported
models). Inputs: ``image`` float32 [b, 1, 28, 28], intensities 0..255 divided by 255 (so in
[0, 1]; no mean/std normalisation: the stem's batch norm takes care of scale). Labels int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.errors import InputError
from hwnas.task import Split, Task

ENV_VAR = "HWNAS_FASHION_MNIST"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": ("train-images-idx3-ubyte", (60_000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", (60_000,)),
    "test_images": ("t10k-images-idx3-ubyte", (10_000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", (10_000,)),
}
N_VALIDATION = 5_000
NUM_CLASSES = 10
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
HOW_TO_INSTALL = (f"install it with 'apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or download the "
                  f"four standard IDX files ({', '.join(n + '.gz' for n, _ in FILES.values())}) into a "
                  f"directory and set {ENV_VAR} to it")


def candidate_dirs(directory: str | os.PathLike | None = None) -> list[Path]:
    """Where the files are looked for, in order (see the module doc)."""
    given = directory if directory is not None else os.environ.get(ENV_VAR) or None
    out = [Path(given)] if given is not None else []
    if Path(DEBIAN_DIR) not in out:
        out.append(Path(DEBIAN_DIR))
    return out


def _file_in(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def find_files(directory: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of the four IDX files, from the first candidate directory holding all of them.

    Raises:
        InputError: none holds them all (naming each directory and what it lacks).
    """
    looked = []
    for where in candidate_dirs(directory):
        found = {key: _file_in(where, stem) for key, (stem, _) in FILES.items()}
        missing = [FILES[k][0] for k, v in found.items() if v is None]
        if not missing:
            return {k: v for k, v in found.items() if v is not None}
        why = "does not exist" if not where.is_dir() else f"lacks {', '.join(m + '[.gz]' for m in missing)}"
        looked.append(f"{where} ({why})")
    raise InputError(f"Fashion-MNIST not found: looked in {'; '.join(looked)}. {HOW_TO_INSTALL}")


def read_idx(path: str | os.PathLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped when its name ends in ``.gz``) as a uint8 array.

    Raises:
        InputError: unreadable, not IDX (bad magic, dtype or size), or not of ``shape``.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"Fashion-MNIST file {path} is unreadable or corrupt ({type(exc).__name__}: {exc}); "
                         f"{HOW_TO_INSTALL}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise InputError(f"Fashion-MNIST file {path} is corrupt: not an IDX file of unsigned bytes "
                         f"(header {raw[:4].hex() or 'empty'}); {HOW_TO_INSTALL}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)) if len(raw) >= header else ()
    if len(dims) != ndim or len(raw) != header + int(np.prod(dims)):
        raise InputError(f"Fashion-MNIST file {path} is corrupt: {len(raw)} bytes do not match its header "
                         f"{dims}; {HOW_TO_INSTALL}")
    if shape is not None and dims != tuple(shape):
        raise InputError(f"Fashion-MNIST file {path} has shape {dims}, expected {tuple(shape)}; {HOW_TO_INSTALL}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


_CACHE: dict[tuple[str, ...], dict[str, np.ndarray]] = {}


def load_fashion_mnist(directory: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The four arrays (``train_images`` uint8 [60000, 28, 28], ``train_labels`` [60000], ``test_*``),
    cached per set of files. Raises InputError as :func:`find_files` and :func:`read_idx` do."""
    paths = find_files(directory)
    key = tuple(str(paths[k]) for k in FILES)
    if key not in _CACHE:
        arrays = {k: read_idx(paths[k], FILES[k][1]) for k in FILES}
        for split in ("train", "test"):
            labels = arrays[f"{split}_labels"]
            if labels.max() >= NUM_CLASSES:
                raise InputError(f"Fashion-MNIST file {paths[f'{split}_labels']} is corrupt: label "
                                 f"{int(labels.max())} (classes are 0..9); {HOW_TO_INSTALL}")
        _CACHE[key] = arrays
    return _CACHE[key]


@dataclass(frozen=True, eq=False)
class ImageSplit(Split):
    """Images held as uint8 [N, H, W]; :meth:`feeds` gives ``image`` float32 [b, 1, H, W] in [0, 1]."""

    name: str
    pixels: np.ndarray
    labels: np.ndarray

    def feeds(self, rows: np.ndarray, *, trim: bool = False) -> dict[str, np.ndarray]:
        images = self.pixels[np.asarray(rows)].astype(np.float32) / np.float32(255.0)
        return {"image": np.ascontiguousarray(images[:, None])}


def fashion_mnist_task(directory: str | os.PathLike | None = None, seed: int = 0,
                       n_validation: int = N_VALIDATION) -> Task:
    """The ``fashion-mnist`` task: seeded validation/train split of the training images, official test."""
    data = load_fashion_mnist(directory)
    order = np.random.default_rng(seed).permutation(data["train_labels"].shape[0])
    val, train = order[:n_validation], order[n_validation:]
    images, labels = data["train_images"], data["train_labels"].astype(np.int64)
    return Task(
        name="fashion-mnist",
        num_classes=NUM_CLASSES,
        validation=ImageSplit("validation", images[val], labels[val]),
        test=ImageSplit("test", data["test_images"], data["test_labels"].astype(np.int64)),
        train=ImageSplit("train", images[train], labels[train]),
        seed=seed,
    )
