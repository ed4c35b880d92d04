"""The sparse `classes` vector of the images collection (the taxonomic channel), on both adapters:
stored and read back, fused with the semantic ranking, and absent from collections made before it."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from imgsearch.errors import InvalidArgument
from imgsearch.vectorstore import IMAGES, SEMANTIC, ImagePoint, VectorStore
from imgsearch.vectorstore.base import SparseVector
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.plan import TEXT_SCALE, Branch
from imgsearch.vectorstore.remote import RemoteStore
from imgsearch.vectorstore.schema import CLASSES, SPARSE_VECTORS

VIS, SEM, WORD = 16, 8, 8


def _make(kind: str, root: Path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(root / "qdrant")
    return RemoteStore(client=QdrantClient(":memory:"), local=True)


@pytest.fixture(params=["edge", "remote"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    s = _make(request.param, tmp_path)
    s.ensure_collections(VIS, SEM, WORD)
    yield s
    s.close()


def _points(n: int, classes: dict[int, SparseVector]) -> list[ImagePoint]:
    rng = np.random.default_rng(3)
    return [
        ImagePoint(
            id=str(uuid.UUID(int=i + 1)),
            visual=rng.standard_normal(VIS).astype(np.float32),
            semantic=rng.standard_normal(SEM).astype(np.float32),
            payload={"uri": f"/p/{i}.jpg", "label": "", "metadata": {}},
            classes=classes.get(i),
        )
        for i in range(n)
    ]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_classes_are_stored_and_read_back(store):
    points = _points(3, {0: SparseVector((7, 207), (0.25, 0.5)), 1: SparseVector((3,), (0.9,))})
    store.upsert_images(points)
    assert store.has_classes()
    got = store.get_image(points[0].id)
    assert got.classes.indices == (7, 207)
    assert got.classes.values == pytest.approx((0.25, 0.5))
    assert store.get_image(points[2].id).classes is None


def test_the_classes_channel_mixes_the_named_classes_probability_into_the_similarity(store):
    points = _points(20, {5: SparseVector((207,), (0.9,)), 9: SparseVector((208, 300), (0.6, 0.3))})
    store.upsert_images(points)
    query = points[0].semantic  # the semantic channel alone puts point 0 first
    plain = store.search_images(query, SEMANTIC, k=5)
    assert plain[0].id == points[0].id
    sparse = Branch(SparseVector((207, 208), (1.0, 1.0)), (), CLASSES, 0.5)
    fused = store.search_images(query, SEMANTIC, k=20, fused=(sparse,))
    bonus = {points[5].id: 0.9, points[9].id: 0.6}
    for hit in fused:  # score = (cosine + weight x (classes . query classes)) / (1 + weight)
        point = next(p for p in points if p.id == hit.id)
        raw = (_cos(point.semantic, query) + 0.5 * bonus.get(hit.id, 0.0)) / 1.5
        assert hit.score == pytest.approx(TEXT_SCALE.relevance(raw), abs=2e-3)
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
    assert len(fused) == 20


def test_bad_sparse_vectors_are_refused(store):
    (point,) = _points(1, {0: SparseVector((3, 3), (0.1, 0.2))})
    with pytest.raises(InvalidArgument, match="unique"):
        store.upsert_images([point])
    (point,) = _points(1, {0: SparseVector((3,), (float("nan"),))})
    with pytest.raises(InvalidArgument, match="finite"):
        store.upsert_images([point])


@pytest.mark.parametrize("kind", ["edge", "remote"])
def test_a_collection_made_before_the_classes_vector_keeps_working_without_it(kind, tmp_path, monkeypatch):
    store = _make(kind, tmp_path)
    try:
        monkeypatch.setitem(SPARSE_VECTORS, IMAGES, ())  # as an older version made it
        store.ensure_collections(VIS, SEM, WORD)
        monkeypatch.undo()
        assert not store.has_classes()
        points = _points(10, {4: SparseVector((207,), (0.9,))})
        store.upsert_images(points)  # the classes are left out, the rest is stored
        assert store.get_image(points[4].id).classes is None
        query = points[0].semantic
        sparse = Branch(SparseVector((207,), (1.0,)), (), CLASSES, 1.0)
        fused = store.search_images(query, SEMANTIC, k=3, fused=(sparse,))
        assert [h.id for h in fused] == [h.id for h in store.search_images(query, SEMANTIC, k=3)]
    finally:
        store.close()


def test_an_embedded_store_reopens_with_its_classes(tmp_path):
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collections(VIS, SEM, WORD)
    points = _points(5, {2: SparseVector((207,), (0.9,))})
    store.upsert_images(points)
    store.close()
    again = EdgeStore(tmp_path / "qdrant")
    try:
        again.ensure_collections(VIS, SEM, WORD)
        assert again.has_classes()
        assert again.get_image(points[2].id).classes.indices == (207,)
        sparse = Branch(SparseVector((207,), (1.0,)), (), CLASSES, 1.0)
        hits = again.search_images(points[0].semantic, SEMANTIC, k=5, fused=(sparse,))
        two = next(h for h in hits if h.id == points[2].id)
        raw = (_cos(points[2].semantic, points[0].semantic) + 0.9) / 2
        assert two.score == pytest.approx(TEXT_SCALE.relevance(raw), abs=2e-3)
    finally:
        again.close()
