"""Thumbnails the indexer keeps with each image: a small JPEG in the payload, so it follows the
data wherever the payload goes (a Qdrant server, an export) and the web page and galleries never
need the original file, or a path a client names.

Made only for images the embedder has just decoded and accepted (so the size limits were checked
already). An embedder in the same process hands `thumbnail_of` the picture it decoded for the CNN
(JPEGs at a reduced size through the DCT, oriented, transparency on white), so the bytes are decoded
once; with remote embedders `make_thumbnail` decodes them here the same way. Then a whole-factor
reduce and a bilinear resize to SIDE, and a JPEG at quality 75. Measured on the quality benchmark's
44 photos, per image on one core (2026-12-04): resizing 0.77 ms with the bilinear pass alone, 0.48
with the whole-factor reduce first; encoding JPEG q75 0.14 ms for 7.3 KB on average, WebP q70 at
effort 2 / 1 / 0: 1.45 / 1.17 / 0.90 ms for 4.7 / 5.3 / 5.7 KB. JPEG was chosen for ingestion's CPU
(a CNN image costs about 7 to 10 ms, so 1.3 ms is a tenth of it) at about 2.6 KB more per stored
image; side by side the two look the same (3 to 14 KB a thumbnail). Thumbnails already stored stay
WebP: the thumbnail route and galleries serve either by its bytes. A failure leaves the image
without a thumbnail, never fails its ingest.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging

from imgsearch.errors import InvalidArgument

log = logging.getLogger(__name__)

SIDE = 256  # longest side, pixels
QUALITY = 75  # JPEG quality (Pillow's default; 4:2:0 chroma)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# The largest thumbnail an import may bring (the indexer's own are 3 to 10 KB); with this bound a
# record is at most about 600 KB, which the replies' size budget (imgsearch.query.replies) pages by.
MAX_THUMBNAIL_BYTES = 64 * 1024
THUMBNAIL_FORMATS = ("WEBP", "JPEG", "PNG")  # what a browser shows from the thumbnail route


def make_thumbnail(data: bytes, side: int = SIDE, quality: int = QUALITY) -> bytes | None:
    """A JPEG of at most side x side pixels (aspect kept, EXIF orientation applied, transparency
    on white), or None when the bytes cannot be made into one."""
    from PIL import Image, ImageOps

    try:
        img: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
        if img.format in ("JPEG", "MPO"):
            img.draft("RGB", (side, side))
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        return _encoded(img, side, quality)
    except Exception as exc:  # noqa: BLE001 - a thumbnail is a convenience; the image is still stored
        log.warning("no thumbnail: %s: %s", type(exc).__name__, exc)
        return None


def thumbnail_of(picture, side: int = SIDE, quality: int = QUALITY) -> bytes | None:
    """The thumbnail of a decoded picture (a PIL image, oriented, RGB or L, transparency already
    on white), which is left unchanged; None when it cannot be made."""
    try:
        return _encoded(picture, side, quality)
    except Exception as exc:  # noqa: BLE001 - a thumbnail is a convenience; the image is still stored
        log.warning("no thumbnail: %s: %s", type(exc).__name__, exc)
        return None


def _encoded(img, side: int, quality: int) -> bytes:
    from PIL import Image

    w, h = img.size
    scale = side / max(w, h)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # reduced by a whole factor first (box average), so the bilinear pass reads fewer pixels
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)  # a new image
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def thumbnail_text(data: bytes, thumbnail: bytes | None = None) -> str | None:
    """The thumbnail as the payload stores it (base64 text: payloads are JSON): `thumbnail` when
    the embedder made it, else made from the bytes."""
    thumb = thumbnail if thumbnail is not None else make_thumbnail(data)
    return base64.b64encode(thumb).decode("ascii") if thumb else None


def check_thumbnail(text: object) -> bytes:
    """The bytes of a thumbnail a record brings (base64 text), InvalidArgument unless it is a real
    image in THUMBNAIL_FORMATS of at most SIDE x SIDE pixels and MAX_THUMBNAIL_BYTES: what the
    thumbnail route and searches with thumbnails then serve as they are."""
    from PIL import Image

    if not isinstance(text, str) or len(text) > (MAX_THUMBNAIL_BYTES + 2) // 3 * 4:
        raise InvalidArgument(f"thumbnail must be base64 text of at most {MAX_THUMBNAIL_BYTES} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("thumbnail is not base64") from None
    try:
        with Image.open(io.BytesIO(data), formats=THUMBNAIL_FORMATS) as img:
            if max(img.size) > SIDE:
                raise InvalidArgument(f"thumbnail is {img.size[0]}x{img.size[1]}, over {SIDE} pixels a side")
            img.load()
    except InvalidArgument:
        raise
    except Exception:  # noqa: BLE001 - any decoder complaint means it is no image we serve
        raise InvalidArgument(f"thumbnail is not a {', '.join(THUMBNAIL_FORMATS)} image") from None
    return data
