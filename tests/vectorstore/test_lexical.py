"""The lexical channel (BM25 over an image's label, caption and metadata values) and hybrid search,
on both adapters: Qdrant Edge, and RemoteStore over qdrant-client's local mode."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from imgsearch.errors import FailedPrecondition
from imgsearch.vectorstore import SEMANTIC, ImagePoint, PayloadFilter, VectorStore
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.engine import SparseVector
from imgsearch.vectorstore.lexical import (
    AVG_TOKENS,
    K1,
    LEGACY_TEXT,
    B,
    document_vector,
    query_vector,
    token_id,
    tokens,
)
from imgsearch.vectorstore.plan import LEXICAL_WEIGHT, TEXT_SCALE, Branch, fused_scale
from imgsearch.vectorstore.remote import RemoteStore
from imgsearch.vectorstore.schema import CLASSES, IMAGES, SPARSE_VECTORS

VIS, SEM, N = 16, 8, 30
CAPTIONED = 7
CAPTION = "A Golden-Retriever on the grass"


def _points() -> list[ImagePoint]:
    rng = np.random.default_rng(5)
    points = []
    for i in range(N):
        metadata = {"caption": CAPTION} if i == CAPTIONED else {"place": "park" if i % 3 else "beach"}
        payload = {"uri": f"/p/{i}.jpg", "label": "dog" if i < 10 else "cat", "metadata": metadata}
        classes = SparseVector((i % 4, 10 + i % 3), (0.6, 0.3))
        points.append(
            ImagePoint(
                str(uuid.UUID(int=i + 1)),
                rng.standard_normal(VIS).astype(np.float32),
                rng.standard_normal(SEM).astype(np.float32),
                payload,
                classes,
            )
        )
    return points


def _store(kind: str, tmp_path: Path) -> VectorStore:
    if kind == "edge":
        return EdgeStore(tmp_path / "qdrant")
    return RemoteStore(client=QdrantClient(":memory:"), local=True)


@pytest.fixture(params=["edge", "remote"])
def loaded(request: pytest.FixtureRequest, tmp_path: Path):
    s = _store(request.param, tmp_path)
    s.ensure_collections(VIS, SEM, SEM)
    points = _points()
    s.upsert_images(points)
    yield s, points
    s.close()


def _bm25(doc_tokens: int, tf: int) -> float:
    """One query word's BM25 saturation in a document (no IDF: nothing but the document counts)."""
    return tf / (tf + K1 * (1 - B + B * doc_tokens / AVG_TOKENS))


def _lifted(relevance: float, bm25: float, weight: float = LEXICAL_WEIGHT) -> float:
    """The relevance of a hybrid hit whose semantic relevance was `relevance`: the raw score s
    becomes s + weight x bm25 x (1 - s)."""
    s = TEXT_SCALE.raw(relevance)
    return TEXT_SCALE.relevance(s + weight * bm25 * (1 - s))


def test_tokens_and_ids_are_stable():
    assert tokens("A Golden-Retriever, on_the grass!") == ["a", "golden", "retriever", "on", "the", "grass"]
    # the published FNV-1a 32-bit test values
    assert token_id("a") == 0xE40C292C and token_id("foobar") == 0xBF9CF968
    assert query_vector([("dog", 1.0), ("cat", -1.0)]) == SparseVector((token_id("dog"),), (1.0,))
    pair = query_vector([("dog", 3.0), ("cat", 1.0)])  # each token at its share of the weights
    assert dict(zip(pair.indices, pair.values, strict=True)) == {token_id("dog"): 0.75, token_id("cat"): 0.25}
    assert not document_vector(" ,;")


def test_lexical_search_ranks_by_bm25_over_label_caption_and_metadata(loaded):
    store, points = loaded
    hits = store.search_lexical(query_vector([("golden", 1.0), ("retriever", 1.0)]), 5)
    assert [h.id for h in hits] == [points[CAPTIONED].id]  # no other image has either word
    # label "dog" + 6 caption tokens: the mean over the query's words of each word's saturation
    assert hits[0].score == pytest.approx(_bm25(7, 1), rel=1e-3)
    assert 0 < hits[0].score < 1
    beach = store.search_lexical(query_vector([("beach", 1.0)]), 30)
    assert len(beach) == sum(1 for i in range(N) if i != CAPTIONED and i % 3 == 0)
    dogs = store.search_lexical(query_vector([("dog", 1.0)]), 30, PayloadFilter(exclude_labels=("cat",)))
    assert len(dogs) == 10
    # min_score cuts on the same [0, 1] score: "dog" in a two-token text 0.66, in the captioned 0.48
    strong = store.search_lexical(query_vector([("dog", 1.0)]), 30, min_score=0.5)
    assert len(strong) == 9 and points[CAPTIONED].id not in {h.id for h in strong}
    assert all(h.score == pytest.approx(_bm25(2, 1)) for h in strong)
    assert store.search_lexical(query_vector([("dog", 1.0)]), 30, PayloadFilter(labels=("cat",))) == []
    assert [h.id for h in store.search_lexical(query_vector([("dog", 1.0)]), 3, offset=8)] == [
        h.id for h in dogs[8:10]
    ]


def test_hybrid_adds_the_lexical_part_to_the_semantic_score(loaded):
    store, points = loaded
    q = points[0].semantic + 0.5 * points[CAPTIONED].semantic  # the captioned image ranks high, not first
    semantic = store.search_images(q, SEMANTIC, N)
    assert semantic[0].id != points[CAPTIONED].id
    words = query_vector([("retriever", 1.0)])
    hybrid = store.search_images(q, SEMANTIC, N, lexical=words)
    assert hybrid[0].id == points[CAPTIONED].id
    by_id = {h.id: h.score for h in semantic}
    assert hybrid[0].score == pytest.approx(_lifted(by_id[points[CAPTIONED].id], _bm25(7, 1)), abs=1e-3)
    assert 0 <= hybrid[-1].score <= hybrid[0].score <= 1.0
    for h in hybrid[1:]:  # the others keep their semantic scores
        assert h.score == pytest.approx(by_id[h.id], abs=1e-4)
    # a word no image has leaves the ranking as it was; diverse results are semantic only
    nothing = store.search_images(q, SEMANTIC, 5, lexical=query_vector([("zebra", 1.0)]))
    assert [h.id for h in nothing] == [h.id for h in semantic[:5]]
    diverse = store.search_images(q, SEMANTIC, 5, lexical=words, mmr_lambda=0.5)
    assert diverse[0].id == semantic[0].id


def test_hybrid_with_the_taxonomic_channel_and_with_fused_rankings(loaded):
    store, points = loaded
    q = points[0].semantic + 0.5 * points[CAPTIONED].semantic  # the captioned image ranks high, not first
    classes = (Branch(SparseVector((1, 11), (0.5, 0.5)), (), CLASSES, 1.0),)  # type: ignore[arg-type]
    words = query_vector([("golden", 1.0)])
    with_classes = {h.id: h.score for h in store.search_images(q, SEMANTIC, N, fused=classes)}
    both = store.search_images(q, SEMANTIC, N, fused=classes, lexical=words)
    assert both[0].id == points[CAPTIONED].id
    assert both[0].score == pytest.approx(_lifted(with_classes[points[CAPTIONED].id], _bm25(7, 1)), abs=1e-3)
    # words and images together: the lexical ranking is one more of the fused rankings
    visual = (Branch(points[3].visual, (), "visual", 1.0),)
    fused = store.search_images(q, SEMANTIC, 3, fused=visual)
    fused_lexical = store.search_images(q, SEMANTIC, 3, fused=visual, lexical=words)
    assert points[CAPTIONED].id in [h.id for h in fused_lexical]
    # in RRF scores (each over the best a fusion of its rankings can give): the top is not lowered
    two, three = fused_scale((1.0, 1.0)).high, fused_scale((1.0, 1.0, 1.0)).high
    assert fused_lexical[0].score * three > fused[0].score * two * 0.99
    assert all(0 <= h.score <= 1 for h in fused + fused_lexical)


def test_relabelling_updates_the_lexical_index(loaded):
    store, points = loaded
    target = points[12].id
    store.update_images([target], label="wolfhound", set_metadata={"caption": "grey and shaggy"})
    assert [h.id for h in store.search_lexical(query_vector([("wolfhound", 1.0)]), 5)] == [target]
    assert [h.id for h in store.search_lexical(query_vector([("shaggy", 1.0)]), 5)] == [target]
    assert target not in {h.id for h in store.search_lexical(query_vector([("cat", 1.0)]), N)}


@pytest.mark.parametrize("kind", ["edge", "remote"])
@pytest.mark.parametrize("sparse", [(CLASSES,), (CLASSES, LEGACY_TEXT)], ids=["no-text", "idf-text"])
def test_a_collection_made_before_the_lexical_vector_searches_semantically(
    kind, sparse, tmp_path, monkeypatch
):
    """Made before the lexical channel, or with its IDF-weighted `text` vector (before issue 20.6):
    semantic search until a reindex rebuilds the collection."""
    monkeypatch.setitem(SPARSE_VECTORS, IMAGES, sparse)
    store = _store(kind, tmp_path)
    store.ensure_collections(VIS, SEM, SEM)
    points = _points()
    store.upsert_images(points)
    assert not store.has_text()
    q = points[0].semantic + 0.5 * points[CAPTIONED].semantic  # the captioned image ranks high, not first
    plain = store.search_images(q, SEMANTIC, 5)
    hybrid = store.search_images(q, SEMANTIC, 5, lexical=query_vector([("retriever", 1.0)]))
    assert [(h.id, h.score) for h in hybrid] == [(h.id, h.score) for h in plain]
    with pytest.raises(FailedPrecondition, match="reindex"):
        store.search_lexical(query_vector([("retriever", 1.0)]), 5)
    store.close()


def test_a_namespaces_lexical_scores_depend_on_its_own_images_only(loaded):
    """Issue 20.6: team-a's images using team-b's word leave team-b's scores as they were (an IDF
    per collection lowered them: 11.59 -> 8.71 with 8 uses in team-a)."""
    store, points = loaded
    b = points[0]
    store.upsert_images(
        [
            replace(
                b,
                id=str(uuid.UUID(int=900)),
                payload={**b.payload, "namespace": "team-b", "metadata": {"caption": "zorblax"}},
            )
        ]
    )
    words = query_vector([("zorblax", 1.0)])
    q = b.semantic
    before = store.search_lexical(words, 5, namespace="team-b")
    hybrid_before = store.search_images(q, SEMANTIC, 5, lexical=words, namespace="team-b")
    assert len(before) == 1
    team_a = [
        replace(
            p,
            id=str(uuid.UUID(int=1000 + i)),
            payload={**p.payload, "namespace": "team-a", "metadata": {"caption": "zorblax zorblax"}},
        )
        for i, p in enumerate(points[:8])
    ]
    store.upsert_images(team_a)
    assert len(store.search_lexical(words, 20, namespace="team-a")) == 8
    assert store.search_lexical(words, 5, namespace="team-b") == before
    assert store.search_images(q, SEMANTIC, 5, lexical=words, namespace="team-b") == hybrid_before
