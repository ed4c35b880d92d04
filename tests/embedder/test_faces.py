"""The people channel's face detector: the portraits are found, and the cascade is skipped only on
pictures that cannot hold a face it would find (no face-sized skin patch, not a grey picture)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.config.settings import Limits
from imgsearch.embedder.images import decode_image

cv2 = pytest.importorskip("cv2")

from imgsearch.embedder.channels.faces import FaceDetector, could_hold_face, face_region  # noqa: E402

SKIN = (205, 150, 125)  # RGB: Cr 150, Cb 108, inside the YCrCb skin box
BLUE = (40, 90, 200)


def _package_file(package: str, inside: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"package {package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    found = FaceDetector.load()
    assert found is not None
    return found


@pytest.fixture(scope="module")
def portraits() -> dict[str, np.ndarray]:
    paths = {
        "astronaut": _package_file("skimage", "data/astronaut.png"),
        "grace_hopper": _package_file("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    }
    return {name: decode_image(p.read_bytes(), Limits()).pixels for name, p in paths.items()}


def _picture(background, patch: int = 0, colour=SKIN) -> np.ndarray:
    """A 224 x 224 picture of `background` with a centred `patch` x `patch` square of `colour`."""
    pixels = np.empty((224, 224, 3), np.uint8)
    pixels[:] = background
    start = (224 - patch) // 2
    pixels[start : start + patch, start : start + patch] = colour
    return pixels


def test_the_portraits_are_found_in_colour_in_grey_and_in_dim_light(detector, portraits):
    for name, pixels in portraits.items():
        grey = np.repeat(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        dim = (pixels * 0.35).astype(np.uint8)
        for variant in (pixels, grey, dim):
            assert could_hold_face(variant), name
        assert detector.faces(np.stack([pixels, grey, dim])) == [1, 1, 1], name


def test_a_colour_picture_without_a_face_sized_skin_patch_is_not_searched():
    assert not could_hold_face(_picture(BLUE))
    assert not could_hold_face(_picture(BLUE, patch=12))  # skin, but far smaller than a face
    assert could_hold_face(_picture(BLUE, patch=40))  # a face's size: 40 of 224 pixels
    assert could_hold_face(_picture(SKIN))


def test_grey_pictures_are_always_searched():
    assert could_hold_face(_picture((128, 128, 128)))
    assert could_hold_face(
        np.random.default_rng(0).integers(0, 255, (224, 224), np.uint8)[..., None].repeat(3, 2)
    )
    # a few coloured pixels do not make a black-and-white photo a colour one
    assert could_hold_face(_picture((90, 90, 90), patch=40, colour=BLUE))


def test_a_face_anywhere_in_a_colour_picture_is_found_in_the_searched_box(detector, portraits):
    """The cascade searches only the box around the skin patches: a portrait shrunk into any corner
    of a blue or green picture is still found, and the box is well short of the whole picture (the
    astronaut's face is too small to be found at that size, searched box or not)."""
    for name, pixels in [("grace_hopper", portraits["grace_hopper"])]:
        small = cv2.resize(pixels, (150, 150), interpolation=cv2.INTER_AREA)
        for background in (BLUE, (30, 120, 40)):
            for top, left in ((0, 0), (0, 74), (74, 0), (74, 74), (37, 37)):
                canvas = _picture(background)
                canvas[top : top + 150, left : left + 150] = small
                region = face_region(canvas)
                assert region is not None, (name, top, left)
                top_edge, bottom, left_edge, right = region
                assert (bottom - top_edge) * (right - left_edge) < 0.8, (name, top, left, region)
                assert detector.faces(canvas[None]) == [1], (name, background, top, left)


def test_skipped_pictures_report_no_face(detector):
    blue = Image.new("RGB", (300, 200), BLUE)
    buf = io.BytesIO()
    blue.save(buf, "JPEG")
    pixels = decode_image(buf.getvalue(), Limits()).pixels
    assert detector.faces(pixels[None]) == [0]
