"""Hostile imports and what stored data may do to replies, on one real server (real models, real
Qdrant Edge) with a small message limit: every stored field is checked on import as on ingest
(INVALID_ARGUMENT, never INTERNAL), and no stored data can make a search with thumbnails, a
listing or an export pass the message limit. Ids are per namespace on import as well."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import grpc
import pytest
from PIL import Image

from imgsearch.app.serve import stop
from imgsearch.client import ImageSearchClient, transfer
from imgsearch.config.settings import Limits
from imgsearch.protogen.imagesearch.v1 import common_pb2, embedder_pb2, indexer_pb2, query_pb2
from tests.e2e.conftest import Stubs, start_server, stubs_for

pytestmark = pytest.mark.slow

MESSAGE_BYTES = 4 * 1024 * 1024  # the reply budget is half of it
LIMITS = replace(Limits(), max_message_bytes=MESSAGE_BYTES)


@dataclass
class Server:
    stubs: Stubs
    addr: str
    info: embedder_pb2.ModelInfo


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("imports"), vocab_size=5000, limits=LIMITS)
    stubs = stubs_for(running.addr)
    info = stubs.embedder.GetModelInfo(embedder_pb2.GetModelInfoRequest(), timeout=10)
    yield Server(stubs, running.addr, info)
    stubs.channel.close()
    stop(running.served, running.parts, 1.0)


def _thumbnail(side: int = 64, fmt: str = "WEBP", noise: bool = False) -> str:
    img = (
        Image.effect_noise((side, side), 80).convert("RGB")
        if noise
        else Image.new("RGB", (side, side), "red")
    )
    out = io.BytesIO()
    img.save(out, fmt, quality=100)
    return base64.b64encode(out.getvalue()).decode()


def _record(srv: Server, namespace: str, **fields) -> common_pb2.StoredImage:
    extra = fields.pop("extra", None)
    record = common_pb2.StoredImage(
        id=fields.pop("id", str(uuid.uuid4())),
        namespace=namespace,
        visual=[1.0] * srv.info.visual_dim,
        semantic=[1.0] * srv.info.semantic_dim,
        **fields,
    )
    if extra is not None:
        record.extra_json = extra if isinstance(extra, str) else json.dumps(extra)
    return record


def _import(srv: Server, *records: common_pb2.StoredImage) -> tuple[str, str, tuple[int, int]]:
    try:
        r = srv.stubs.indexer.ImportImages(
            indexer_pb2.ImportImagesRequest(images=records, model=srv.info), timeout=60
        )
    except grpc.RpcError as e:
        return e.code().name, e.details() or "", (0, 0)
    return "OK", "", (r.imported, r.skipped)


def _count(srv: Server, namespace: str) -> int:
    return srv.stubs.indexer.GetStats(indexer_pb2.GetStatsRequest(namespace=namespace), timeout=10).images


HOSTILE = {
    "thumbnail 5": {"extra": {"thumbnail": 5}},
    "thumbnail ###": {"extra": {"thumbnail": "###"}},
    "thumbnail {}": {"extra": {"thumbnail": {}}},
    "thumbnail not an image": {"extra": {"thumbnail": base64.b64encode(b"hello" * 100).decode()}},
    "thumbnail 300 pixels": {"extra": {"thumbnail": _thumbnail(300)}},
    "thumbnail a GIF": {"extra": {"thumbnail": _thumbnail(32, "GIF")}},
    "thumbnail over 64 KiB": {"extra": {"thumbnail": base64.b64encode(b"\0" * (70 << 10)).decode()}},
    "ingested_at NaN": {"ingested_at": float("nan")},
    "ingested_at infinite": {"ingested_at": float("inf")},
    "extra_json NaN": {"extra": '{"feature_norm": NaN}'},
    "extra_json Infinity": {"extra": '{"x": [Infinity]}'},
    "extra_json 100,000 deep": {"extra": '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    "extra_json 20 deep": {"extra": {"x": json.loads("[" * 20 + "]" * 20)}},
    "feature_norm text": {"extra": {"feature_norm": "big"}},
    "feature_norm negative": {"extra": {"feature_norm": -1.0}},
    "sha256 not hex": {"sha256": "z" * 64},
    "width negative": {"width": -5},
    "extra_json not an object": {"extra": "[1, 2]"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_record_an_ingest_could_not_have_made_is_refused(srv, case):
    ns = f"hostile-{uuid.uuid4().hex[:6]}"
    code, details, _ = _import(srv, _record(srv, ns, **HOSTILE[case]))
    assert code == "INVALID_ARGUMENT", (case, code, details)
    assert len(details) < 400
    assert _count(srv, ns) == 0
    # the server still searches
    srv.stubs.query.SearchText(query_pb2.SearchTextRequest(text="dog", k=3), timeout=10)


def test_a_valid_thumbnail_is_imported_and_served(srv):
    ns = f"thumbs-{uuid.uuid4().hex[:6]}"
    record = _record(srv, ns, label="t", extra={"thumbnail": _thumbnail(), "feature_norm": 3.5})
    assert _import(srv, record)[0] == "OK"
    found = srv.stubs.query.SearchText(
        query_pb2.SearchTextRequest(text="dog", k=5, namespace=ns, with_thumbnails=True), timeout=10
    )
    assert [h.id for h in found.results] == [record.id] and found.results[0].thumbnail[:4] == b"RIFF"


def test_stored_data_never_makes_a_reply_pass_the_message_limit(srv, tmp_path):
    """50 records of 300 KB each (15 MB; an import may bring 512 KiB of payload per record) and
    thumbnails of about 50 KB: a listing with vectors, a search with thumbnails and an export all
    still work under a 4 MiB message limit, page by page."""
    ns = f"big-{uuid.uuid4().hex[:6]}"
    thumb = _thumbnail(256, noise=True)
    assert 40_000 < len(base64.b64decode(thumb)) <= 64 << 10
    records = [
        _record(srv, ns, label="big", extra={"thumbnail": thumb, "notes": "n" * 300_000}) for _ in range(50)
    ]
    for start in range(0, 50, 5):  # 1.5 MB per request
        assert _import(srv, *records[start : start + 5])[2] == (5, 0)
    pages, token, seen = 0, "", []
    while True:
        page = srv.stubs.query.ListImages(
            query_pb2.ListImagesRequest(namespace=ns, limit=1000, with_vectors=True, page_token=token),
            timeout=30,
        )
        assert page.ByteSize() <= MESSAGE_BYTES // 2
        seen += [r.id for r in page.images]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(r.id for r in records) and pages >= 5
    found = srv.stubs.query.SearchText(
        query_pb2.SearchTextRequest(text="dog", k=50, namespace=ns, with_thumbnails=True), timeout=30
    )
    assert len(found.results) == 50 and found.ByteSize() <= MESSAGE_BYTES // 2
    assert 0 < sum(1 for h in found.results if h.thumbnail) < 50  # the best ones get theirs
    with pytest.raises(grpc.RpcError) as info:
        srv.stubs.query.GetImages(
            query_pb2.GetImagesRequest(ids=seen, namespace=ns, with_vectors=True), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "fewer ids" in info.value.details()
    with ImageSearchClient(srv.addr, namespace=ns, max_message_bytes=MESSAGE_BYTES) as client:
        summary = transfer.export(client, tmp_path / "big.parquet")
        assert summary.records == 50
        assert client.delete(all=True) == 50
        restored = transfer.import_file(client, tmp_path / "big.parquet")  # batched by size
        assert (restored.imported, restored.skipped) == (50, 0)


def test_an_import_counts_ids_per_namespace_and_keeps_the_first_of_a_repeat(srv):
    a, b = f"imp-a-{uuid.uuid4().hex[:6]}", f"imp-b-{uuid.uuid4().hex[:6]}"
    same = str(uuid.uuid4())
    first = _record(srv, a, id=same, label="first")
    again = _record(srv, a, id=same, label="second")
    assert _import(srv, first, again)[2] == (1, 1)
    assert _import(srv, _record(srv, b, id=same, label="b"))[2] == (1, 0)  # another namespace's own
    got = srv.stubs.query.GetImages(query_pb2.GetImagesRequest(ids=[same], namespace=a), timeout=10)
    assert [r.label for r in got.images] == ["first"]
    got = srv.stubs.query.GetImages(query_pb2.GetImagesRequest(ids=[same], namespace=b), timeout=10)
    assert [r.label for r in got.images] == ["b"]


def test_an_interrupted_export_leaves_no_partial_file(srv, tmp_path):
    ns = f"stop-{uuid.uuid4().hex[:6]}"
    assert _import(srv, _record(srv, ns), _record(srv, ns))[2] == (2, 0)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with ImageSearchClient(srv.addr, namespace=ns) as client, pytest.raises(KeyboardInterrupt):
        transfer.export(client, tmp_path / "cut.parquet", progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_an_export_of_every_namespace_restores_the_same_id_in_each(srv, tmp_path):
    a, b = f"rt-a-{uuid.uuid4().hex[:6]}", f"rt-b-{uuid.uuid4().hex[:6]}"
    same = str(uuid.uuid4())
    assert _import(srv, _record(srv, a, id=same, label="a"), _record(srv, b, id=same, label="b"))[2] == (2, 0)
    with ImageSearchClient(srv.addr) as client:
        summary = transfer.export(client, tmp_path / "all.parquet", all_namespaces=True)
        assert client.delete(all=True, namespace=a) == 1 and client.delete(all=True, namespace=b) == 1
        restored = transfer.import_file(client, tmp_path / "all.parquet")
        assert restored.imported == 2 and restored.imported + restored.skipped == summary.records
        for namespace, label in ((a, "a"), (b, "b")):
            (record,), missing = client.get([same], namespace=namespace)
            assert (record.id, record.namespace, record.label, missing) == (same, namespace, label, [])
