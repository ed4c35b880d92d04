"""The sky channel: how much of a picture's upper half is night sky or blue day sky, and whether it
holds point lights on a dark ground (stars), as entries of its class vector.

No ImageNet class is the sky, the night or a star, and no class's WordNet definition names them, so
"night sky", "stars" or "sky" found only what the semantic vector guessed. Like colours, the sky
needs no model: the 224 x 224 picture the CNN sees is cut into 8 x 8-pixel blocks (28 x 28), and
in the upper half

- night sky is dark (luma < 0.35), saturated deep blue to indigo (hue 215-285 degrees), and not
  brighter at the top than lower down (a night sky glows towards the horizon; water and studio
  backdrops are lit from above, and water is cyan-blue, hue about 200-213);
- day sky is bright (luma >= 0.45), blue (hue 180-260, saturation >= 0.1) and even (a block's luma
  within 0.06 of its neighbours'), in blocks joined to the picture's top edge through sky or white
  cloud;

each kept as its share of the upper half's blocks (the two are disjoint, so they sum to at most 1).
Stars are point lights: dark, even blocks (luma < 0.2, neighbours within 0.04; blue water is
about 0.25) whose brightest pixel stands 0.15 above the block's mean colour (by their largest
channels); the entry is their share of all blocks over STAR_FULL, capped at 1. Entries under
MIN_SCORE are left out. About 0.3 ms of CPU per image (the colour shares: 0.4 ms in the same run).

A query word asks for an entry when its first WordNet noun sense is at or above one of the entry's
synsets (ANCHORS: what the detector sees, by WordNet's own words: "blue_sky: the sky as viewed
during daylight", "star: any celestial body visible (as a point of light) from the Earth at night"),
the rule by which a word asks for the ImageNet classes below it (imgsearch.embedder.channels.taxonomy);
"sky" asks for both skies, "night" for the night sky, "stars" for the stars.
"""

from __future__ import annotations

import numpy as np

from imgsearch.embedder.channels.colours import COLOUR_BASE, COLOURS, hue_degrees

SKY_BASE = COLOUR_BASE + len(COLOURS)  # 1012: after ImageNet, faces.PERSON and the colours
NIGHT_SKY = SKY_BASE
DAY_SKY = SKY_BASE + 1
STARS = SKY_BASE + 2
ENTRIES = (NIGHT_SKY, DAY_SKY, STARS)
NAMES = {NIGHT_SKY: "night sky", DAY_SKY: "sky", STARS: "stars"}
# (lemma, sense number in WordNet 3.0's index.noun) of the synsets each entry is an instance of.
ANCHORS = {
    NIGHT_SKY: (
        ("night", 1),
        ("sky", 1),
    ),  # "the time after sunset and before sunrise while it is dark outside"
    DAY_SKY: (("blue_sky", 1),),  # "the sky as viewed during daylight" (below sky)
    STARS: (("star", 1), ("star", 3)),  # "(astronomy) a celestial body ...", "... a point of light ..."
}

BLOCK = 8
MIN_SCORE = 0.05
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
NIGHT_LUMA, NIGHT_HUES, NIGHT_SATURATION = 0.35, (215.0, 285.0), 0.3
NIGHT_GLOW = 0.02  # the top quarter's night blocks may be at most this much brighter than the next
DAY_LUMA, DAY_HUES, DAY_SATURATION = 0.45, (180.0, 260.0), 0.1
CLOUD_LUMA, CLOUD_SATURATION = 0.6, 0.15  # white or grey cloud and haze: joins day sky, is not counted
EVEN = 0.06  # largest luma step to a neighbouring block in an even (sky) area
STAR_LUMA, STAR_EVEN, STAR_RISE, STAR_FULL = 0.2, 0.04, 0.15, 0.05


def entry_kind(i: int) -> str | None:
    """'sky' (the night and day sky shares: they sum to at most 1) or 'stars', or None."""
    if i in (NIGHT_SKY, DAY_SKY):
        return "sky"
    return "stars" if i == STARS else None


def sky_entries(pixels: np.ndarray) -> list[dict[int, float]]:
    """For each (N, H, W, 3) uint8 RGB picture: entry id -> score, scores >= MIN_SCORE."""
    pixels = np.asarray(pixels)
    n, h, w, _ = pixels.shape
    rows, cols = h // BLOCK, w // BLOCK
    # rows of blocks first (contiguous sums and maxima: about 0.1 ms each for 224 x 224)
    bands = pixels[:, : rows * BLOCK, : cols * BLOCK].reshape(n, rows, BLOCK, cols * BLOCK * 3)
    sums = bands.sum(axis=2, dtype=np.uint16).reshape(n, rows, cols, BLOCK, 3).sum(axis=3, dtype=np.uint16)
    mean = sums.astype(np.float32) / (255.0 * BLOCK * BLOCK)
    luma = mean @ LUMA
    value = mean.max(axis=3)
    chroma = value - mean.min(axis=3)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    hue = hue_degrees(mean, value, chroma)
    # each block's brightest channel value, against the largest channel of its mean colour
    peak = bands.max(axis=2).reshape(n, rows, cols, BLOCK * 3).max(axis=3).astype(np.float32) / 255.0
    step = _largest_step(luma)

    top = rows // 2
    night = (
        (luma < NIGHT_LUMA)
        & (hue >= NIGHT_HUES[0])
        & (hue < NIGHT_HUES[1])
        & (saturation >= NIGHT_SATURATION)
    )
    day = (
        (luma >= DAY_LUMA) & (hue >= DAY_HUES[0]) & (hue < DAY_HUES[1]) & (saturation >= DAY_SATURATION)
        & (step < EVEN)
    )  # fmt: skip
    cloud = (luma >= CLOUD_LUMA) & (saturation < CLOUD_SATURATION) & (step < EVEN)
    day_reach = np.cumprod((day | cloud)[:, :top], axis=1).astype(bool)  # joined to the top edge
    stars = (luma < STAR_LUMA) & (step < STAR_EVEN) & (peak - value >= STAR_RISE)

    out = []
    quarter = max(top // 2, 1)
    for i in range(n):
        upper = night[i, :top]
        night_share = float(upper.mean())
        high, low = upper[:quarter], upper[quarter:]
        lit_from_above = (
            high.any()
            and low.any()
            and luma[i, :quarter][high].mean() > luma[i, quarter:top][low].mean() + NIGHT_GLOW
        )
        if lit_from_above:
            night_share = 0.0  # water, a backdrop
        scores = {
            NIGHT_SKY: night_share,
            DAY_SKY: float((day_reach[i] & day[i, :top]).mean()),
            STARS: min(1.0, float(stars[i].mean()) / STAR_FULL),
        }
        out.append({k: v for k, v in scores.items() if v >= MIN_SCORE})
    return out


def _largest_step(luma: np.ndarray) -> np.ndarray:
    """Each block's largest luma difference to its four neighbours ((N, R, C) -> (N, R, C))."""
    padded = np.pad(luma, ((0, 0), (1, 1), (1, 1)), mode="edge")
    centre = padded[:, 1:-1, 1:-1]
    step = np.abs(padded[:, :-2, 1:-1] - centre)
    for shifted in (padded[:, 2:, 1:-1], padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]):
        step = np.maximum(step, np.abs(shifted - centre))
    return step
