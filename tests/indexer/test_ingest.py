"""Ingestion as plain Python, with the real embedder and a real Qdrant Edge store (no gRPC)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from imgsearch.app.process import free_port
from imgsearch.embedder.remote import RemoteEmbedder
from imgsearch.errors import InvalidArgument, Unavailable
from imgsearch.indexer.admin import delete, upsert_vectors
from imgsearch.indexer.ingest import IngestItem, Ingestor, content_id, load_vocabulary
from imgsearch.types.queries import PointVectors
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.types import PayloadFilter

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, runtime):
    s = EdgeStore(tmp_path / "qdrant")
    info = runtime.model_info()
    s.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
    yield s
    s.close()


def test_content_ids_are_stable_uuid5_of_the_sha256():
    a, sha = content_id(b"same bytes")
    assert content_id(b"same bytes") == (a, sha) and content_id(b"other")[0] != a
    assert len(sha) == 64 and a.count("-") == 4 and a[14] == "5"  # a version-5 UUID


def test_outcomes_in_order_with_duplicates_and_failures(runtime, store, photos):
    cat = photos["black_cat"].read_bytes()
    items = [
        IngestItem(cat, uri="a", label="cat", metadata={"k": "v"}),
        IngestItem(b""),
        IngestItem(cat, uri="again"),
        IngestItem(b"not an image"),
        IngestItem(photos["tent"].read_bytes(), id="not-a-uuid"),
        IngestItem(photos["tent"].read_bytes(), id="00000000-0000-0000-0000-0000000000aa"),
    ]
    out = list(Ingestor(runtime, store, batch=4).ingest(items))
    assert [o.index for o in out] == list(range(6))
    assert [o.status for o in out] == ["new", "failed", "duplicate", "failed", "failed", "new"]
    assert out[0].id == out[2].id == content_id(cat)[0]
    assert out[5].id == "00000000-0000-0000-0000-0000000000aa"
    assert [o.error_code for o in out if o.error] == [InvalidArgument.code_number] * 3
    point = store.get_image(out[0].id)
    assert point.payload["label"] == "cat" and point.payload["metadata"] == {"k": "v"}
    assert point.payload["sha256"] == content_id(cat)[1] and point.payload["feature_norm"] > 0
    assert store.count_images() == 2


def test_the_same_image_from_two_concurrent_streams_is_stored_once(runtime, store, photos):
    data = [photos[n].read_bytes() for n in ("bear", "drone", "guitar", "laptop")]
    ingestor = Ingestor(runtime, store, batch=runtime.model_info().max_batch)
    results: list[list[str]] = []

    def stream() -> None:
        results.append([o.status for o in ingestor.ingest(IngestItem(d) for d in data)])

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(s for r in results for s in r) == ["duplicate"] * 4 + ["new"] * 4
    assert store.count_images() == 4


def test_with_the_embedder_down_every_image_fails_with_unavailable_and_nothing_is_stored(store, photos):
    down = RemoteEmbedder(f"127.0.0.1:{free_port()}", timeout=5)
    try:
        out = list(Ingestor(down, store, batch=32).ingest([IngestItem(photos["bear"].read_bytes())]))
    finally:
        down.close()
    assert out[0].status == "failed" and out[0].error_code == Unavailable.code_number
    assert store.count_images() == 0


def test_vocabulary_loads_once_unless_forced(runtime, store):
    assert load_vocabulary(runtime, store, 3000) == (3000, True)
    assert load_vocabulary(runtime, store, 3000) == (3000, False)
    seen = []
    assert load_vocabulary(runtime, store, 3000, force=True, progress=lambda d, t: seen.append(d)) == (
        3000,
        True,
    )
    assert seen[-1] == 3000
    assert store.search_words(runtime.words.vector("king"), 1)[0][0] == "king"
    with pytest.raises(InvalidArgument):
        load_vocabulary(runtime, store, -5)
    with pytest.raises(InvalidArgument):
        list(runtime.vocabulary(-1))


def test_precomputed_vectors_are_checked_and_normalised(runtime, store):
    info = runtime.model_info()
    pid = "00000000-0000-0000-0000-0000000000bb"
    visual, semantic = np.full(info.visual_dim, 2.0), np.full(info.semantic_dim, 3.0)
    assert upsert_vectors(store, info, [PointVectors(pid, list(visual), list(semantic), label="x")]) == 1
    assert np.linalg.norm(store.get_image(pid).visual) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InvalidArgument, match="dimensions"):
        upsert_vectors(store, info, [PointVectors(pid, [1.0, 2.0], list(semantic))])
    with pytest.raises(InvalidArgument, match="zero vector"):
        upsert_vectors(store, info, [PointVectors(pid, [0.0] * info.visual_dim, list(semantic))])
    with pytest.raises(InvalidArgument):
        delete(store, [], None, False)
    assert delete(store, [], PayloadFilter(label="x"), False) == 1
