"""The server as real processes: restart on the same data, SIGTERM drain, scale-out over two
embedder replicas (one killed mid-stream), and the Qdrant-server store path."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest

from imgsearch.app.process import ServerProcess
from imgsearch.app.serve import stop
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, query_pb2
from tests.e2e.conftest import start_server, stubs_for

pytestmark = pytest.mark.slow


def _ingest_requests(photos, copies: int = 1):
    """Each photo `copies` times with distinct bytes (a trailing byte after the image data)."""
    for i in range(copies):
        for name, path in sorted(photos.items()):
            yield indexer_pb2.IngestRequest(
                image=path.read_bytes() + b"\0" * i, uri=f"{path}#{i}", label=name
            )


def _top(stubs, text: str, k: int = 5) -> list[str]:
    return [r.id for r in stubs.query.SearchText(query_pb2.SearchTextRequest(text=text, k=k)).results]


def test_restart_on_the_same_data_keeps_images_and_results(tmp_path, photos):
    first = ServerProcess(tmp_path / "data").wait_serving()
    try:
        s = stubs_for(first.addr)
        r = s.indexer.Ingest(_ingest_requests(photos))
        assert r.ingested == len(photos)
        before = {t: _top(s, t) for t in ("dog", "ocean", "cat sofa")}
        s.channel.close()
    finally:
        assert first.terminate() == 0
    second = ServerProcess(tmp_path / "data").wait_serving()
    try:
        s = stubs_for(second.addr)
        assert s.indexer.GetStats(indexer_pb2.GetStatsRequest()).images == len(photos)
        assert {t: _top(s, t) for t in before} == before
        again = s.indexer.Ingest(_ingest_requests(photos))
        assert again.duplicates == len(photos) and again.ingested == 0
        s.channel.close()
    finally:
        second.terminate()


def test_sigterm_drains_an_ingestion_in_flight(tmp_path, photos):
    server = ServerProcess(tmp_path / "data").wait_serving()
    s = stubs_for(server.addr)
    sent = 3 * len(photos)
    result = {}

    def ingest():
        result["response"] = s.indexer.Ingest(_ingest_requests(photos, copies=3), timeout=120)

    worker = threading.Thread(target=ingest)
    worker.start()
    time.sleep(1.5)  # the stream is under way
    server.proc.send_signal(signal.SIGTERM)
    worker.join(120)
    assert server.proc.wait(60) == 0
    server.kill()
    response = result["response"]
    assert response.ingested == sent and response.failed == 0
    s.channel.close()
    again = ServerProcess(tmp_path / "data").wait_serving()
    try:
        s = stubs_for(again.addr)
        assert s.indexer.GetStats(indexer_pb2.GetStatsRequest()).images == sent
        s.channel.close()
    finally:
        again.terminate()


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    """Two embedder replicas, each its own process with its own metrics port."""
    root = tmp_path_factory.mktemp("embedders")
    procs = [ServerProcess(root / f"e{i}", "embedder", metrics=True) for i in range(2)]
    try:
        for p in procs:
            p.wait_serving()
        yield procs
    finally:
        for p in procs:
            p.kill()


def test_ingestion_is_spread_over_both_embedders(tmp_path, photos, embedders):
    addresses = ",".join(p.addr for p in embedders)
    running = start_server(tmp_path / "data", ("indexer", "query"), embedder=addresses, vocab_size=5000)
    try:
        before = [p.metric("imgsearch_images_embedded_total") for p in embedders]
        s = stubs_for(running.addr)
        r = s.indexer.Ingest(_ingest_requests(photos, copies=4))
        assert r.ingested == 4 * len(photos) and r.failed == 0
        done = [
            p.metric("imgsearch_images_embedded_total") - b for p, b in zip(embedders, before, strict=True)
        ]
        assert sum(done) >= 4 * len(photos)
        assert min(done) > 0, f"one replica did no work: {done}"
        assert (
            s.query.SearchText(query_pb2.SearchTextRequest(text="jellyfish", k=1)).results[0].label
            == "jellyfish"
        )
        s.channel.close()
    finally:
        stop(running.served, running.parts, 1.0)


def test_an_embedder_killed_mid_stream_loses_nothing(tmp_path, photos, embedders):
    addresses = ",".join(p.addr for p in embedders)
    running = start_server(
        tmp_path / "data", ("indexer", "query"), embedder=addresses, vocab_size=5000, qdrant_url=":memory:"
    )
    try:
        s = stubs_for(running.addr)
        copies = 8
        sent = copies * len(photos)

        def slow_stream():
            for i, req in enumerate(_ingest_requests(photos, copies=copies)):
                if i == sent // 3:
                    embedders[0].kill()  # SIGKILL, mid-stream
                yield req

        r = s.indexer.Ingest(slow_stream(), timeout=300)
        assert r.failed == 0, [x.error.message for x in r.results if x.error.message][:3]
        assert r.ingested == sent
        assert len({x.id for x in r.results}) == sent
        assert s.indexer.GetStats(indexer_pb2.GetStatsRequest()).images == sent
        assert s.indexer.GetStats(indexer_pb2.GetStatsRequest()).store.startswith("qdrant-client")
        s.channel.close()
    finally:
        stop(running.served, running.parts, 1.0)


def test_a_replica_that_comes_back_is_used_again(tmp_path, photos, embedders):
    addresses = ",".join(p.addr for p in embedders)
    running = start_server(tmp_path / "data", ("indexer", "query"), embedder=addresses, vocab_size=5000)
    try:
        s = stubs_for(running.addr)
        embedders[0].kill()
        r = s.indexer.Ingest(_ingest_requests(photos, copies=2), timeout=300)
        assert r.ingested == 2 * len(photos) and r.failed == 0
        embedders[0] = embedders[0].restarted().wait_serving()
        deadline = time.monotonic() + 60
        copies = 2
        while embedders[0].metric("imgsearch_images_embedded_total") == 0:
            assert time.monotonic() < deadline, "the restarted replica got no work"
            copies += 1
            batch = {n: p for n, p in photos.items() if n in ("bear", "tent", "laptop", "guitar")}
            reqs = [
                indexer_pb2.IngestRequest(image=p.read_bytes() + b"\0" * copies, uri=f"{p}#{copies}")
                for p in batch.values()
            ]
            assert s.indexer.Ingest(iter(reqs), timeout=120).failed == 0
        s.channel.close()
    finally:
        stop(running.served, running.parts, 1.0)


def test_with_every_embedder_down_calls_fail_fast_with_unavailable_and_nothing_is_lost(
    tmp_path, photos, embedders
):
    running = start_server(
        tmp_path / "data", ("indexer", "query"), embedder=embedders[1].addr, vocab_size=5000
    )
    try:
        s = stubs_for(running.addr)
        stored = s.indexer.Ingest(_ingest_requests({"bear": photos["bear"]}))
        assert stored.ingested == 1
        for p in embedders:
            p.kill()
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            s.query.SearchText(query_pb2.SearchTextRequest(text="dog", k=3), timeout=60)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - start < 30
        r = s.indexer.Ingest(_ingest_requests({"tent": photos["tent"], "bear": photos["bear"]}), timeout=60)
        by_uri = {x.uri.split("#")[0].rsplit("/", 1)[-1]: x for x in r.results}
        assert by_uri["tent.jpg"].status == indexer_pb2.IngestResult.FAILED
        assert by_uri["tent.jpg"].error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert by_uri["bear.jpg"].status == indexer_pb2.IngestResult.DUPLICATE  # known without the embedder
        by_id = query_pb2.SimilarImagesRequest(id=stored.results[0].id, k=1, include_self=True)
        assert s.query.SimilarImages(by_id).results
        s.channel.close()
    finally:
        stop(running.served, running.parts, 1.0)
