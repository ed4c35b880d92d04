"""The sky channel: night and day sky shares and star points measured on pictures, and the query
words (by WordNet) that ask for them."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.embedder.channels.colours import colour_id
from imgsearch.embedder.channels.sky import DAY_SKY, NIGHT_SKY, STARS, sky_entries
from imgsearch.embedder.results import entry_kind
from imgsearch.embedder.wordspace.class_words import WORDNET_DIR


def _sky(top: tuple[int, int, int], bottom: tuple[int, int, int], glow: int = 0) -> np.ndarray:
    """A 224 x 224 picture: `top` over the upper half, brightening by `glow` levels towards its
    bottom (negative: darkening), `bottom` below."""
    picture = np.zeros((224, 224, 3), np.uint8)
    ramp = np.linspace(0, glow, 112)[:, None, None]
    picture[:112] = np.clip(np.array(top)[None, None, :] + ramp, 0, 255).astype(np.uint8)
    picture[112:] = bottom
    return picture


def test_a_dark_blue_sky_glowing_towards_the_horizon_is_night_sky():
    night = _sky((15, 25, 70), (10, 10, 10), glow=25)
    (entries,) = sky_entries(night[None])
    assert entries[NIGHT_SKY] == pytest.approx(1.0)
    assert DAY_SKY not in entries and STARS not in entries


def test_water_or_a_backdrop_lit_from_above_is_no_night_sky():
    water = _sky((40, 60, 110), (10, 20, 50), glow=-35)
    black = _sky((5, 5, 5), (5, 5, 5))
    black[60:160, 80:140] = (120, 120, 120)  # a product on a black backdrop
    assert sky_entries(np.stack([water, black])) == [{}, {}]


def test_a_bright_blue_upper_half_is_day_sky_and_orange_is_not():
    day = _sky((130, 185, 235), (60, 120, 40))
    wall = _sky((230, 140, 40), (60, 60, 60))
    day_entries, wall_entries = sky_entries(np.stack([day, wall]))
    assert set(day_entries) == {DAY_SKY} and day_entries[DAY_SKY] == pytest.approx(13 / 14)  # the edge's row
    assert wall_entries == {}


def test_point_lights_on_a_dark_ground_are_stars():
    rng = np.random.default_rng(0)
    sky = _sky((8, 10, 20), (8, 10, 20))
    ys, xs = rng.integers(0, 224, 200), rng.integers(0, 224, 200)
    sky[ys, xs] = 230
    (entries,) = sky_entries(sky[None])
    assert entries[STARS] == pytest.approx(1.0)
    assert entry_kind(STARS) == "stars" and entry_kind(NIGHT_SKY) == entry_kind(DAY_SKY) == "sky"


@pytest.mark.skipif(not (WORDNET_DIR / "index.noun").is_file(), reason="wordnet-base not installed")
def test_sky_words_ask_for_the_entries_below_their_first_sense():
    from imgsearch.embedder.channels.taxonomy import Taxonomy

    taxonomy = Taxonomy()
    assert taxonomy.classes("night") == {NIGHT_SKY}
    assert taxonomy.classes("sky") == {NIGHT_SKY, DAY_SKY}
    assert taxonomy.classes("stars") == {STARS}
    # a colour term asks for its colour ("blue" is also WordNet's blue sky); "dark" is first darkness
    assert taxonomy.query([("blue", 1.0)]).ids == (colour_id("blue"),)
    assert not taxonomy.classes("dark") & {NIGHT_SKY, DAY_SKY, STARS}
    assert not taxonomy.classes("dog") & {NIGHT_SKY, DAY_SKY, STARS}
