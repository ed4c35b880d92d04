"""The client's own logic: channel options, argument checks, error wrapping, ingest chunking."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from imgsearch.client import ClientError, ImageSearchClient, IngestItem, from_settings
from imgsearch.client.client import _chunks
from imgsearch.config import Settings
from imgsearch.protogen.imagesearch.v1 import common_pb2, indexer_pb2, indexer_pb2_grpc


def test_from_settings_uses_addresses_and_token():
    s = Settings.from_env({"IMGSEARCH_ADDR": "q:1", "IMGSEARCH_INDEXER_ADDR": "i:2", "IMGSEARCH_TOKEN": "t"})
    c = from_settings(s)
    assert (c.addr, c.indexer_addr) == ("q:1", "i:2")
    assert c._metadata == (("authorization", "Bearer t"),)
    assert from_settings(Settings.from_env({})).indexer_addr == "localhost:50051"


def test_image_source_must_be_exactly_one():
    with ImageSearchClient("127.0.0.1:1") as c:
        with pytest.raises(ValueError):
            c.similar()
        with pytest.raises(ValueError):
            c.tags(image=b"x", id="y")


def test_unreachable_server_raises_client_error():
    with ImageSearchClient("127.0.0.1:1", timeout=5, wait_for_ready=False) as c:
        with pytest.raises(ClientError) as info:
            c.words("said")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "cannot connect to 127.0.0.1:1" in info.value.message  # found before any call is made


def test_health_of_an_unreachable_server_is_false():
    with ImageSearchClient("127.0.0.1:1") as c:
        assert c.health() is False


def test_chunks_split_by_count_and_by_bytes():
    items = [IngestItem(image=b"x" * 10, uri=str(i)) for i in range(7)]
    assert [len(c) for c in _chunks(items, 3, 10**6)] == [3, 3, 1]
    assert [len(c) for c in _chunks(items, 100, 25)] == [2, 2, 2, 1]
    big = [IngestItem(image=b"x" * 100)]  # one item over the byte budget still goes, alone
    assert [len(c) for c in _chunks(big + items[:1], 100, 50)] == [1, 1]


class RecordingIndexer(indexer_pb2_grpc.IndexerServicer):
    """Answers each stream; records stream sizes. Images starting with b'bad' fail."""

    def __init__(self):
        self.streams: list[int] = []

    def Ingest(self, request_iterator, context):
        results = []
        for i, r in enumerate(request_iterator):
            if r.image.startswith(b"bad"):
                err = common_pb2.ItemError(
                    code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="undecodable"
                )
                results.append(indexer_pb2.IngestResult(index=i, uri=r.uri, status=3, error=err))
            else:
                results.append(indexer_pb2.IngestResult(index=i, id=f"id-{r.uri}", uri=r.uri, status=1))
        self.streams.append(len(results))
        return indexer_pb2.IngestResponse(results=results)


@pytest.fixture()
def indexer():
    servicer = RecordingIndexer()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    indexer_pb2_grpc.add_IndexerServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", servicer
    srv.stop(0)


def test_long_ingest_is_split_into_streams_with_global_indexes(indexer):
    addr, servicer = indexer
    items = [IngestItem(image=(b"bad" if i == 7 else b"ok") + bytes([i]), uri=f"u{i}") for i in range(10)]
    seen, sent = [], []
    with ImageSearchClient(addr) as c:
        summary = c.ingest(iter(items), on_result=seen.append, on_sent=sent.append, chunk_items=4)
    assert sorted(servicer.streams) == [2, 4, 4]  # streams overlap: the server may count them in any order
    assert [r.index for r in summary.results] == list(range(10))
    assert [r.uri for r in seen] == [f"u{i}" for i in range(10)]
    assert len(sent) == 10
    assert summary.ingested == 9 and summary.duplicates == 0
    assert [(f.index, f.uri, f.error_code, f.error) for f in summary.failed] == [(7, "u7", 3, "undecodable")]
