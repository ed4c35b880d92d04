"""The query features of the store (paging, a score floor, negatives, MMR, richer filters, facets),
each run on both adapters: Qdrant Edge, and RemoteStore over qdrant-client's local mode."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from imgsearch.errors import InvalidArgument
from imgsearch.vectorstore import SEMANTIC, VISUAL, ImagePoint, PayloadFilter, VectorStore
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.plan import FUSION_CANDIDATES, RRF_K, TEXT_SCALE, Branch, fused_scale
from imgsearch.vectorstore.remote import RemoteStore

VIS, SEM = 16, 8
LABELS = ("cat", "dog", "car")


def _points(n: int = 60) -> list[ImagePoint]:
    rng = np.random.default_rng(3)
    vis = rng.standard_normal((n, VIS)).astype(np.float32)
    sem = rng.standard_normal((n, SEM)).astype(np.float32)
    points = []
    for i in range(n):
        metadata = {"shot at": "night" if i % 5 == 0 else "day"}
        if i % 2:
            metadata["camera.model"] = f"cam{i % 3}"
        payload = {"uri": f"/p/{i}.jpg", "label": LABELS[i % 3], "metadata": metadata}
        points.append(ImagePoint(str(uuid.UUID(int=i + 1)), vis[i], sem[i], payload))
    return points


@pytest.fixture(params=["edge", "remote"])
def loaded(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "edge":
        s: VectorStore = EdgeStore(tmp_path / "qdrant")
    else:
        s = RemoteStore(client=QdrantClient(":memory:"), local=True)
    s.ensure_collections(VIS, SEM, SEM)
    points = _points()
    s.upsert_images(points)
    yield s, points
    s.close()


def _ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_offset_pages_through_the_ranking_and_min_score_cuts_it(loaded):
    store, points = loaded
    q = points[4].semantic
    top = store.search_images(q, SEMANTIC, 20)
    assert _ids(store.search_images(q, SEMANTIC, 5, offset=5)) == _ids(top)[5:10]
    floor = top[6].score
    above = store.search_images(q, SEMANTIC, 20, min_score=floor)
    assert _ids(above) == [h.id for h in top if h.score >= floor]
    with pytest.raises(InvalidArgument, match="offset"):
        store.search_images(q, SEMANTIC, 5, offset=-1)
    with pytest.raises(InvalidArgument, match="min_score"):
        store.search_images(q, SEMANTIC, 5, min_score=float("nan"))


def test_a_negative_example_sends_images_near_it_to_the_end(loaded):
    store, points = loaded
    pos, neg = points[0].semantic, points[1].semantic
    plain = _ids(store.search_images(pos, SEMANTIC, 60))
    pushed = _ids(store.search_images(pos, SEMANTIC, 60, negatives=(neg,)))
    assert plain.index(points[1].id) < 59 and pushed[-1] == points[1].id
    assert pushed[0] == points[0].id and sorted(pushed) == sorted(plain)


def test_mmr_picks_varied_results_among_near_copies(loaded):
    store, points = loaded
    rng = np.random.default_rng(9)
    base = points[0]
    copies = [
        ImagePoint(
            str(uuid.UUID(int=1000 + i)), base.visual, base.semantic + 0.01 * rng.standard_normal(SEM), {}
        )
        for i in range(8)
    ]
    store.upsert_images(copies)
    copy_ids = {c.id for c in copies} | {base.id}
    plain = _ids(store.search_images(base.semantic, SEMANTIC, 5))
    diverse = store.search_images(base.semantic, SEMANTIC, 5, mmr_lambda=0.5)
    assert set(plain) <= copy_ids
    assert len(diverse) == 5 and len(set(_ids(diverse)) & copy_ids) == 1
    # scores stay those of the similarity to the query
    cos = {
        p.id: float(p.semantic @ base.semantic / np.linalg.norm(p.semantic) / np.linalg.norm(base.semantic))
        for p in points
    }
    for h in diverse[1:]:
        assert h.score == pytest.approx(TEXT_SCALE.relevance(cos[h.id]), abs=1e-3)
    with pytest.raises(InvalidArgument, match="lambda"):
        store.search_images(base.semantic, SEMANTIC, 5, mmr_lambda=1.5)


def test_mmr_and_negatives_together(loaded):
    store, points = loaded
    hits = store.search_images(
        points[0].semantic, SEMANTIC, 10, negatives=(points[1].semantic,), mmr_lambda=0.7
    )
    assert len(hits) == 10 and points[1].id not in _ids(hits)


def _labels(store, flt) -> set[str]:
    return {h.payload["label"] for h in store.search_images(np.ones(SEM), SEMANTIC, 60, flt)}


def test_any_of_labels_and_exclusions(loaded):
    store, points = loaded
    assert _labels(store, PayloadFilter(labels=("cat", "dog"))) == {"cat", "dog"}
    assert _labels(store, PayloadFilter(exclude_labels=("cat",))) == {"dog", "car"}
    assert _labels(store, PayloadFilter(label="cat", labels=("cat", "dog"))) == {"cat"}
    assert store.count_images(PayloadFilter(labels=("cat", "dog"))) == 40
    night = PayloadFilter(exclude_metadata=(("shot at", "night"),))
    assert store.count_images(night) == 48
    both = PayloadFilter(exclude_metadata=(("shot at", "night"), ("shot at", "day")))
    assert store.count_images(both) == 0


def test_metadata_key_present_or_absent(loaded):
    store, points = loaded
    assert store.count_images(PayloadFilter(has_metadata=("camera.model",))) == 30
    assert store.count_images(PayloadFilter(missing_metadata=("camera.model",))) == 30
    assert store.count_images(PayloadFilter(has_metadata=("shot at",))) == 60
    assert store.count_images(PayloadFilter(missing_metadata=("nope",))) == 60
    with pytest.raises(InvalidArgument, match="metadata key"):
        store.count_images(PayloadFilter(has_metadata=('a"b',)))


def test_facets_count_labels_and_metadata_values_under_a_filter(loaded):
    store, points = loaded
    assert store.facet_images(None) == [("car", 20), ("cat", 20), ("dog", 20)]
    assert store.facet_images(None, PayloadFilter(exclude_labels=("dog",)), limit=1) == [("car", 20)]
    assert store.facet_images("shot at") == [("day", 48), ("night", 12)]
    cats_and_dogs = PayloadFilter(labels=("cat", "dog"))
    assert store.facet_images("camera.model", cats_and_dogs) == [("cam0", 10), ("cam1", 10)]
    assert store.facet_images("no such key") == []


def test_a_metadata_facet_is_exact_for_every_key_of_many(loaded):
    """Issue 20.11: 2,000 images x 30 keys answered nothing for key "k29" (a bounded read of every
    key's tokens before keeping one key's); now each key's values are counted exactly."""
    store, points = loaded
    many = [
        ImagePoint(
            str(uuid.UUID(int=5000 + i)),
            p.visual,
            p.semantic,
            {
                "uri": f"/m/{i}",
                "label": "many",
                "metadata": {f"k{j}": f"v{i}-{j}" if j else "shared" for j in range(30)},
            },
        )
        for i, p in enumerate(points * 6)  # 360 images, 10,800 distinct pairs
    ]
    many += [replace(m, id=str(uuid.UUID(int=9000 + i))) for i, m in enumerate(many[:3])]  # repeated values
    for i in range(0, len(many), 100):
        store.upsert_images(many[i : i + 100])
    assert store.facet_images("k29", limit=2) == [("v0-29", 2), ("v1-29", 2)]
    assert store.facet_images("k0") == [("shared", 363)]
    for key in (f"k{j}" for j in range(1, 30)):  # every key's every image (a bounded read lost k8, k9)
        counts = store.facet_images(key, limit=1000)
        assert len(counts) == 360 and sum(n for _, n in counts) == 363, key
    assert store.facet_images("k29", PayloadFilter(labels=("cat",))) == []
    assert store.facet_images("k29", namespace="elsewhere") == []


def test_two_rankings_fused_by_the_engine(loaded):
    """Weighted reciprocal rank fusion as both engines compute it: a point at 1-based rank r of a
    ranking weighted w scores 1 / (RRF_K - 1 + r / w), summed over the rankings."""
    store, points = loaded
    a, b = points[3], points[8]
    semantic = [h.id for h in store.search_images(a.semantic, SEMANTIC, 60)]
    visual = [h.id for h in store.search_images(b.visual, VISUAL, 60)]
    for weight in (1.0, 3.0):
        rrf: dict[str, float] = {}  # each ranking hands its first FUSION_CANDIDATES points to the fusion
        for ranking, w in ((semantic, 1.0), (visual, weight)):
            for r, i in enumerate(ranking[:FUSION_CANDIDATES], 1):
                rrf[i] = rrf.get(i, 0.0) + 1.0 / (RRF_K - 1 + r / w)
        want = sorted(rrf, key=lambda i: -rrf[i])[:5]
        branch = Branch(b.visual, (), VISUAL, weight)
        hits = store.search_images(a.semantic, SEMANTIC, 5, fused=(branch,))
        assert [h.id for h in hits] == want
        top = fused_scale((1.0, weight)).high  # first in both rankings
        assert [h.score for h in hits] == pytest.approx([rrf[i] / top for i in want], rel=1e-4)
        paged = store.search_images(a.semantic, SEMANTIC, 2, fused=(branch,), offset=3)
        assert [h.id for h in paged] == want[3:5]
    cats = store.search_images(a.semantic, SEMANTIC, 30, PayloadFilter(labels=("cat",)), fused=(branch,))
    assert len(cats) == 20 and {h.payload["label"] for h in cats} == {
        "cat"
    }  # the filter reaches both rankings
    with pytest.raises(InvalidArgument, match="diverse"):
        store.search_images(a.semantic, SEMANTIC, 2, fused=(branch,), mmr_lambda=0.5)
