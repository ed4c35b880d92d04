"""Self-contained HTML pages: styles inline, images embedded as data: URIs, so a page is one file.

Thumbnails need Pillow, a server-only package: it is imported only when a thumbnail is made, and
without it (the client-only install) pages are written without thumbnails.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

NO_THUMBNAILS_NOTE = "No thumbnails: Pillow is not installed (pip install pillow)."


def can_make_thumbnails() -> bool:
    """Whether Pillow is installed."""
    return importlib.util.find_spec("PIL") is not None


def thumbnail_data_uri(image: Path | bytes | np.ndarray, size: int) -> str | None:
    """A JPEG data: URI of the image shrunk to fit `size` x `size`.

    `image` is a file, encoded bytes, or uint8 pixels (H, W[, 3]). None when Pillow is missing or
    a file or the bytes are not a readable image (a page shows a placeholder instead).
    """
    try:
        from PIL import Image, ImageOps
    except ImportError:
        return None
    if not isinstance(image, Path | bytes):
        return _jpeg_data_uri(Image.fromarray(image), size)
    try:
        with Image.open(image if isinstance(image, Path) else io.BytesIO(image)) as img:
            return _jpeg_data_uri(ImageOps.exif_transpose(img), size)
    except Exception:  # any missing, unreadable or undecodable file
        return None


def _jpeg_data_uri(img: Image, size: int) -> str:
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def page(title: str, body: Iterable[str], css: str = "") -> str:
    """A whole HTML document: `title` as its title and heading, `css` inline, then `body`'s parts."""
    esc = html.escape(title)
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc}</title><style>{css}</style></head><body>",
        f"<h1>{esc}</h1>",
    ]
    return "\n".join([*head, *body, "</body></html>"]) + "\n"


def write_page(path: str | Path, text: str) -> Path:
    """Writes a page (creating its folder); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
