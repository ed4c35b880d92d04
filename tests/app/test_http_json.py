"""The HTTP API's JSON: responses exactly as protobuf's JSON mapping writes them, and requests read
from query parameters and form fields as a JSON body would give them."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from imgsearch.app.http import CallError, document_from_pairs, from_json, to_json, unary_rpcs
from imgsearch.protogen.imagesearch.v1 import common_pb2, embedder_pb2, indexer_pb2, query_pb2


def _mapping(message) -> dict:
    document = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    for hit in document.get("results", ()):
        if isinstance(hit, dict) and hit.get("thumbnail") == "":
            del hit["thumbnail"]  # asked for only with with_thumbnails
    return document


@pytest.mark.parametrize(
    "message",
    [
        query_pb2.SearchImagesResponse(
            results=[
                common_pb2.ImageHit(
                    id="a", score=0.9172610640525818, uri="u", label="l", metadata={"k": "v"}
                ),
                common_pb2.ImageHit(id="b", score=-0.25, thumbnail=b"\x00\xffwebp"),
            ],
            unknown_terms=["qwzx"],
        ),
        query_pb2.SearchImagesResponse(),
        query_pb2.WordsResponse(results=[common_pb2.WordHit(word="cat", score=0.5)]),
        indexer_pb2.IngestResponse(
            results=[
                indexer_pb2.IngestResult(index=0, id="x", status=indexer_pb2.IngestResult.NEW),
                indexer_pb2.IngestResult(
                    index=1,
                    status=indexer_pb2.IngestResult.FAILED,
                    error=common_pb2.ItemError(code=3, message="m"),
                ),
            ],
            ingested=1,
            failed=1,
        ),
        indexer_pb2.Stats(
            images=12, words=50_000, store="edge", model=embedder_pb2.ModelInfo(cnn="c", visual_dim=1280)
        ),
        indexer_pb2.Stats(),
        indexer_pb2.DeleteResponse(deleted=2),
    ],
)
def test_responses_are_the_protobuf_json_mapping(message):
    assert to_json(message) == _mapping(message)


def test_query_parameters_and_form_fields_become_the_request():
    pairs = [("text", "dog"), ("k", "5"), ("filter.label", "pets"), ("filter.metadata.camera", "x100")]
    request = from_json(document_from_pairs(pairs, query_pb2.SearchTextRequest), query_pb2.SearchTextRequest)
    assert request == query_pb2.SearchTextRequest(
        text="dog", k=5, filter=common_pb2.Filter(label="pets", metadata={"camera": "x100"})
    )
    upload = document_from_pairs([("image", b"\x89PNG bytes"), ("k", "3")], query_pb2.SimilarImagesRequest)
    assert from_json(upload, query_pb2.SimilarImagesRequest).image == b"\x89PNG bytes"
    flags = document_from_pairs([("all", "true")], indexer_pb2.DeleteRequest)
    assert from_json(flags, indexer_pb2.DeleteRequest).all is True


@pytest.mark.parametrize(
    "pairs", [[("nope", "1")], [("filter.nope", "1")], [("filter.metadata", "x")], [("k", "many")]]
)
def test_a_request_that_does_not_fit_is_invalid_argument(pairs):
    with pytest.raises(CallError) as caught:
        from_json(document_from_pairs(pairs, query_pb2.SearchTextRequest), query_pb2.SearchTextRequest)
    assert caught.value.code.name == "INVALID_ARGUMENT"


def test_every_unary_query_and_indexer_rpc_has_a_route():
    routes = unary_rpcs()
    for name in ("SearchText", "SimilarImages", "TagImage", "SimilarWords"):
        assert f"query:{name[0].lower()}{name[1:]}" in routes
    assert {"indexer:delete", "indexer:getStats"} <= set(routes)


def test_calls_past_the_concurrency_cap_are_refused_at_once():
    import asyncio
    import time
    from dataclasses import replace

    from imgsearch.app.http import HttpApi
    from imgsearch.config import Settings
    from imgsearch.config.settings import Limits

    settings = replace(Settings(), limits=replace(Limits(), max_concurrent_calls=1))
    api = HttpApi(settings, {}, lambda: True)

    async def two_at_once():
        slow = asyncio.ensure_future(api._run(lambda: time.sleep(0.3) or "done"))
        await asyncio.sleep(0.05)
        with pytest.raises(CallError) as caught:
            await api._run(lambda: "second")
        assert (
            caught.value.code.name == "RESOURCE_EXHAUSTED"
            and "max_concurrent_calls=1" in caught.value.message
        )
        assert await slow == "done"
        assert await api._run(lambda: "third") == "third"  # room again

    try:
        asyncio.run(two_at_once())
    finally:
        api.close()
