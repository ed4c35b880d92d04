"""The colour channel: how much of a picture each basic colour covers, as entries of its class vector.

ImageNet classes say what is in a picture, never its colour, and GloVe's "red" sits near "blue" and
"green": "red fish" or "black cat" ranked a blue fish or a tabby first. Colour needs no model: the
share of the picture's pixels in each basic colour term (Berlin and Kay's eleven; "gray" and
"violet" as synonyms) is measured in HSV on the 224 x 224 picture the CNN sees. An image keeps the
colours covering at least MIN_SHARE of it under ids COLOUR_BASE + i; a query word that is a colour
term asks for its id (imgsearch.embedder.channels.taxonomy), so "red fish" scores the probability of fish
plus the share of red.
"""

from __future__ import annotations

import numpy as np

COLOUR_BASE = 1001  # after ImageNet's 0-999 and faces.PERSON (1000)
COLOURS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
SYNONYMS = {"gray": "grey", "violet": "purple"}
MIN_SHARE = 0.05
STRIDE = 4  # every 4th pixel of every 4th row: 56 x 56 samples, shares within a percent, 1/16 the work

# Achromatic first: black is dark whatever its hue, white and grey are unsaturated.
DARK = 0.2  # value below: black
PALE = 0.2  # saturation below: white (bright) or grey
BRIGHT = 0.8
# Hue ranges in degrees of the chromatic colours (red wraps around 0).
HUES = {"red": ((345, 360), (0, 15)), "orange": ((15, 45),), "yellow": ((45, 70),), "green": ((70, 170),),
        "blue": ((170, 260),), "purple": ((260, 300),), "pink": ((300, 345),)}  # fmt: skip
BROWN_VALUE = 0.55  # orange or red hues darker than this read as brown


def colour_id(word: str) -> int | None:
    """The class-vector id of a colour term ('gray' and 'grey' alike), or None."""
    word = SYNONYMS.get(word, word)
    return COLOUR_BASE + COLOURS.index(word) if word in COLOURS else None


def colour_shares(pixels: np.ndarray) -> list[dict[int, float]]:
    """For each (N, H, W, 3) uint8 RGB picture: colour id -> share of its pixels, shares >= MIN_SHARE."""
    sampled = np.asarray(pixels)[:, ::STRIDE, ::STRIDE]
    rgb = sampled.astype(np.float32).reshape(len(pixels), -1, 3) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = np.maximum(np.maximum(r, g), b)  # the same as max(axis=2), without its slow 3-wide reduce
    low = np.minimum(np.minimum(r, g), b)
    chroma = value - low
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    hue = hue_degrees(rgb, value, chroma)
    black = value < DARK
    pale = ~black & (saturation < PALE)
    masks = {"black": black, "white": pale & (value >= BRIGHT), "grey": pale & (value < BRIGHT)}
    coloured = ~black & ~pale
    brownish = coloured & (value < BROWN_VALUE) & (((hue >= 15) & (hue < 45)) | (hue < 15) | (hue >= 345))
    for name, ranges in HUES.items():
        in_range = np.zeros_like(coloured)
        for lo, hi in ranges:
            in_range |= (hue >= lo) & (hue < hi)
        masks[name] = coloured & in_range & ~(brownish if name in ("orange", "red") else False)
    masks["brown"] = brownish
    ids = [COLOUR_BASE + COLOURS.index(name) for name in masks]
    shares = np.stack(list(masks.values())).mean(axis=2)  # (colours, N): counts / samples, exact
    return [
        {k: v for k, v in zip(ids, map(float, shares[:, i]), strict=True) if v >= MIN_SHARE}
        for i in range(len(pixels))
    ]


def hue_degrees(rgb: np.ndarray, value: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Hue in degrees [0, 360) (0 where the pixel has no chroma)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    c = np.maximum(chroma, 1e-6)
    h = np.where(value == r, ((g - b) / c) % 6, np.where(value == g, (b - r) / c + 2, (r - g) / c + 4))
    return np.where(chroma > 0, h * 60.0, 0.0)
