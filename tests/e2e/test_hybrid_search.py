"""Hybrid (lexical + semantic) search over real gRPC: a server of its own, real models, Qdrant Edge,
the real photos labelled by kind, one of them captioned; the mode switch over gRPC, the Python
client and the CLI."""

from __future__ import annotations

import io
import json

import grpc
import pytest

from imgsearch.cli.main import Environment, main
from imgsearch.client import ImageSearchClient
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, query_pb2
from tests.e2e.conftest import names_of, rpc_error, search_text, serve_photos

pytestmark = pytest.mark.slow

# The coffee cup gets a caption no CNN would give it; "zorblax" is no word the embedder knows.
CAPTIONED = "coffee"
CAPTION = "my lawyer's golden retriever zorblax mug"
Mode = query_pb2.SearchTextRequest


@pytest.fixture(scope="module")
def served(tmp_path_factory, photos):
    requests = [
        indexer_pb2.IngestRequest(
            image=path.read_bytes(),
            uri=str(path),
            label="animal" if name in ("puppy", "puppies", "black_cat", "chelsea", "bear") else "thing",
            caption=CAPTION if name == CAPTIONED else "",
        )
        for name, path in sorted(photos.items())
    ]
    yield from serve_photos(tmp_path_factory.mktemp("hybrid"), sorted(photos), requests)


def test_a_caption_word_is_found_first_in_hybrid_mode_and_not_in_semantic_mode(served, photos):
    _, stubs, _ = served
    semantic = names_of(search_text(stubs, text="lawyer", k=5, mode=Mode.SEMANTIC), photos)
    assert semantic[0] != CAPTIONED
    hybrid = names_of(search_text(stubs, text="lawyer", k=5), photos)  # unset: hybrid
    assert hybrid[0] == CAPTIONED and hybrid[1:] == [n for n in semantic if n != CAPTIONED][:4]
    assert names_of(search_text(stubs, text="lawyer", k=5, mode=Mode.HYBRID), photos) == hybrid
    # the dog photos and the captioned mug: the CNN's golden retrievers and the caption's
    semantic = names_of(search_text(stubs, text="golden retriever", k=3, mode=Mode.SEMANTIC), photos)
    assert semantic[0] in ("puppy", "puppies") and CAPTIONED not in semantic
    hybrid = names_of(search_text(stubs, text="golden retriever", k=3), photos)
    assert CAPTIONED in hybrid and semantic[0] in hybrid
    lexical = search_text(stubs, text="a golden retriever", k=5, mode=Mode.LEXICAL)
    assert names_of(lexical, photos) == [CAPTIONED] and list(lexical.ignored_terms) == ["a"]


def test_labels_count_as_text(served, photos):
    _, stubs, _ = served
    animals = names_of(search_text(stubs, text="animal", k=30, mode=Mode.LEXICAL), photos)
    assert set(animals) == {"puppy", "puppies", "black_cat", "chelsea", "bear"}
    only = search_text(stubs, text="animal", k=30, mode=Mode.LEXICAL, filter={"exclude_labels": ["thing"]})
    assert len(only.results) == 5


def test_a_word_the_embedder_does_not_know_is_still_found_by_its_text(served, photos):
    _, stubs, _ = served
    r = search_text(stubs, text="zorblax", k=3)
    assert names_of(r, photos) == [CAPTIONED] and list(r.unknown_terms) == ["zorblax"]
    assert (
        rpc_error(lambda: search_text(stubs, text="zorblax", mode=Mode.SEMANTIC))[0]
        == grpc.StatusCode.NOT_FOUND
    )


def test_lexical_mode_takes_words_only(served, photos):
    _, stubs, ids = served
    by_id = query_pb2.QueryPart(id=ids["puppy"])
    assert rpc_error(lambda: search_text(stubs, text="dog", parts=[by_id], mode=Mode.LEXICAL))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert rpc_error(lambda: search_text(stubs, text="dog", mmr_lambda=0.5, mode=Mode.LEXICAL))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert rpc_error(lambda: search_text(stubs, text="dog", mode=9))[0] == grpc.StatusCode.INVALID_ARGUMENT
    # a word in no image's text: nothing
    assert list(search_text(stubs, text="dog", mode=Mode.LEXICAL).results) == []


def test_re_ingesting_with_a_new_caption_updates_the_text(served, photos):
    _, stubs, ids = served
    request = indexer_pb2.IngestRequest(
        image=photos["guitar"].read_bytes(),
        uri=str(photos["guitar"]),
        label="thing",
        caption="grandpa's banjo",
    )
    assert stubs.indexer.Ingest(iter([request])).updated == 1
    r = search_text(stubs, text="banjo", k=3, mode=Mode.LEXICAL)
    assert [h.id for h in r.results] == [ids["guitar"]]


def test_the_client_and_the_cli_switch_modes(served, photos):
    running, _, _ = served
    with ImageSearchClient(running.addr) as client:
        assert [h.uri for h in client.search("golden retriever", k=1, mode="lexical").results] == [
            str(photos[CAPTIONED])
        ]
        assert client.search("golden retriever", k=1, mode="semantic").results[0].uri != str(
            photos[CAPTIONED]
        )
        with pytest.raises(ValueError, match="mode"):
            client.search("dog", mode="fuzzy")
    for mode, first_is_captioned in (("hybrid", True), ("semantic", False), ("lexical", True)):
        out, err = io.StringIO(), io.StringIO()
        env = Environment(stdout=out, stderr=err, environ={"IMGSEARCH_ADDR": running.addr})
        code = main(["search", "lawyer", "--mode", mode, "-k", "3", "--json"], env=env)
        first = json.loads(out.getvalue())["results"][0]["uri"]
        assert code == 0 and (first == str(photos[CAPTIONED])) == first_is_captioned, mode


def test_every_mode_scores_a_relevance_and_says_how_many_results_match(served, photos):
    """Issue 21.3/21.4: scores in [0, 1] whatever the mode, `match_count` the results at or above
    0.5 (they come first), and a weak lexical-only match no longer passes --min-score 0.9."""
    running, stubs, ids = served
    puppy = query_pb2.QueryPart(id=ids["puppy"])
    asked = [
        {"text": "golden retriever"},
        {"text": "golden retriever", "mode": Mode.SEMANTIC},
        {"text": "golden retriever", "mode": Mode.LEXICAL},
        {"text": "dog", "parts": [puppy]},
        {"text": "dog", "mmr_lambda": 0.5},
        {"text": "zorblax"},
        {"text": "dog -cat"},
    ]
    replies = [search_text(stubs, k=44, **fields) for fields in asked]
    replies.append(stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=ids["puppy"], k=44)))
    for fields, r in zip([*asked, "similar"], replies, strict=True):
        scores = [h.score for h in r.results]
        assert scores and all(0.0 <= s <= 1.0 for s in scores), fields
        if "mmr_lambda" not in fields:  # diverse results come in the engine's pick order
            assert scores == sorted(scores, reverse=True), fields
            assert r.match_count == sum(s >= 0.5 for s in scores), fields
    dog = search_text(stubs, text="dog", k=44)
    assert 1 <= dog.match_count < len(dog.results) == len(photos)  # matches, not the whole library
    assert {"puppy", "puppies"} <= set(names_of(dog, photos)[: dog.match_count])
    weak = search_text(stubs, text="zorblax", k=3)  # one word of an eight-token caption: weaker
    assert names_of(weak, photos) == [CAPTIONED] and 0 < weak.results[0].score < 0.5 and weak.match_count == 0
    none = search_text(stubs, text="zorblax", k=3, min_score=0.9)
    assert list(none.results) == [] and list(none.unknown_terms) == ["zorblax"]
    with ImageSearchClient(running.addr) as client:
        assert client.search("dog", k=44).match_count == dog.match_count
    out = io.StringIO()
    env = Environment(stdout=out, stderr=io.StringIO(), environ={"IMGSEARCH_ADDR": running.addr})
    assert main(["search", "dog", "-k", "44", "--json"], env=env) == 0
    assert json.loads(out.getvalue())["match_count"] == dog.match_count
