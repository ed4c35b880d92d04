"""Storage settings for scale: how collections are laid out (originals on disk, quantization kind,
HNSW shape, payload on disk), read from the environment, and a store that does not leave the
segments an optimize replaced on disk."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from imgsearch.config.settings import Settings
from imgsearch.vectorstore import IMAGES, SEMANTIC, VISUAL, ImagePoint, VectorStore, open_store
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.plan import VISUAL_SCALE
from imgsearch.vectorstore.remote import RemoteStore
from imgsearch.vectorstore.storage import StorageOptions

VIS, SEM = 32, 8


def _points(n: int, seed: int = 0) -> list[ImagePoint]:
    rng = np.random.default_rng(seed)
    vis = rng.standard_normal((n, VIS)).astype(np.float32)
    sem = rng.standard_normal((n, SEM)).astype(np.float32)
    return [
        ImagePoint(
            str(uuid.UUID(int=seed * 1_000_000 + i + 1)), vis[i], sem[i], {"uri": f"/p/{i}.jpg", "label": "x"}
        )
        for i in range(n)
    ]


def _edge_config(root: Path) -> dict:
    return json.loads((root / IMAGES / "edge_config.json").read_text())


@pytest.mark.parametrize("quantization", ["int8", "binary", "product", "none"])
@pytest.mark.parametrize("adapter", ["edge", "remote"])
def test_each_quantization_finds_the_nearest_image(tmp_path, adapter, quantization):
    storage = StorageOptions(quantization=quantization)
    if adapter == "edge":
        store: VectorStore = EdgeStore(tmp_path / "qdrant", storage=storage)
    else:
        store = RemoteStore(client=QdrantClient(":memory:"), local=True, storage=storage)
    store.ensure_collections(VIS, SEM, SEM)
    points = _points(200)
    store.upsert_images(points)
    store.optimize()
    for target in (points[3], points[150]):
        hits = store.search_images(target.visual, VISUAL, k=3)
        assert hits[0].id == target.id
        # rescored with the original vectors: cosine 1
        assert hits[0].score == pytest.approx(VISUAL_SCALE.relevance(1.0), abs=1e-5)
    store.close()
    if adapter == "edge":
        stored = _edge_config(tmp_path / "qdrant")["vectors"][VISUAL]
        expected = {"int8": "scalar", "binary": "binary", "product": "product"}.get(quantization)
        assert (
            next(iter(stored["quantization_config"])) if "quantization_config" in stored else None
        ) == expected


def test_the_word_space_graphs_are_denser_than_the_visual_one(tmp_path):
    """Text queries search the images' semantic vectors among up to millions of near-tied
    mixtures: their graph gets the most links and the widest build beam; words keep a lighter one."""
    from imgsearch.vectorstore.storage import (
        SEMANTIC_EF_CONSTRUCT,
        SEMANTIC_M,
        WORD_SPACE_EF_CONSTRUCT,
        WORD_SPACE_M,
    )

    root = tmp_path / "qdrant"
    store = EdgeStore(root)
    store.ensure_collections(VIS, SEM, SEM)
    store.close()
    images = _edge_config(root)
    words = json.loads((root / "words" / "edge_config.json").read_text())
    semantic = images["vectors"][SEMANTIC]["hnsw_config"]
    assert (semantic["m"], semantic["ef_construct"]) == (SEMANTIC_M, SEMANTIC_EF_CONSTRUCT) == (64, 800)
    assert "hnsw_config" not in images["vectors"][VISUAL]
    assert images["hnsw_config"]["m"] == 16  # the visual vectors: the collection's graph
    word = words["vectors"][""]["hnsw_config"]
    assert (word["m"], word["ef_construct"]) == (WORD_SPACE_M, WORD_SPACE_EF_CONSTRUCT) == (32, 400)


def test_edge_lays_collections_out_as_the_options_say(tmp_path):
    root = tmp_path / "qdrant"
    store = EdgeStore(root, storage=StorageOptions(hnsw_m=8, hnsw_ef_construct=64, max_segment_mb=300))
    store.ensure_collections(VIS, SEM, SEM)
    store.close()
    config = _edge_config(root)
    assert config["vectors"][VISUAL]["on_disk"] is True  # the default: originals memory-mapped
    assert config["on_disk_payload"] is True
    assert config["hnsw_config"]["m"] == 8 and config["hnsw_config"]["ef_construct"] == 64
    assert config["optimizers"]["max_segment_size"] == 300 * 1024

    in_ram = tmp_path / "ram"
    store = EdgeStore(in_ram, storage=StorageOptions(vectors_on_disk=False, payload_on_disk=False))
    store.ensure_collections(VIS, SEM, SEM)
    store.upsert_images(_points(20))
    store.close()
    config = _edge_config(in_ram)
    assert not config["vectors"][SEMANTIC].get("on_disk") and not config.get("on_disk_payload")


def test_storage_settings_come_from_the_environment(tmp_path):
    env = {
        "IMGSEARCH_DATA": str(tmp_path),
        "IMGSEARCH_QUANTIZATION": "Binary",
        "IMGSEARCH_VECTORS_ON_DISK": "no",
        "IMGSEARCH_PAYLOAD_ON_DISK": "off",
        "IMGSEARCH_HNSW_M": "24",
        "IMGSEARCH_HNSW_EF_CONSTRUCT": "128",
        "IMGSEARCH_MAX_SEGMENT_MB": "512",
    }
    settings = Settings.from_env(env)
    assert (settings.quantization, settings.vectors_on_disk, settings.payload_on_disk) == (
        "binary",
        False,
        False,
    )
    store = open_store(settings)
    store.ensure_collections(VIS, SEM, SEM)
    store.close()
    config = _edge_config(tmp_path / "qdrant")
    assert "binary" in config["vectors"][VISUAL]["quantization_config"]
    assert config["hnsw_config"]["m"] == 24 and config["optimizers"]["max_segment_size"] == 512 * 1024
    defaults = Settings.from_env({})
    assert (defaults.vectors_on_disk, defaults.payload_on_disk, defaults.hnsw_m) == (True, True, 16)
    assert defaults.optimize_max_pending == 0
    assert Settings.from_env({"IMGSEARCH_OPTIMIZE_MAX_PENDING": "50000"}).optimize_max_pending == 50_000


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("IMGSEARCH_VECTORS_ON_DISK", "maybe", "IMGSEARCH_VECTORS_ON_DISK"),
        ("IMGSEARCH_HNSW_M", "2", "HNSW m"),
        ("IMGSEARCH_MAX_SEGMENT_MB", "0", "largest segment"),
        ("IMGSEARCH_OPTIMIZE_MAX_PENDING", "-1", "IMGSEARCH_OPTIMIZE_MAX_PENDING"),
        ("IMGSEARCH_QUANTIZATION", "int4", "IMGSEARCH_QUANTIZATION"),
    ],
)
def test_a_bad_storage_setting_is_refused_with_its_name(tmp_path, variable, value, message):
    with pytest.raises(ValueError, match=message):
        open_store(Settings.from_env({"IMGSEARCH_DATA": str(tmp_path), variable: value}))


def test_optimize_leaves_no_replaced_segment_on_disk(tmp_path):
    """The engine deletes the segments an optimize merged away only at a flush: without one, a
    serving store kept every generation of them (15x the vectors at 200,000 images)."""
    root = tmp_path / "qdrant"
    store = EdgeStore(root, auto_optimize_points=0, indexing_threshold_kb=1)
    store.ensure_collections(VIS, SEM, SEM)
    segments = root / IMAGES / "segments"
    for round in range(4):
        store.upsert_images(_points(300, seed=round))
        store.optimize()
        on_disk = {p.name for p in segments.iterdir()}
        assert len(on_disk) <= 3, f"round {round}: {len(on_disk)} segment folders"
    assert store.count_images() == 1200
    store.close()
    reopened = EdgeStore(root)
    assert reopened.count_images() == 1200
    reopened.close()


def test_the_semantic_beam_widens_once_the_collection_is_large(tmp_path, monkeypatch):
    """Text queries on a large collection search the semantic graph with the wider beam; a small
    one keeps the cheaper beam, and a beam the operator set (IMGSEARCH_HNSW_EF) holds at any size."""
    from imgsearch.vectorstore import base, storage

    monkeypatch.setattr(storage, "LARGE_COLLECTION", 10)
    monkeypatch.setattr(base, "SIZE_RECOUNT_S", 0.0)
    store = EdgeStore(tmp_path / "qdrant")
    try:
        store.ensure_collections(VIS, SEM, SEM)
        store.upsert_images(_points(5))
        assert store._params_for(SEMANTIC).hnsw_ef == storage.WORD_SPACE_EF == 1000
        store.upsert_images(_points(10, seed=1))
        assert store._params_for(SEMANTIC).hnsw_ef == storage.LARGE_WORD_SPACE_EF == 2000
        assert store._params_for(VISUAL).hnsw_ef is None  # the visual space: the engine's default
        assert store._params_for("").hnsw_ef == storage.WORD_SPACE_EF  # words keep theirs
        target = _points(10, seed=1)[3]
        assert store.search_images(target.semantic, SEMANTIC, k=1)[0].id == target.id
    finally:
        store.close()
    fixed = EdgeStore(tmp_path / "qdrant", hnsw_ef=300)
    try:
        assert fixed._params_for(SEMANTIC).hnsw_ef == 300
    finally:
        fixed.close()
