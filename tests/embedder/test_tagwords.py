"""Tags from an image's evidence: class probabilities summed up WordNet's hypernyms, a face,
colours, then word-space neighbours that are tag words (real WordNet from wordnet-base, real GloVe)."""

from __future__ import annotations

import pytest

from imgsearch.embedder.channels.colours import colour_id
from imgsearch.embedder.channels.faces import PERSON
from imgsearch.embedder.results import ClassScores
from imgsearch.embedder.tagwords import TagWords
from imgsearch.embedder.wordspace.class_words import WORDNET_DIR, class_names
from imgsearch.query.stopwords import STOP_WORDS

pytestmark = pytest.mark.skipif(
    not (WORDNET_DIR / "index.noun").is_file(), reason="wordnet-base not installed"
)
TOO_BROAD = {"entity", "object", "whole", "organism", "artifact", "instrumentality", "thing", "matter"}


@pytest.fixture(scope="module")
def tagger(words) -> TagWords:
    return TagWords(list(words.words[:100_000]), words.vectors[:100_000], stop_words=STOP_WORDS)


def _classes(**probabilities: float) -> ClassScores:
    names = class_names()
    entries = sorted((names.index(n.replace("_", " ")), p) for n, p in probabilities.items())
    return ClassScores(tuple(i for i, _ in entries), tuple(p for _, p in entries))


def test_cat_classes_agree_on_cat_which_leads_its_breeds(tagger):
    """tabby 0.5, Persian cat 0.2, Egyptian Mau 0.1: the probability of 'cat' is their sum (less a
    decay per level), so the basic level leads; no word of WordNet's top levels comes along."""
    tags = tagger.tags(_classes(tabby_cat=0.5, Persian_cat=0.2, Egyptian_Mau=0.1), [], 8)
    words = [w for w, _ in tags]
    assert words[0] == "cat" and "tabby" in words and "animal" in words
    assert not TOO_BROAD & set(words)
    assert all(0.0 <= s <= 1.0 for _, s in tags)
    assert [s for _, s in tags] == sorted((s for _, s in tags), reverse=True)


def test_a_dog_breed_gives_its_breed_and_dog_but_no_rare_taxonomy(tagger):
    words = [w for w, _ in tagger.tags(_classes(Golden_Retriever=0.9), [], 8)]
    assert {"dog", "retriever", "animal"} <= set(words)
    assert not {"canid", "placental", "carnivore", "vertebrate"} & set(words)  # rare words


def test_a_face_and_colours_are_tags(tagger):
    classes = ClassScores((PERSON, colour_id("blue"), colour_id("red")), (1.0, 0.6, 0.1))
    words = dict(tagger.tags(classes, [], 5))
    assert "person" in words and words["blue"] == pytest.approx(0.3)
    assert "red" not in words  # a tenth of the picture is no colour of it


def test_neighbours_are_tags_only_when_common_concrete_nouns(tagger):
    """Stop and function words, abstract nouns, proper names and unknown words never become tags;
    a plural joins its singular."""
    neighbours = [("into", 0.9), ("dogs", 0.85), ("use", 0.8), ("using", 0.8), ("thames", 0.8), ("qzxv", 0.8),
                  ("horse", 0.7), ("dog", 0.6)]  # fmt: skip
    tags = tagger.tags(ClassScores(), neighbours, 5)
    assert [w for w, _ in tags] == ["dog", "horse"]
    assert tags[0][1] == pytest.approx(0.5 * 0.85)


def test_neighbours_follow_every_evidence_word(tagger):
    """The image's own evidence, however weak, ranks before the word space's guesses."""
    weak = ClassScores((colour_id("green"),), (0.3,))  # green covers 30 %: 0.15
    tags = tagger.tags(weak, [("horse", 0.99), ("dog", 0.9)], 3)
    assert [w for w, _ in tags] == ["green", "horse", "dog"] and tags[1][1] < tags[0][1]


def test_words_and_their_singulars(tagger):
    assert tagger.singular("puppies") == "puppy" and tagger.singular("mice") == "mouse"
    assert tagger.singular("glass") == "glass" and tagger.singular("dogs") == "dog"
    assert tagger.is_tag_word("red") and tagger.is_tag_word("dog")
    for word in ("the", "into", "don't", "x", "photo", "ice-cream"):
        assert not tagger.is_tag_word(word), word


def test_a_class_is_named_along_its_primary_hypernyms(tagger):
    """A sports car is a car and a vehicle; WordNet's second parent of 'wheeled vehicle',
    'container', names no photo of a car."""
    words = [w for w, _ in tagger.tags(_classes(sports_car=0.8), [], 6)]
    assert words[:2] == ["car", "vehicle"] and "container" not in words
