"""The taxonomic, people and colour channels: a query word's ImageNet classes by WordNet, an image's
top classes, faces as the PERSON entry, colour terms and colour shares (real WordNet from
wordnet-base, real OpenCV cascade)."""

from __future__ import annotations

import numpy as np
import pytest

from imgsearch.embedder.channels.colours import colour_id, colour_shares
from imgsearch.embedder.channels.faces import PERSON, FaceDetector
from imgsearch.embedder.channels.taxonomy import Taxonomy, image_classes, with_person
from imgsearch.embedder.results import ClassScores
from imgsearch.embedder.wordspace.class_words import WORDNET_DIR, class_names

pytestmark = pytest.mark.skipif(
    not (WORDNET_DIR / "index.noun").is_file(), reason="wordnet-base not installed"
)


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy()


def _names(ids) -> set[str]:
    names = class_names()
    return {names[i] for i in ids if i < len(names)}


def test_a_word_names_every_imagenet_class_below_its_senses(taxonomy):
    dog = _names(taxonomy.classes("dog"))
    assert {"Golden Retriever", "Chihuahua", "Siberian Husky"} <= dog
    assert len(dog) > 100  # all the breeds
    assert {"brown bear", "polar bear", "American black bear"} <= _names(taxonomy.classes("bear"))
    assert {"goldfish", "rock beauty fish"} & _names(taxonomy.classes("fish"))
    assert "espresso" in _names(taxonomy.classes("coffee"))  # a drink sense, not only the bean or tree


def test_plurals_and_irregular_forms_find_their_lemma(taxonomy):
    assert taxonomy.classes("mountains") == taxonomy.classes("mountain") != frozenset()
    assert taxonomy.classes("mice") == taxonomy.classes("mouse") != frozenset()


def test_a_word_that_names_no_class_gives_nothing(taxonomy):
    for word in ("street", "sunset", "happiness", "music", "floor", "zzzqx"):
        assert taxonomy.classes(word) == frozenset(), word
    assert not taxonomy.query([("street", 1.0), ("sunset", 1.0)])


def test_scene_words_ask_for_the_classes_whose_definition_names_them(taxonomy):
    """'ocean', 'lake' (natural objects) name no class, but seashore is 'the shore of a sea or
    ocean' and lakeshore 'the shore of a lake'; an artifact word ('floor') gets no such link."""
    names = class_names()
    assert "beach" in {names[c] for c in taxonomy.classes("ocean")}
    assert "lakeshore" in {names[c] for c in taxonomy.classes("lakes")}
    assert "sandbar" in {names[c] for c in taxonomy.classes("sand")}
    assert taxonomy.classes("floor") == frozenset()


def test_people_words_ask_for_a_face_but_animals_do_not(taxonomy):
    for word in ("woman", "man", "people", "astronaut", "girl"):
        assert PERSON in taxonomy.classes(word), word
    for word in ("dog", "cat", "bear", "fish"):  # each has a slang sense for a person
        assert PERSON not in taxonomy.classes(word), word


def test_query_sums_weighted_words_and_joins_two_word_lemmas(taxonomy):
    q = taxonomy.query([("red", 1.0), ("fish", 2.0)])
    scores = dict(zip(q.ids, q.scores, strict=True))
    assert set(q.ids) == taxonomy.classes("fish") | {colour_id("red")}  # "red" is a colour, no class
    assert scores.pop(colour_id("red")) == 1.0 and set(scores.values()) == {2.0}
    assert list(q.ids) == sorted(q.ids)
    turtle = taxonomy.query([("sea", 1.0), ("turtle", 1.0)])
    assert _names(turtle.ids) == {"loggerhead sea turtle", "leatherback sea turtle"}


def test_image_classes_keep_the_most_probable_above_the_floor():
    probs = np.full((2, 1000), 0.0001)
    probs[0, [5, 7, 9]] = [0.6, 0.3, 0.004]
    probs[1, 42] = 0.9
    first, second = image_classes(probs, top=10, min_probability=0.005)
    assert first == ClassScores((5, 7), (0.6, 0.3))
    assert second.ids == (42,)
    assert with_person(second).ids == (42, PERSON) and with_person(second).scores[-1] == 1.0


def test_the_face_detector_finds_the_portrait_and_not_the_cat(photos):
    pytest.importorskip("cv2")
    from imgsearch.config.settings import Limits
    from imgsearch.embedder.images import decode_image

    detector = FaceDetector.load()
    assert detector is not None
    astronaut = photos["chelsea"].parent / "astronaut.png"
    pixels = np.stack([decode_image(p.read_bytes(), Limits()).pixels for p in (astronaut, photos["chelsea"])])
    assert detector.faces(pixels) == [1, 0]


def test_colour_words_ask_for_the_share_of_their_colour(taxonomy):
    red, black = colour_id("red"), colour_id("black")
    assert colour_id("gray") == colour_id("grey") and colour_id("cat") is None
    q = taxonomy.query([("black", 1.0), ("cat", 1.0)])
    assert black in q.ids and set(q.ids) - {black} == taxonomy.classes("cat")
    assert taxonomy.query([("red", 1.0)]).ids == (red,)


def test_colour_shares_measure_the_pixels():
    picture = np.zeros((2, 224, 224, 3), np.uint8)
    picture[0, :112] = (220, 20, 30)  # top half red, bottom half black
    picture[1] = (250, 250, 250)  # white
    half, white = colour_shares(picture)
    assert half == pytest.approx({colour_id("red"): 0.5, colour_id("black"): 0.5})
    assert white == pytest.approx({colour_id("white"): 1.0})
