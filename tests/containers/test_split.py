"""The split topology of docker-compose.yml without the Qdrant server: two embedder containers
(`serve embedder`, embedder image) behind one `serve indexer query` container (lite image) on the
embedded store, all on the host network at 127.0.0.1 with read-only root filesystems. An embedder
killed under ingest load loses nothing, and once started again it gets calls again (each replica's
count from its own /metrics)."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.containers import engine, streams
from tests.containers.conftest import record

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1200)]

EMBEDDER_SERVING_WITHIN = 90  # models come prepared in the image: measured 4 to 10 s
SEARCH_SERVING_WITHIN = 180  # loads the vocabulary (VOCAB words) through the embedders first
VOCAB = 5000


@pytest.fixture(scope="module")
def topology(images):
    tag = uuid.uuid4().hex[:8]
    ports = engine.free_ports(6)
    volume = engine.new_volume(f"imgsearch-test-split-{tag}")
    started: list[engine.Container] = []
    try:
        embedders = [
            engine.run_container(
                f"imgsearch-test-embedder{i}-{tag}",
                images["embedder"],
                "serve",
                "embedder",
                port=ports[2 * i],
                metrics_port=ports[2 * i + 1],
                options=["--read-only"],
            )
            for i in range(2)
        ]
        started += embedders
        for e in embedders:
            seconds = e.wait_serving(EMBEDDER_SERVING_WITHIN)
            record(f"{e.name.rsplit('-', 1)[0]} (serve embedder), docker run to SERVING", f"{seconds:.1f} s")
        search = engine.run_container(
            f"imgsearch-test-search-{tag}",
            images["lite"],
            "serve",
            "indexer",
            "query",
            port=ports[4],
            metrics_port=ports[5],
            volume=volume,
            env={
                "IMGSEARCH_EMBEDDER": ",".join(e.addr for e in embedders),
                "IMGSEARCH_VOCAB_SIZE": str(VOCAB),
            },
            options=["--read-only"],
        )
        started.append(search)
        seconds = search.wait_serving(SEARCH_SERVING_WITHIN)
        record(f"lite serve indexer query, docker run to SERVING ({VOCAB} words)", f"{seconds:.1f} s")
        yield embedders, search
    finally:
        engine.remove(*(c.name for c in started))
        engine.docker("volume", "rm", "-f", volume, check=False)


def test_ingestion_is_spread_over_both_replicas(topology, photos):
    embedders, search = topology
    before = [engine.embedded(e.metrics_port) for e in embedders]
    channel, stub = streams.indexer(search.addr)
    copies = 3
    reply = stub.Ingest(streams.photo_requests(photos, copies), timeout=300)
    channel.close()
    assert reply.ingested == copies * len(photos) and reply.failed == 0
    done = [engine.embedded(e.metrics_port) - b for e, b in zip(embedders, before, strict=True)]
    assert sum(done) >= copies * len(photos), done
    assert min(done) > 0, f"one replica did no work: {done}"
    top = engine.cli_json("search", "--addr", search.addr, "jellyfish", "-k", "1")["results"]
    assert top[0]["label"] == "jellyfish", top


def test_an_embedder_killed_under_ingest_load_loses_nothing_and_is_used_again_once_started(topology, photos):
    embedders, search = topology
    channel, stub = streams.indexer(search.addr)
    before = streams.stored_images(stub)
    copies = 8
    sent = copies * len(photos)

    def kill_a_third_of_the_way(i: int) -> None:
        if i == sent // 3:
            engine.docker("kill", embedders[0].name)  # SIGKILL, mid-stream

    reply = stub.Ingest(
        streams.photo_requests(photos, copies, first=10, on_each=kill_a_third_of_the_way), timeout=600
    )
    assert reply.failed == 0, [r.error.message for r in reply.results if r.error.message][:3]
    assert reply.ingested == sent and len({r.id for r in reply.results}) == sent
    assert streams.stored_images(stub) == before + sent

    seconds = embedders[0].start().wait_serving(EMBEDDER_SERVING_WITHIN)
    record("embedder docker start to SERVING after a kill", f"{seconds:.1f} s")
    # The indexer's channel reconnects to the replica (round_robin): it gets calls again.
    other = engine.embedded(embedders[1].metrics_port)
    deadline = time.monotonic() + 90
    batch = 100
    while (
        engine.embedded(embedders[0].metrics_port) == 0 or engine.embedded(embedders[1].metrics_port) == other
    ):
        assert time.monotonic() < deadline, (
            f"calls not spread over both replicas again: the restarted one embedded "
            f"{engine.embedded(embedders[0].metrics_port):.0f}, the other "
            f"{engine.embedded(embedders[1].metrics_port) - other:.0f} since"
        )
        batch += 1
        again = stub.Ingest(streams.photo_requests(photos, 1, first=batch), timeout=300)
        assert again.failed == 0 and again.ingested == len(photos)
    assert streams.stored_images(stub) == before + sent + (batch - 100) * len(photos)
    channel.close()
