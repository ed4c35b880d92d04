"""The people channel: a face detector's verdict as one more entry of an image's class vector.

ImageNet-1k has no class for a person (its few, 'groom', 'scuba diver', 'baseball player', are rare
guesses on portraits), so "woman", "man" or "people" found nothing by the taxonomic channel. OpenCV's
wheels ship trained Haar cascades; the frontal-face one (`haarcascade_frontalface_alt2.xml`) runs on
the 224x224 picture the CNN sees. A found face puts PERSON = 1.0 into the image's sparse `classes`
vector, and a query word whose first WordNet sense is a person or people (imgsearch.embedder.taxonomy)
asks for PERSON. On the quality benchmark's 44 photos the cascade found both portraits and nothing
else (the 'default' cascade also fired on a cat, coins and a fish; benchmarks/README.md).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PERSON = 1000  # the id of "a face is in the picture" in the class vector, after ImageNet's 0-999
CASCADE = "haarcascade_frontalface_alt2.xml"
# The cascade's search: the picture shrunk to DETECT_SIZE square, faces from the cascade's own
# 20-pixel window up (28 px of the 224 picture, an eighth of its side), scales 1.2 apart. On the 44
# benchmark photos that found the same two faces as 224 px, 20 px and steps of 1.1 for 8 ms of CPU
# per image instead of 33 (the CNN takes about 18 ms on Keras here); at 128 px one face was lost.
DETECT_SIZE = 160
MIN_FACE = 20
SCALE_STEP = 1.2


class FaceDetector:
    """Frontal faces in decoded pictures; one OpenCV cascade, serialised by a lock."""

    def __init__(self, cascade_path: Path):
        import cv2

        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(str(cascade_path))
        if self._cascade.empty():
            raise FileNotFoundError(f"no face cascade at {cascade_path}")
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> FaceDetector | None:
        """OpenCV's shipped frontal-face cascade, or None (with a warning) when OpenCV is missing."""
        try:
            import cv2

            return cls(Path(cv2.data.haarcascades) / CASCADE)
        except (ImportError, AttributeError, FileNotFoundError) as exc:
            log.warning("no face detector (%s): the people channel is off", exc)
            return None

    def faces(self, pixels: np.ndarray) -> list[int]:
        """The number of frontal faces in each (N, H, W, 3) uint8 RGB picture."""
        cv2 = self._cv2
        out = []
        for picture in np.asarray(pixels, dtype=np.uint8):
            grey = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2GRAY)
            grey = cv2.equalizeHist(
                cv2.resize(grey, (DETECT_SIZE, DETECT_SIZE), interpolation=cv2.INTER_AREA)
            )
            with self._lock:
                found = self._cascade.detectMultiScale(
                    grey, scaleFactor=SCALE_STEP, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE)
                )
            out.append(len(found))
        return out
