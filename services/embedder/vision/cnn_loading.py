"""Which CNN runtime a setting names: the one place the CNN is chosen, loaded and prepared.

`litert` (the default) serves the float32 flatbuffer on XNNPACK, `litert-int8` its full-integer
version, `keras` the Keras model on TensorFlow. With the flatbuffer in the cache, the LiteRT
runtimes never import TensorFlow; without it, the first load converts it (with TensorFlow) and
caches it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

RUNTIMES = ("litert", "litert-int8", "keras")
_VARIANTS = {"litert": "float32", "litert-int8": "int8"}


class ImageCnn(Protocol):
    """What the embedder needs of a CNN, whichever runtime runs it."""

    name: str
    feature_dim: int
    num_classes: int
    input_size: int
    runtime: str
    concurrency: int  # calls worth running at once (each on its own thread)
    batch_size: int  # images per call worth gathering

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, 224, 224, 3) -> (features (N, 1280), logits (N, 1000)), float32."""
        ...

    def logits_from_features(self, features: np.ndarray) -> np.ndarray: ...


def load_cnn(runtime: str, cache_dir: Path) -> ImageCnn:
    """The CNN on `runtime`, from the cache; converting (and caching) first when it is missing."""
    if runtime == "keras":
        from imgsearch.embedder.vision.cnn import Cnn

        return Cnn.load(cache_dir)
    if runtime not in _VARIANTS:
        raise ValueError(f"unknown CNN runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    from imgsearch.embedder.vision.litert_cnn import LiteRtCnn, litert_path

    variant = _VARIANTS[runtime]
    path = litert_path(cache_dir, variant)
    if path.is_file():
        try:
            cnn = LiteRtCnn(path, variant, source="cache")
            log.info("loaded %s (LiteRT %s) from cache %s", cnn.name, variant, path)
            return cnn
        except (ValueError, RuntimeError) as exc:  # a damaged cache is converted again, not fatal
            log.warning("LiteRT model %s unreadable (%s); converting again", path, exc)
    from imgsearch.embedder.vision.litert_convert import prepare

    return LiteRtCnn(prepare(cache_dir, variant), variant, source="converted")
