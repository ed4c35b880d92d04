"""Hostile input over every RPC of the four services, on one real server (real models, real
Qdrant Edge): each case asserts the status code a client gets, that the server still answers
(health SERVING, a search OK) and that the stored data is unchanged.

Then what no client may do to the others: hold the workers with idle streams, cancel a stream
and have it logged as a server error, or squat on another image's content id.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from imgsearch.app.serve import stop
from imgsearch.config.settings import Limits
from imgsearch.indexer.ingest import content_id
from imgsearch.protogen.imagesearch.v1 import (
    common_pb2,
    embedder_pb2,
    indexer_pb2,
    query_pb2,
)
from imgsearch.telemetry.metrics import RPC_REQUESTS
from tests.e2e.conftest import Stubs, start_server, stubs_for

pytestmark = pytest.mark.slow

IDLE_SECONDS = 3.0
STREAMS = 3
LIMITS = replace(Limits(), stream_idle_seconds=IDLE_SECONDS, max_concurrent_streams=STREAMS)
BASE = ("black_cat", "puppy", "jellyfish", "guitar", "coffee", "chelsea")
FAILED = indexer_pb2.IngestResult.FAILED


@dataclass
class Hostile:
    stubs: Stubs
    port: int
    base: dict[str, str]  # photo name -> stored id
    photos: dict
    info: embedder_pb2.ModelInfo


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, photos) -> Iterator[Hostile]:
    running = start_server(tmp_path_factory.mktemp("hostile"), vocab_size=5000, limits=LIMITS)
    stubs = stubs_for(running.addr)
    reqs = [
        indexer_pb2.IngestRequest(image=photos[n].read_bytes(), uri=str(photos[n]), label=n) for n in BASE
    ]
    response = stubs.indexer.Ingest(iter(reqs), timeout=120)
    assert response.ingested == len(BASE)
    info = stubs.embedder.GetModelInfo(embedder_pb2.GetModelInfoRequest(), timeout=10)
    yield Hostile(
        stubs,
        running.served.port,
        {n: r.id for n, r in zip(BASE, response.results, strict=True)},
        photos,
        info,
    )
    stubs.channel.close()
    stop(running.served, running.parts, 1.0)


def _snapshot(s: Stubs) -> tuple:
    """What a user would look at: how many images, and what a search finds (ids, uris, labels)."""
    images = s.indexer.GetStats(indexer_pb2.GetStatsRequest(), timeout=10).images
    hits = s.query.SearchText(query_pb2.SearchTextRequest(text="animal", k=50), timeout=10).results
    return images, sorted((h.id, h.uri, h.label, len(h.metadata)) for h in hits)


def _healthy(s: Stubs) -> bool:
    health = health_pb2_grpc.HealthStub(s.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health.status == health_pb2.HealthCheckResponse.SERVING


def _code(fn: Callable[[], object]) -> str:
    try:
        fn()
    except grpc.RpcError as e:
        return e.code().name
    return "OK"


def _ingest(h: Hostile, *items: indexer_pb2.IngestRequest) -> str:
    """The call's code, or "item:CODE" of the (single) item when the call succeeds."""
    try:
        r = h.stubs.indexer.Ingest(iter(items), timeout=60)
    except grpc.RpcError as e:
        return e.code().name
    failed = [_code_name(x.error.code) for x in r.results if x.status == FAILED]
    return "item:" + ",".join(sorted(set(failed))) if failed else f"OK:{r.ingested}new"


def _code_name(number: int) -> str:
    return next(c.name for c in grpc.StatusCode if c.value[0] == number)


def _embed_item(h: Hostile, image: bytes) -> str:
    r = h.stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[image]), timeout=60)
    e = r.embeddings[0]
    return "item:" + _code_name(e.error.code) if e.HasField("error") else "OK"


def _raw(h: Hostile, method: str, body: bytes) -> str:
    fn = h.stubs.channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    return _code(lambda: fn(body, timeout=10))


def _png(w: int, h: int, color=(200, 30, 30), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (w, h), color).save(out, "PNG")
    return out.getvalue()


def _png_header_only(side: int, depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose header claims side x side pixels, followed by a tiny (truncated) IDAT."""

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _item(image: bytes = b"", **fields) -> indexer_pb2.IngestRequest:
    return indexer_pb2.IngestRequest(image=image or _png(32, 32, (1, 2, 3)), **fields)


def _point(h: Hostile, visual=None, semantic=None, **fields) -> indexer_pb2.PointVectors:
    fields.setdefault("id", str(uuid.uuid4()))
    return indexer_pb2.PointVectors(
        visual=visual if visual is not None else [0.5] * h.info.visual_dim,
        semantic=semantic if semantic is not None else [0.5] * h.info.semantic_dim,
        **fields,
    )


def _upsert(h: Hostile, *points) -> str:
    return _code(
        lambda: h.stubs.indexer.UpsertVectors(indexer_pb2.UpsertVectorsRequest(points=points), timeout=30)
    )


def _reindex(h: Hostile, batch: int) -> str:
    return _code(lambda: list(h.stubs.indexer.Reindex(indexer_pb2.ReindexRequest(batch=batch), timeout=60)))


def _malformed_stream(h: Hostile) -> str:
    fn = h.stubs.channel.stream_unary(
        "/imagesearch.v1.Indexer/Ingest", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    return _code(lambda: fn(iter([b"\xff\xff\xff\xff"]), timeout=10))


BIG = "x" * (9 << 10)

# (case id, call, expected code): "item:CODE" is a per-item error inside an OK answer.
CASES: list[tuple[str, Callable[[Hostile], str], str]] = [
    # Embedder
    (
        "embed-no-images",
        lambda h: _code(lambda: h.stubs.embedder.EmbedImages(embedder_pb2.EmbedImagesRequest(), timeout=10)),
        "INVALID_ARGUMENT",
    ),
    ("embed-garbage-bytes", lambda h: _embed_item(h, b"not an image at all"), "item:INVALID_ARGUMENT"),
    (
        "embed-truncated-jpeg",
        lambda h: _embed_item(h, h.photos["puppy"].read_bytes()[:600]),
        "item:INVALID_ARGUMENT",
    ),
    (
        "embed-pixel-bomb-header",
        lambda h: _embed_item(h, _png_header_only(100_000)),
        "item:RESOURCE_EXHAUSTED",
    ),
    (
        "embed-16bit-6300px-png",
        lambda h: _embed_item(h, _png_header_only(6300, 16, 6)),
        "item:RESOURCE_EXHAUSTED",
    ),
    (
        "embed-over-max-bytes",
        lambda h: _embed_item(h, b"\x89PNG" + b"\0" * (21 << 20)),
        "item:RESOURCE_EXHAUSTED",
    ),
    (
        "embed-257-images",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedImages(
                embedder_pb2.EmbedImagesRequest(images=[b"x"] * 257), timeout=10
            )
        ),
        "RESOURCE_EXHAUSTED",
    ),
    (
        "embed-text-empty",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text=""), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "embed-text-too-long",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedText(embedder_pb2.EmbedTextRequest(text="cat " * 600), timeout=10)
        ),
        "RESOURCE_EXHAUSTED",
    ),
    (
        "embed-text-control-chars",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedText(
                embedder_pb2.EmbedTextRequest(text="\x00\x01\u202e"), timeout=10
            )
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "embed-features-wrong-dim",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedFeatures(
                embedder_pb2.EmbedFeaturesRequest(features=[common_pb2.Vector(values=[1.0] * 7)]), timeout=10
            )
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "embed-features-nan",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedFeatures(
                embedder_pb2.EmbedFeaturesRequest(
                    features=[common_pb2.Vector(values=[float("nan")] * h.info.visual_dim)]
                ),
                timeout=10,
            )
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "embed-features-none",
        lambda h: _code(
            lambda: h.stubs.embedder.EmbedFeatures(embedder_pb2.EmbedFeaturesRequest(), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "vocabulary-negative-limit",
        lambda h: _code(
            lambda: list(
                h.stubs.embedder.StreamVocabulary(embedder_pb2.StreamVocabularyRequest(limit=-1), timeout=10)
            )
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "embedder-malformed-body",
        lambda h: _raw(h, "/imagesearch.v1.Embedder/EmbedImages", b"\x0a\xff\xff\xff\xff\x0f"),
        "INVALID_ARGUMENT",
    ),
    # Indexer: Ingest, per item
    (
        "ingest-empty-image",
        lambda h: _ingest(h, indexer_pb2.IngestRequest(uri="empty")),
        "item:INVALID_ARGUMENT",
    ),
    (
        "ingest-garbage-image",
        lambda h: _ingest(h, _item(b"garbage bytes", uri="garbage")),
        "item:INVALID_ARGUMENT",
    ),
    ("ingest-id-not-uuid", lambda h: _ingest(h, _item(id="not-a-uuid")), "item:INVALID_ARGUMENT"),
    ("ingest-id-10kb", lambda h: _ingest(h, _item(id="9" * 10_000)), "item:INVALID_ARGUMENT"),
    ("ingest-uri-over-limit", lambda h: _ingest(h, _item(uri="u" * 3000)), "item:INVALID_ARGUMENT"),
    ("ingest-label-over-limit", lambda h: _ingest(h, _item(label="l" * 300)), "item:INVALID_ARGUMENT"),
    (
        "ingest-65-metadata-keys",
        lambda h: _ingest(h, _item(metadata={f"k{i}": "v" for i in range(65)})),
        "item:INVALID_ARGUMENT",
    ),
    (
        "ingest-metadata-key-over-limit",
        lambda h: _ingest(h, _item(metadata={"k" * 300: "v"})),
        "item:INVALID_ARGUMENT",
    ),
    (
        "ingest-metadata-value-8mib",
        lambda h: _ingest(h, _item(metadata={"blob": "x" * (8 << 20)})),
        "item:INVALID_ARGUMENT",
    ),
    (
        "ingest-payload-total-over-limit",
        lambda h: _ingest(h, _item(metadata={f"k{i}": "x" * 8000 for i in range(5)})),
        "item:INVALID_ARGUMENT",
    ),
    (
        "ingest-squat-stored-content-id",
        lambda h: _ingest(h, _item(id=h.base["puppy"], uri="squatter")),
        "item:ALREADY_EXISTS",
    ),
    ("ingest-pixel-bomb", lambda h: _ingest(h, _item(_png_header_only(100_000))), "item:RESOURCE_EXHAUSTED"),
    ("ingest-malformed-message", _malformed_stream, "INVALID_ARGUMENT"),
    ("ingest-empty-stream", lambda h: _ingest(h), "OK:0new"),
    # Indexer: the other RPCs
    ("upsert-no-points", lambda h: _upsert(h), "INVALID_ARGUMENT"),
    (
        "upsert-3e38-overflows",
        lambda h: _upsert(h, _point(h, [3e38] * h.info.visual_dim, [3e38] * h.info.semantic_dim)),
        "INVALID_ARGUMENT",
    ),
    ("upsert-zero-vector", lambda h: _upsert(h, _point(h, [0.0] * h.info.visual_dim)), "INVALID_ARGUMENT"),
    ("upsert-nan", lambda h: _upsert(h, _point(h, [float("nan")] * h.info.visual_dim)), "INVALID_ARGUMENT"),
    (
        "upsert-infinity",
        lambda h: _upsert(h, _point(h, semantic=[float("inf")] * h.info.semantic_dim)),
        "INVALID_ARGUMENT",
    ),
    ("upsert-wrong-dim", lambda h: _upsert(h, _point(h, [1.0] * 3)), "INVALID_ARGUMENT"),
    ("upsert-no-id", lambda h: _upsert(h, _point(h, id="")), "INVALID_ARGUMENT"),
    ("upsert-bad-id", lambda h: _upsert(h, _point(h, id="'; drop table")), "INVALID_ARGUMENT"),
    ("upsert-metadata-over-limit", lambda h: _upsert(h, _point(h, metadata={"v": BIG})), "INVALID_ARGUMENT"),
    (
        "upsert-good-then-bad-stores-neither",
        lambda h: _upsert(h, _point(h, label="cat"), _point(h, uri="u" * 5000)),
        "INVALID_ARGUMENT",
    ),
    (
        "delete-nothing-named",
        lambda h: _code(lambda: h.stubs.indexer.Delete(indexer_pb2.DeleteRequest(), timeout=10)),
        "INVALID_ARGUMENT",
    ),
    (
        "delete-bad-id",
        lambda h: _code(
            lambda: h.stubs.indexer.Delete(indexer_pb2.DeleteRequest(ids=["x" * 5000]), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "delete-empty-filter",
        lambda h: _code(
            lambda: h.stubs.indexer.Delete(indexer_pb2.DeleteRequest(filter=common_pb2.Filter()), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "load-vocabulary-negative",
        lambda h: _code(
            lambda: h.stubs.indexer.LoadVocabulary(indexer_pb2.LoadVocabularyRequest(limit=-5), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    ("reindex-negative-batch", lambda h: _reindex(h, -1), "INVALID_ARGUMENT"),
    ("reindex-huge-batch", lambda h: _reindex(h, 2**31 - 1), "INVALID_ARGUMENT"),
    (
        "indexer-malformed-body",
        lambda h: _raw(h, "/imagesearch.v1.Indexer/GetStats", b"\xff\xff\xff\xff\xff"),
        "INVALID_ARGUMENT",
    ),
    # Query
    (
        "search-empty-text",
        lambda h: _code(lambda: h.stubs.query.SearchText(query_pb2.SearchTextRequest(text=""), timeout=10)),
        "INVALID_ARGUMENT",
    ),
    (
        "search-negative-k",
        lambda h: _code(
            lambda: h.stubs.query.SearchText(query_pb2.SearchTextRequest(text="cat", k=-1), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "search-k-over-limit",
        lambda h: _code(
            lambda: h.stubs.query.SearchText(query_pb2.SearchTextRequest(text="cat", k=1001), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "search-unknown-words",
        lambda h: _code(
            lambda: h.stubs.query.SearchText(
                query_pb2.SearchTextRequest(text="qqxqzz zzqxq", k=3), timeout=10
            )
        ),
        "NOT_FOUND",
    ),
    (
        "search-text-too-long",
        lambda h: _code(
            lambda: h.stubs.query.SearchText(query_pb2.SearchTextRequest(text="dog " * 5000, k=3), timeout=10)
        ),
        "RESOURCE_EXHAUSTED",
    ),
    (
        "similar-no-source",
        lambda h: _code(lambda: h.stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(k=3), timeout=10)),
        "INVALID_ARGUMENT",
    ),
    (
        "similar-bad-id",
        lambda h: _code(
            lambda: h.stubs.query.SimilarImages(
                query_pb2.SimilarImagesRequest(id="x" * 100_000, k=3), timeout=10
            )
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "similar-unknown-id",
        lambda h: _code(
            lambda: h.stubs.query.SimilarImages(
                query_pb2.SimilarImagesRequest(id=str(uuid.uuid4()), k=3), timeout=10
            )
        ),
        "NOT_FOUND",
    ),
    (
        "similar-garbage-image",
        lambda h: _code(
            lambda: h.stubs.query.SimilarImages(
                query_pb2.SimilarImagesRequest(image=b"GIF89a\x00", k=3), timeout=10
            )
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "similar-pixel-bomb",
        lambda h: _code(
            lambda: h.stubs.query.SimilarImages(
                query_pb2.SimilarImagesRequest(image=_png_header_only(60_000), k=3), timeout=10
            )
        ),
        "RESOURCE_EXHAUSTED",
    ),
    (
        "tag-garbage-image",
        lambda h: _code(
            lambda: h.stubs.query.TagImage(query_pb2.TagImageRequest(image=b"\xff\xd8\xff", k=3), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "tag-k-over-limit",
        lambda h: _code(
            lambda: h.stubs.query.TagImage(query_pb2.TagImageRequest(id=h.base["puppy"], k=10**6), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "words-empty",
        lambda h: _code(
            lambda: h.stubs.query.SimilarWords(query_pb2.SimilarWordsRequest(word="", k=3), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "words-negative-k",
        lambda h: _code(
            lambda: h.stubs.query.SimilarWords(query_pb2.SimilarWordsRequest(word="cat", k=-3), timeout=10)
        ),
        "INVALID_ARGUMENT",
    ),
    (
        "query-malformed-body",
        lambda h: _raw(h, "/imagesearch.v1.Query/SearchText", b"\x12\x05ab"),
        "INVALID_ARGUMENT",
    ),
    ("unknown-method", lambda h: _raw(h, "/imagesearch.v1.Query/DropEverything", b""), "UNIMPLEMENTED"),
    (
        "health-unknown-service",
        lambda h: _code(
            lambda: health_pb2_grpc.HealthStub(h.stubs.channel).Check(
                health_pb2.HealthCheckRequest(service="nope"), timeout=5
            )
        ),
        "NOT_FOUND",
    ),
]


@pytest.mark.parametrize(("case", "call", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_gets_its_code_and_harms_nothing(hostile, case, call, expected):
    before = _snapshot(hostile.stubs)
    assert call(hostile) == expected
    assert _healthy(hostile.stubs)
    assert _snapshot(hostile.stubs) == before


def test_the_matrix_covers_every_service():
    prefixes = {c[0].split("-")[0] for c in CASES}
    assert len(CASES) >= 40
    assert {
        "embed",
        "ingest",
        "upsert",
        "delete",
        "reindex",
        "search",
        "similar",
        "tag",
        "words",
        "health",
    } <= prefixes


def test_refused_items_are_answered_without_echoing_what_was_sent(hostile):
    """18 images with 4 MiB uris: each refused, and the answer stays small (it never repeats the
    uris), so it cannot pass the message limit however much the client sends."""
    items = [_item(_png(16, 16, (i, 9, 9)), uri="u" * (4 << 20) + str(i)) for i in range(18)]
    before = _snapshot(hostile.stubs)
    r = hostile.stubs.indexer.Ingest(iter(items), timeout=120)
    assert r.failed == 18 and r.ingested == 0
    assert all(x.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] for x in r.results)
    assert "max_uri_bytes" in r.results[0].error.message
    assert r.ByteSize() < 18 * 1024
    assert _snapshot(hostile.stubs) == before


def test_a_content_id_squatted_by_other_content_goes_back_to_its_image(hostile):
    """An image stored under another image's content id cannot keep that image out: the real
    image is stored (NEW) under its id and is found by its own bytes with score ~1."""
    victim = (
        hostile.photos["camera_skimage"] if "camera_skimage" in hostile.photos else hostile.photos["bear"]
    )
    victim_bytes = victim.read_bytes()
    vid, _ = content_id(victim_bytes)
    squat = hostile.stubs.indexer.Ingest(
        iter([_item(_png(40, 40, (255, 0, 255)), id=vid, uri="squatter", label="squat")])
    )
    assert squat.ingested == 1
    real = hostile.stubs.indexer.Ingest(iter([_item(victim_bytes, uri=str(victim), label="victim")]))
    assert real.ingested == 1 and real.results[0].id == vid
    again = hostile.stubs.indexer.Ingest(iter([_item(victim_bytes, uri=str(victim), label="victim")]))
    assert again.duplicates == 1  # now a true duplicate: same id, same SHA-256
    hits = hostile.stubs.query.SimilarImages(query_pb2.SimilarImagesRequest(image=victim_bytes, k=1)).results
    assert hits[0].uri == str(victim) and hits[0].score > 0.99
    hostile.stubs.indexer.Delete(indexer_pb2.DeleteRequest(ids=[vid]))


def test_idle_streams_cannot_hold_the_server(hostile):
    """More idle Ingest streams than the cap: the extra ones are refused at once, health and a
    search answer at their usual speed meanwhile, and the held ones end after the idle timeout."""
    stop_sending = threading.Event()

    def idle():
        stop_sending.wait(60)
        return
        yield

    clients = [stubs_for(f"127.0.0.1:{hostile.port}") for _ in range(2)]
    started = time.monotonic()
    futures = [clients[i % 2].indexer.Ingest.future(idle(), timeout=60) for i in range(STREAMS + 20)]
    try:
        time.sleep(1.0)
        refused = [f for f in futures if f.done()]
        assert len(refused) >= 20
        assert all(f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for f in refused)
        assert "max_concurrent_streams" in refused[0].details()
        t = time.monotonic()
        assert _healthy(hostile.stubs)
        hostile.stubs.query.SearchText(query_pb2.SearchTextRequest(text="dog", k=3), timeout=2)
        assert time.monotonic() - t < 1.0
        held = [f for f in futures if f not in refused]
        for f in held:
            assert f.exception(timeout=IDLE_SECONDS + 10) is not None
            assert f.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "stream_idle_seconds" in f.details()
        assert time.monotonic() - started < IDLE_SECONDS + 5
        # once they ended, a new stream is welcome again
        ok = hostile.stubs.indexer.Ingest(iter([_item(hostile.photos["puppy"].read_bytes())]), timeout=30)
        assert ok.duplicates == 1
    finally:
        stop_sending.set()
        for f in futures:
            f.cancel()
        for c in clients:
            c.channel.close()


def test_a_cancelled_stream_is_cancelled_and_logged_at_info(hostile, caplog):
    def slow():
        yield _item(_png(20, 20, (3, 4, 5)), uri="cancelled", label="cancelled")
        time.sleep(30)

    before = RPC_REQUESTS.labels("imagesearch.v1.Indexer", "Ingest", "CANCELLED")._value.get()
    internal = RPC_REQUESTS.labels("imagesearch.v1.Indexer", "Ingest", "INTERNAL")._value.get()
    with caplog.at_level(logging.INFO, logger="imgsearch"):
        future = hostile.stubs.indexer.Ingest.future(slow(), timeout=60)
        time.sleep(1.0)
        future.cancel()
        deadline = time.monotonic() + 60  # the server may embed the one image first
        while time.monotonic() < deadline:
            if RPC_REQUESTS.labels("imagesearch.v1.Indexer", "Ingest", "CANCELLED")._value.get() > before:
                break
            time.sleep(0.1)
    assert RPC_REQUESTS.labels("imagesearch.v1.Indexer", "Ingest", "CANCELLED")._value.get() == before + 1
    assert RPC_REQUESTS.labels("imagesearch.v1.Indexer", "Ingest", "INTERNAL")._value.get() == internal
    records = [r for r in caplog.records if "Ingest" in r.getMessage()]
    assert records and all(r.levelno == logging.INFO for r in records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    hostile.stubs.indexer.Delete(indexer_pb2.DeleteRequest(filter=common_pb2.Filter(label="cancelled")))
