"""The people channel: a face detector's verdict as one more entry of an image's class vector.

ImageNet-1k has no class for a person (its few, 'groom', 'scuba diver', 'baseball player', are rare
guesses on portraits), so "woman", "man" or "people" found nothing by the taxonomic channel. OpenCV's
wheels ship trained Haar cascades; the frontal-face one (`haarcascade_frontalface_alt2.xml`) runs on
the 224x224 picture the CNN sees. A found face puts PERSON = 1.0 into the image's sparse `classes`
vector, and a query word whose first WordNet sense is a person or people
(imgsearch.embedder.channels.taxonomy)
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
# The cascade's search: the picture shrunk to DETECT_SIZE square, faces from MIN_FACE pixels up
# (39 px of the 224 picture, about a sixth of its side: a face that makes the picture one of a
# person), scales 1.2 apart. On the 44 benchmark photos that found the same two faces as 224 px,
# 20 px and steps of 1.1, for 4.6 ms of CPU per image instead of 28 (7.5 ms from the cascade's own
# 20-px window up; the CNN takes about 10 ms on LiteRT); from 36 px up, or at 128 px, or with steps
# of 1.25, one of the two faces was lost.
DETECT_SIZE = 160
MIN_FACE = 28
SCALE_STEP = 1.2


class FaceDetector:
    """Frontal faces in decoded pictures; one OpenCV cascade per calling thread (a cascade is not
    safe to share), so the embedder's decoding threads detect side by side."""

    def __init__(self, cascade_path: Path):
        import cv2

        self._cv2 = cv2
        self._path = str(cascade_path)
        self._local = threading.local()
        self._cascade()  # fails here, not at the first image, when the file is unusable
        # The callers are the embedder's decoding threads, one image each: OpenCV's own thread pool
        # would only compete with them and the CNN for the same cores (and costs 5 % more CPU).
        cv2.setNumThreads(1)

    def _cascade(self):
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._cv2.CascadeClassifier(self._path)
            if cascade.empty():
                raise FileNotFoundError(f"no face cascade at {self._path}")
            self._local.cascade = cascade
        return cascade

    @classmethod
    def load(cls) -> FaceDetector | None:
        """OpenCV's shipped frontal-face cascade, or None (with a warning) when OpenCV is missing."""
        try:
            import cv2

            return cls(Path(cv2.data.haarcascades) / CASCADE)  # type: ignore[attr-defined]
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
            found = self._cascade().detectMultiScale(
                grey, scaleFactor=SCALE_STEP, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE)
            )
            out.append(len(found))
        return out
