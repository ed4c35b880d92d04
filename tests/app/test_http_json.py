"""The HTTP API's JSON: responses exactly as protobuf's JSON mapping writes them, and requests read
from query parameters and form fields as a JSON body would give them."""

from __future__ import annotations

import json

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


def test_the_call_cap_is_the_servers_not_a_ports():
    """A slot a gRPC call holds is one HTTP cannot take: both ports share max_concurrent_calls."""
    from dataclasses import replace

    from aiohttp.test_utils import make_mocked_request

    from imgsearch.app.http import HttpApi
    from imgsearch.config import Settings
    from imgsearch.config.settings import Limits
    from imgsearch.rpc.policy import policy_for

    settings = replace(Settings(), limits=replace(Limits(), max_concurrent_calls=1))
    policy = policy_for(settings)
    api = HttpApi(settings, {}, lambda: True, policy)
    request = make_mocked_request("POST", "/v1/query:searchText", headers={"Host": "127.0.0.1"})
    try:
        release = policy.enter("/imagesearch.v1.Query/SearchText")  # what the gRPC interceptor takes
        with pytest.raises(CallError) as caught:
            api._admit(request, "/imagesearch.v1.Query/SearchText")
        assert caught.value.code.name == "RESOURCE_EXHAUSTED" and caught.value.busy
        assert "max_concurrent_calls" in caught.value.message
        release()
        api._admit(request, "/imagesearch.v1.Query/SearchText")()  # room again
    finally:
        api.close()


def test_records_leave_out_the_fields_not_asked_for():
    """GetImages / ListImages without with_vectors: no `"visual": []`, `"extraJson": ""` (issue 22.24)."""
    plain = query_pb2.GetImagesResponse(images=[common_pb2.StoredImage(id="a", uri="u", width=3)])
    record = to_json(plain)["images"][0]
    assert record["id"] == "a" and record["width"] == 3 and record["metadata"] == {}
    assert not {"visual", "semantic", "extraJson", "classIds", "classScores"} & set(record)
    full = common_pb2.StoredImage(id="a", visual=[0.5], semantic=[0.25], extra_json="{}", class_ids=[3])
    record = to_json(query_pb2.GetImagesResponse(images=[full]))["images"][0]
    assert record["visual"] == [0.5] and record["extraJson"] == "{}" and record["classIds"] == [3]


@pytest.mark.parametrize(
    "document, cls, message",
    [
        (
            {"text": "dog", "k": "many"},
            query_pb2.SearchTextRequest,
            "field `k` wants an integer (int32), got the text 'many'",
        ),
        ({"text": "dog", "k": 1.5}, query_pb2.SearchTextRequest, "field `k` wants an integer"),
        ({"text": "dog", "k": 2**40}, query_pb2.SearchTextRequest, "field `k` wants an integer (int32)"),
        ({"text": 5}, query_pb2.SearchTextRequest, "field `text` wants text, got the number 5"),
        (
            {"text": "dog", "filter": {"label": ["a"]}},
            query_pb2.SearchTextRequest,
            "field `filter.label` wants text, got a list",
        ),
        (
            {"text": "dog", "filter": "pets"},
            query_pb2.SearchTextRequest,
            "field `filter` wants an object (Filter)",
        ),
        (
            {"text": "dog", "filter": {"metadata": {"k": 1}}},
            query_pb2.SearchTextRequest,
            "field `filter.metadata.k` wants text",
        ),
        ({"all": "yes"}, indexer_pb2.DeleteRequest, "field `all` wants true or false"),
        ({"ids": "a"}, indexer_pb2.DeleteRequest, "field `ids` wants a list"),
        ({"image": "not base64!"}, indexer_pb2.IngestRequest, "field `image` wants base64 text"),
        (
            {"txt": "dog"},
            query_pb2.SearchTextRequest,
            "unknown field `txt` for SearchTextRequest (it has: text, k",
        ),
        ({"text": "dog", "mode": "FUZZY"}, query_pb2.SearchTextRequest, "field `mode` wants one of"),
    ],
)
def test_a_type_error_names_the_field_and_what_it_wants(document, cls, message):
    """No Python wording ("invalid literal for int() with base 10"): issue 22.25."""
    with pytest.raises(CallError) as caught:
        from_json(document, cls)
    assert caught.value.code.name == "INVALID_ARGUMENT"
    assert message in caught.value.message and "int()" not in caught.value.message


def test_query_parameters_are_checked_like_json():
    for pairs, message in (
        ([("k", "many")], "field `k` wants an integer"),
        ([("k", "3"), ("all", "maybe")], None),
    ):
        if message:
            with pytest.raises(CallError, match=message):
                from_json(
                    document_from_pairs(pairs, query_pb2.SearchTextRequest), query_pb2.SearchTextRequest
                )
    with pytest.raises(CallError, match="field `all` wants true or false"):
        from_json(
            document_from_pairs([("all", "maybe")], indexer_pb2.DeleteRequest), indexer_pb2.DeleteRequest
        )
    assert (
        from_json(
            document_from_pairs([("all", "off")], indexer_pb2.DeleteRequest), indexer_pb2.DeleteRequest
        ).all
        is False
    )


def test_ndjson_with_one_bad_line_fails_that_item_alone():
    """Issue 22.26: one bad base64 line is one FAILED item, not a failed request."""
    import base64

    from imgsearch.app.http.transcoding import ingest_documents, merge_failed

    good = base64.b64encode(b"\x89PNG...").decode()
    body = "\n".join(
        json.dumps(d)
        for d in (
            {"image": good, "uri": "a"},
            {"image": "%%%not base64", "uri": "b"},
            {"image": good, "uri": "c"},
        )
    )
    items = ingest_documents(body.encode())
    assert [r.uri for r in items.requests] == ["a", "c"] and items.positions == [0, 2]
    assert items.failed[0][0] == 1 and "base64" in items.failed[0][1]
    answer = indexer_pb2.IngestResponse(
        results=[
            indexer_pb2.IngestResult(index=0, id="x", status=indexer_pb2.IngestResult.NEW),
            indexer_pb2.IngestResult(index=1, id="y", status=indexer_pb2.IngestResult.NEW),
        ],
        ingested=2,
    )
    merged = merge_failed(answer, items)
    assert [(r.index, indexer_pb2.IngestResult.Status.Name(r.status)) for r in merged.results] == [
        (0, "NEW"),
        (1, "FAILED"),
        (2, "NEW"),
    ]
    assert merged.failed == 1 and merged.ingested == 2 and merged.results[1].error.code == 3
    with pytest.raises(CallError, match="not JSON"):
        ingest_documents(b"garbage")
    with pytest.raises(CallError, match="nests too deep"):
        ingest_documents(b"[" * 100_000 + b"]" * 100_000)
