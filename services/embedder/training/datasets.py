"""Labelled image datasets for training and evaluating a DeViSE head.

Two kinds: a folder with one sub-folder per class (the seed's layout) and the built-in
`fashion-mnist` (Debian package `dataset-fashion-mnist`, gzipped IDX files). Both give the
same thing: class names, the words each name maps to, integer labels, a train/test split and
a way to produce CNN-ready uint8 (N, 224, 224, 3) batches. Fashion-MNIST keeps its official
test set; a folder is split 80/20 with a fixed seed so every run sees the same test images.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsearch.errors import FailedPrecondition, InvalidArgument

FASHION_MNIST = "fashion-mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# The official label order; each name is what a user would search for.
FASHION_MNIST_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_SEED = 0
TEST_FRACTION = 0.2
SIZE = 224


@dataclass(frozen=True)
class Dataset:
    """A labelled image set; `key` names it in the feature cache (it changes when the data does)."""

    name: str
    key: str
    classes: tuple[str, ...]
    labels: np.ndarray  # int64 (N,), index into `classes`
    is_test: np.ndarray  # bool (N,), the evaluation split
    _load: Callable[[np.ndarray], np.ndarray]  # indices -> uint8 (n, 224, 224, 3)
    uris: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """CNN-ready uint8 RGB pixels (n, 224, 224, 3) of the given images."""
        return self._load(np.asarray(indices))

    def batches(self, batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(indices, pixels) in order over the whole dataset."""
        for start in range(0, len(self), batch_size):
            idx = np.arange(start, min(start + batch_size, len(self)))
            yield idx, self.images(idx)

    def subset(self, indices: np.ndarray) -> Dataset:
        """The same classes over some of the images (e.g. a quick trial); its cache key names them."""
        indices = np.asarray(indices)
        digest = hashlib.sha256(indices.astype(np.int64).tobytes()).hexdigest()[:12]
        uris = tuple(self.uris[i] for i in indices) if self.uris else ()
        return Dataset(
            f"{self.name}[{len(indices)}]",
            f"{self.key}-subset-{digest}",
            self.classes,
            self.labels[indices],
            self.is_test[indices],
            lambda idx: self._load(indices[np.asarray(idx)]),
            uris,
        )

    def class_index(self, names: list[str]) -> list[int]:
        """Indices of class names, matched loosely (case, spaces/underscores); unknown names refused."""
        lookup = {_norm(c): i for i, c in enumerate(self.classes)}
        out = []
        for name in names:
            if _norm(name) not in lookup:
                raise InvalidArgument(f"unknown class {name!r}; the classes are {', '.join(self.classes)}")
            out.append(lookup[_norm(name)])
        return out


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def load_dataset(spec: str) -> Dataset:
    """`fashion-mnist` or a folder of class sub-folders."""
    if spec == FASHION_MNIST:
        return load_fashion_mnist()
    path = Path(spec)
    if not path.is_dir():
        raise InvalidArgument(f"dataset {spec!r} is neither {FASHION_MNIST!r} nor a folder of class folders")
    return load_folder(path)


def _read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file (the MNIST format): big-endian dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR) -> Dataset:
    """70,000 greyscale 28x28 product photos; the official 10,000 test images are the test split."""
    names = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FailedPrecondition(
            f"Fashion-MNIST not found in {root} (missing {', '.join(missing)}); "
            "install it with: sudo apt-get install dataset-fashion-mnist"
        )
    train_x, train_y, test_x, test_y = (_read_idx(root / n) for n in names)
    pixels = np.concatenate([train_x, test_x])
    labels = np.concatenate([train_y, test_y]).astype(np.int64)
    is_test = np.zeros(len(labels), bool)
    is_test[len(train_y) :] = True

    def load(indices: np.ndarray) -> np.ndarray:
        return upsample_grey(pixels[indices])

    return Dataset(FASHION_MNIST, FASHION_MNIST, FASHION_MNIST_CLASSES, labels, is_test, load)


def upsample_grey(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(n, h, w) greyscale -> (n, size, size, 3) RGB by bilinear interpolation, in numpy for a whole batch.

    Fashion-MNIST stores products light on black; they are inverted back to dark on white,
    which is how the original catalogue photos (and ImageNet's product shots) look.
    """
    x = 255.0 - images.astype(np.float32)
    n, h, w = x.shape
    # Pixel-centre aligned sample positions, as PIL's bilinear resize uses.
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[None, :, None]
    fx = (xs - x0)[None, None, :]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    out = np.rint(top * (1 - fy) + bottom * fy).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=-1)


def load_folder(root: Path) -> Dataset:
    """One sub-folder per class; images decoded on demand; a seeded 80/20 split per class."""
    from imgsearch.config.settings import Limits
    from imgsearch.embedder.images import decode_image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    for i, name in enumerate(classes):
        found = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        files += found
        labels += [i] * len(found)
    if len(classes) < 2 or not files:
        raise InvalidArgument(f"{root} needs at least two class sub-folders holding images")
    label_arr = np.asarray(labels, np.int64)
    is_test = np.zeros(len(files), bool)
    rng = np.random.default_rng(SPLIT_SEED)
    for c in range(len(classes)):
        members = np.flatnonzero(label_arr == c)
        n_test = max(1, int(round(len(members) * TEST_FRACTION))) if len(members) > 1 else 0
        is_test[rng.permutation(members)[:n_test]] = True
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    key = f"folder-{root.resolve().name}-{digest.hexdigest()[:16]}"
    limits = Limits()

    def load(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), SIZE, SIZE, 3), np.uint8)
        for j, i in enumerate(indices):
            out[j] = decode_image(files[i].read_bytes(), limits).pixels
        return out

    uris = tuple(str(p.resolve()) for p in files)
    return Dataset(str(root), key, tuple(classes), label_arr, is_test, load, uris)
