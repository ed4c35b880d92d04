"""Namespaces, listing, updates and imports in the store, on both adapters (Qdrant Edge, and
RemoteStore over qdrant-client's local mode)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from imgsearch.errors import InvalidArgument
from imgsearch.vectorstore import IMAGES, SEMANTIC, ImagePoint, PayloadFilter, VectorStore, payloads
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.engine import Row, SparseVector
from imgsearch.vectorstore.ids import content_id_of, legacy_content_id, point_id
from imgsearch.vectorstore.schema import CLASSES, VISUAL

VIS, SEM, WORD = 16, 8, 8


def _points(n: int, namespace: str = "", label: str = "x", seed: int = 0) -> list[ImagePoint]:
    rng = np.random.default_rng(seed)
    return [
        ImagePoint(
            str(uuid.uuid4()),
            rng.standard_normal(VIS).astype(np.float32),
            rng.standard_normal(SEM).astype(np.float32),
            {"uri": f"/p/{i}.jpg", "label": label, "metadata": {"n": str(i)}, "namespace": namespace},
        )
        for i in range(n)
    ]


def test_hits_carry_the_vectors_asked_for_in_the_same_search(store: VectorStore):
    """What the look-alike search rescores its candidates by: their semantic vectors and classes,
    read back by the visual search itself, in the caller's namespace only."""
    default, a = _points(3), _points(2, "a", seed=1)
    classes = SparseVector((3, 1000), (0.5, 1.0))
    default[0] = replace(default[0], classes=classes)
    store.upsert_images(default + a)
    hits = store.search_images(default[0].visual, VISUAL, 5, with_vectors=(SEMANTIC, CLASSES))
    assert {h.id for h in hits} == {p.id for p in default}
    first = next(h for h in hits if h.id == default[0].id)
    unit = default[0].semantic / np.linalg.norm(default[0].semantic)
    np.testing.assert_allclose(np.asarray(first.vectors[SEMANTIC]), unit, atol=1e-6)
    assert first.vectors[CLASSES] == classes
    assert all(set(h.vectors) <= {SEMANTIC, CLASSES} and SEMANTIC in h.vectors for h in hits)
    assert store.search_images(default[0].visual, VISUAL, 5)[0].vectors == {}  # none unless asked
    found = store.in_namespace("a").search_images(a[0].visual, VISUAL, 5, with_vectors=(SEMANTIC,))
    assert {h.id for h in found} == {p.id for p in a} and all(set(h.vectors) == {SEMANTIC} for h in found)
    with pytest.raises(InvalidArgument):
        store.search_images(default[0].visual, VISUAL, 5, with_vectors=("words",))


def test_each_call_sees_only_its_namespace(store: VectorStore):
    default, a, b = _points(5), _points(4, "a", seed=1), _points(3, "b", seed=2)
    store.upsert_images(default + a + b)
    query = np.ones(SEM)
    assert {h.id for h in store.search_images(query, SEMANTIC, 100)} == {p.id for p in default}
    assert {h.id for h in store.search_images(query, SEMANTIC, 100, namespace="a")} == {p.id for p in a}
    assert (store.count_images(), store.count_images(namespace="b"), store.count_images(namespace=None)) == (
        5,
        3,
        12,
    )
    assert store.get_image(a[0].id) is None and store.get_image(a[0].id, namespace="a") is not None
    assert [p.id for p in store.get_images([b[0].id, a[0].id], "b")] == [b[0].id]
    assert store.facet_images(None, namespace="a") == [("x", 4)]
    assert store.delete_images(ids=[p.id for p in a], namespace="b") == 0  # a's ids, b's namespace
    assert store.delete_images(all=True, namespace="b") == 3
    assert store.count_images(namespace="a") == 4 and store.count_images() == 5
    view = store.in_namespace("a")
    assert {h.id for h in view.search_images(query, SEMANTIC, 100)} == {p.id for p in a}
    with pytest.raises(InvalidArgument, match="namespace"):
        store.search_images(query, SEMANTIC, 3, namespace="no spaces allowed")


def test_images_stored_before_namespaces_join_the_default_one_when_the_store_opens(store: VectorStore):
    legacy = _points(3)
    rows = [
        Row(p.id, {"visual": p.visual, "semantic": p.semantic}, {"uri": p.payload["uri"]}) for p in legacy
    ]
    store._upsert(IMAGES, rows)  # as an older version stored them: no namespace key
    assert store.get_image(legacy[0].id) is not None  # by id they are in the default namespace already
    store.ensure_collections(VIS, SEM, WORD)  # what every start does
    assert store.count_images() == 3 and store.count_images(namespace="a") == 0
    assert {h.id for h in store.search_images(np.ones(SEM), SEMANTIC, 10)} == {p.id for p in legacy}


def test_listing_pages_in_id_order_under_a_filter(store: VectorStore):
    points = _points(25, "a")
    store.upsert_images(points)
    seen, token = [], ""
    while True:
        page, token = store.list_images(namespace="a", limit=10, page_token=token)
        seen += [p.id for p in page]
        assert all(p.visual.size == 0 for p in page)  # no vectors unless asked for
        if not token:
            break
    assert seen == sorted((p.id for p in points), key=lambda i: point_id(i, "a"))  # the engine's order
    filtered, _ = store.list_images(PayloadFilter(metadata={"n": "3"}), namespace="a", with_vectors=True)
    assert [p.id for p in filtered] == [points[3].id] and filtered[0].visual.shape == (VIS,)
    everything, _ = store.list_images(namespace=None, limit=1000)
    assert len(everything) == 25
    for bad in ({"limit": 0}, {"limit": 1001}, {"page_token": "nope"}):
        with pytest.raises(InvalidArgument):
            store.list_images(**bad)


def test_update_changes_the_payload_and_keeps_the_vectors(store: VectorStore):
    points = _points(6, "a")
    store.upsert_images(points)
    before = store.get_image(points[0].id, "a")
    assert store.update_images([points[0].id], namespace="a", label="new", set_metadata={"k": "v"}) == 1
    after = store.get_image(points[0].id, "a")
    assert after.payload["label"] == "new" and after.payload["metadata"] == {"n": "0", "k": "v"}
    assert np.array_equal(before.visual, after.visual) and np.array_equal(before.semantic, after.semantic)
    assert store.count_images(PayloadFilter(metadata={"k": "v"}), namespace="a") == 1  # the index follows
    assert store.update_images(flt=PayloadFilter(label="x"), namespace="a", remove_metadata=("n",)) == 5
    # only the relabelled image (no longer "x") keeps its key
    assert [p.id for p in store.list_images(PayloadFilter(has_metadata=("n",)), namespace="a")[0]] == [
        points[0].id
    ]
    assert store.update_images([points[1].id], label="elsewhere") == 0  # the default namespace has none
    with pytest.raises(InvalidArgument):
        store.update_images([points[0].id], namespace="a")  # nothing to change
    with pytest.raises(InvalidArgument):
        store.update_images(namespace="a", label="all")  # neither ids nor a filter


def test_import_skips_ids_already_stored(store: VectorStore):
    points = _points(8, "a")
    store.upsert_images(points[:3])
    assert store.import_images(points) == (5, 3)
    assert store.import_images(points) == (0, 8)
    assert store.count_images(namespace="a") == 8


def test_an_older_embedded_store_gets_the_namespace_index(tmp_path: Path):
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collections(VIS, SEM, WORD)
    store._shards[IMAGES].update(qe.UpdateOperation.delete_field_index("namespace"))
    assert "namespace" not in store._shards[IMAGES].info().payload_schema
    points = _points(2)
    store._upsert(IMAGES, [Row(p.id, {"visual": p.visual, "semantic": p.semantic}, {}) for p in points])
    store.close()
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collections(VIS, SEM, WORD)
    assert "namespace" in store._shards[IMAGES].info().payload_schema
    assert store.count_images() == 2
    store.close()


def test_default_namespace_searches_stay_scoped_whatever_the_store_knew(tmp_path: Path):
    """The embedded store leaves the namespace condition out while only the default namespace
    holds images; a named namespace's images never show in a default search: not once one is
    written, not after reopening, not when one lands while the store believed there was none."""
    query = np.ones(SEM)
    store = EdgeStore(tmp_path / "qdrant")
    store.ensure_collections(VIS, SEM, WORD)
    default = _points(5)
    store.upsert_images(default)
    assert {h.id for h in store.search_images(query, SEMANTIC, 100)} == {p.id for p in default}
    named = _points(4, "a", seed=1)
    store.upsert_images(named)
    assert {h.id for h in store.search_images(query, SEMANTIC, 100)} == {p.id for p in default}
    store.close()

    reopened = EdgeStore(tmp_path / "qdrant")
    reopened.ensure_collections(VIS, SEM, WORD)
    assert {h.id for h in reopened.search_images(query, SEMANTIC, 100)} == {p.id for p in default}
    reopened._named_namespaces = False  # as if the named images landed while a search began
    assert {h.id for h in reopened.search_images(query, SEMANTIC, 100)} == {p.id for p in default}
    reopened.close()


# -- ids per namespace ------------------------------------------------------------------------------


def _same_ids(points: list[ImagePoint], namespace: str, label: str, seed: int) -> list[ImagePoint]:
    """The same ids as `points`, other vectors and payload, in `namespace`."""
    others = _points(len(points), namespace, label, seed)
    return [ImagePoint(p.id, o.visual, o.semantic, o.payload) for p, o in zip(points, others, strict=True)]


def test_the_same_id_is_one_image_per_namespace(store: VectorStore):
    a = _points(4, "a", "mine")
    b = _same_ids(a, "b", "theirs", seed=5)
    d = _same_ids(a, "", "default", seed=6)
    store.upsert_images(a + b + d)
    assert store.count_images(namespace=None) == 12
    for namespace, label in (("a", "mine"), ("b", "theirs"), ("", "default")):
        got = store.get_images([p.id for p in a], namespace)
        assert [p.id for p in got] == [p.id for p in a] and {p.payload["label"] for p in got} == {label}
        hits = store.search_images(np.ones(SEM), SEMANTIC, 10, namespace=namespace)
        assert {h.id for h in hits} == {p.id for p in a}  # every surface shows the public id
        listed, _ = store.list_images(namespace=namespace, with_vectors=True)
        assert {p.id for p in listed} == {p.id for p in a} and "_id" not in listed[0].payload
    assert store.update_images([a[0].id], namespace="b", label="changed") == 1
    assert store.get_image(a[0].id, "a").payload["label"] == "mine"
    assert store.delete_images(ids=[a[1].id], namespace="a") == 1
    assert store.get_image(a[1].id, "a") is None and store.get_image(a[1].id, "b") is not None
    assert store.get_image(a[1].id, "") is not None
    assert store.existing_ids([p.id for p in a], "a") == {a[0].id, a[2].id, a[3].id}
    # a search for images like one skips that one in its own namespace only
    flt = PayloadFilter(exclude_ids=(a[0].id,))
    assert a[0].id not in {h.id for h in store.search_images(np.ones(SEM), SEMANTIC, 10, flt, namespace="b")}
    exported, _ = store.list_images(namespace=None, limit=100, with_vectors=True)
    assert sorted((p.payload.get("namespace", ""), p.id) for p in exported) == sorted(
        [("a", p.id) for p in a if p is not a[1]] + [("b", p.id) for p in a] + [("", p.id) for p in a]
    )


def test_an_import_skips_only_ids_its_own_namespace_holds_and_keeps_the_first_of_a_repeat(store: VectorStore):
    a = _points(3, "a")
    store.upsert_images(a)
    b = _same_ids(a, "b", "b", seed=2)
    repeat = ImagePoint(b[0].id, b[1].visual, b[1].semantic, {**b[1].payload, "label": "second"})
    assert store.import_images([*b, repeat]) == (3, 1)
    assert store.get_image(b[0].id, "b").payload["label"] == "b"  # the first row of the id counts
    assert store.import_images(a) == (0, 3)


def test_version_8_ids_are_kept_for_the_store(store: VectorStore):
    (p,) = _points(1)
    derived = point_id(p.id, "a")
    with pytest.raises(InvalidArgument, match="version-8"):
        store.upsert_images([ImagePoint(derived, p.visual, p.semantic, p.payload)])
    with pytest.raises(InvalidArgument, match="version-8"):
        store.get_images([derived])


def test_named_images_stored_under_their_public_id_move_to_their_point_id_on_open(store: VectorStore):
    """What versions before per-namespace points stored: a named namespace's image under its id,
    its content id derived from the namespace; it keeps working, under the content id all share."""
    sha = "ab" * 32
    old_content = legacy_content_id(sha, "a")
    (given,) = _points(1, "a", seed=3)
    rows = [
        Row(pid, {"visual": p.visual, "semantic": p.semantic}, payloads.to_stored({**p.payload, "sha256": s}))
        for pid, p, s in ((old_content, _points(1, "a", seed=4)[0], sha), (given.id, given, ""))
    ]
    store._upsert(IMAGES, rows)
    store.ensure_collections(VIS, SEM, WORD)  # what every start does
    assert store.count_images(namespace="a") == 2
    assert store.get_image(content_id_of(sha), "a").payload["sha256"] == sha
    assert store.get_image(given.id, "a") is not None and store.get_image(given.id) is None
    assert {p.id for p in store.list_images(namespace="a")[0]} == {content_id_of(sha), given.id}
