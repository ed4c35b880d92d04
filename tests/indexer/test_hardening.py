"""What ingestion refuses, as plain Python with the real embedder and a real Qdrant Edge store:
payload limits per item, ids that hold other content, vectors whose length overflows, a reindex
batch out of range, and a store that refuses writes (a full disk) without losing the answer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from imgsearch.config.settings import Limits
from imgsearch.errors import InvalidArgument, ResourceExhausted
from imgsearch.indexer.admin import upsert_vectors
from imgsearch.indexer.ingest import IngestItem, Ingestor, content_id
from imgsearch.indexer.reindex import reindex
from imgsearch.types.queries import PointVectors
from imgsearch.vectorstore.edge import EdgeStore

pytestmark = pytest.mark.slow

INVALID, ALREADY_EXISTS, EXHAUSTED = 3, 6, 8


def _store(path, runtime, **options) -> EdgeStore:
    s = EdgeStore(path, **options)
    info = runtime.model_info()
    s.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
    return s


@pytest.fixture
def store(tmp_path, runtime):
    s = _store(tmp_path / "qdrant", runtime)
    yield s
    s.close()


def test_items_over_a_payload_limit_fail_alone_and_repeat_little(runtime, store, photos):
    limits = Limits()
    cat = photos["black_cat"].read_bytes()
    items = [
        IngestItem(cat, uri="u" * 5000),
        IngestItem(cat, label="l" * 300),
        IngestItem(cat, metadata={str(i): "" for i in range(65)}),
        IngestItem(cat, metadata={"blob": "x" * (8 << 20)}),
        IngestItem(cat, id="7" * 5000),
        IngestItem(cat, uri="fine", metadata={"k": "v" * 8000}),
    ]
    out = list(Ingestor(runtime, store, batch=8, limits=limits).ingest(items))
    assert [o.status for o in out] == ["failed"] * 5 + ["new"]
    assert all(o.error_code == INVALID for o in out[:5])
    limits_hit = ["max_uri_bytes", "max_label_bytes", "max_metadata_keys", "max_metadata_value_bytes"]
    for o, limit in zip(out[:4], limits_hit, strict=True):
        assert limit in o.error
    assert all(len(o.uri) < 200 and len(o.id) < 200 and len(o.error) < 500 for o in out)
    assert store.count_images() == 1


def test_an_id_holding_other_content_is_never_a_duplicate(runtime, store, photos):
    ingestor = Ingestor(runtime, store, batch=8)
    cat, tent = photos["black_cat"].read_bytes(), photos["tent"].read_bytes()
    custom = "00000000-0000-0000-0000-0000000000bb"
    (first,) = ingestor.ingest([IngestItem(cat, id=custom, uri="cat")])
    assert first.status == "new"
    (other,) = ingestor.ingest([IngestItem(tent, id=custom, uri="tent")])
    assert other.status == "failed" and other.error_code == ALREADY_EXISTS
    (same,) = ingestor.ingest([IngestItem(cat, id=custom, uri="cat")])
    assert same.status == "duplicate"
    # squatting: the tent stored under the cat's content id; the cat then takes its id back
    cat_id, cat_sha = content_id(cat)
    (squat,) = ingestor.ingest([IngestItem(tent, id=cat_id, uri="squatter")])
    assert squat.status == "new"
    (real,) = ingestor.ingest([IngestItem(cat, uri="the cat")])
    assert real.status == "new" and real.id == cat_id
    assert store.stored_hashes([cat_id]) == {cat_id: cat_sha}
    assert store.get_image(cat_id).payload["uri"] == "the cat"


@pytest.mark.parametrize(
    ("value", "why"), [(3e38, "too long"), (0.0, "zero vector"), (1e-50, "zero vector"), (np.nan, "NaN")]
)
def test_vectors_are_measured_in_float64(runtime, store, value, why):
    info = runtime.model_info()
    point = PointVectors(
        "00000000-0000-0000-0000-0000000000cc", [value] * info.visual_dim, [1.0] * info.semantic_dim
    )
    with pytest.raises(InvalidArgument, match=why):
        upsert_vectors(store, info, [point])
    assert store.count_images() == 0


def test_small_and_large_finite_vectors_are_normalised(runtime, store):
    info = runtime.model_info()
    points = [
        PointVectors(
            f"00000000-0000-0000-0000-0000000000d{i}", [v] * info.visual_dim, [v] * info.semantic_dim
        )
        for i, v in enumerate((1e-30, 1e20))  # their squares underflow / overflow float32
    ]
    assert upsert_vectors(store, info, points) == 2
    for p in points:
        stored = store.get_image(p.id)
        assert np.linalg.norm(stored.visual) == pytest.approx(1.0, abs=1e-5)


def test_one_bad_point_stores_none(runtime, store):
    info = runtime.model_info()
    good = PointVectors(
        "00000000-0000-0000-0000-0000000000e1", [1.0] * info.visual_dim, [1.0] * info.semantic_dim
    )
    bad = PointVectors(
        "00000000-0000-0000-0000-0000000000e2",
        [1.0] * info.visual_dim,
        [1.0] * info.semantic_dim,
        uri="u" * 3000,
    )
    with pytest.raises(InvalidArgument, match="max_uri_bytes"):
        upsert_vectors(store, info, [good, bad])
    assert store.count_images() == 0


@pytest.mark.parametrize("batch", [0, -1, 4097])
def test_reindex_batch_out_of_range(runtime, store, batch):
    with pytest.raises(InvalidArgument, match="batch"):
        list(reindex(runtime, store, batch))


def test_a_store_that_refuses_writes_fails_the_items_and_keeps_reads(tmp_path, runtime, photos):
    """Past `min_free_bytes` (here: more than the disk has) every write is refused with the
    store's reason, each item says so, nothing is stored, and reads go on."""
    st = os.statvfs(tmp_path)
    s = _store(tmp_path / "qdrant", runtime)
    (kept,) = Ingestor(runtime, s, batch=8).ingest([IngestItem(photos["puppy"].read_bytes(), uri="puppy")])
    s.close()
    full = EdgeStore(tmp_path / "qdrant", min_free_bytes=st.f_blocks * st.f_frsize + (1 << 30))
    try:
        out = list(
            Ingestor(runtime, full, batch=8).ingest(
                [IngestItem(photos[n].read_bytes()) for n in ("bear", "tent")]
            )
        )
        assert [o.status for o in out] == ["failed", "failed"]
        assert all(o.error_code == EXHAUSTED and "disk nearly full" in o.error for o in out)
        with pytest.raises(ResourceExhausted):
            full.delete_images(ids=[kept.id])
        assert full.count_images() == 1 and full.get_image(kept.id) is not None
    finally:
        full.close()


def test_an_ingest_call_takes_at_most_max_images_per_stream(runtime, store, photos):
    """The answer has a result per image, so the number of images bounds its size: past the cap
    the call is refused, after the images before it were processed."""
    limits = Limits(max_images_per_stream=3)
    items = [IngestItem(photos[n].read_bytes(), uri=n) for n in ("bear", "tent", "drone", "puppy", "island")]
    got = []
    with pytest.raises(ResourceExhausted, match="max_images_per_stream"):
        got.extend(Ingestor(runtime, store, batch=2, limits=limits).ingest(items))
    assert store.count_images() == 3


def test_namespaces_cannot_collide_or_probe_through_ids(runtime, store, photos):
    """Ids are per namespace: the same photo is new in each, with the same public id, and
    team-b storing under team-a's future content id changes nothing team-a sees or is told."""
    ingestor = Ingestor(runtime, store, batch=8)
    info = runtime.model_info()
    cat, tent = photos["black_cat"].read_bytes(), photos["tent"].read_bytes()
    cat_id, _ = content_id(cat)
    squat = PointVectors(cat_id, [1.0] * info.visual_dim, [1.0] * info.semantic_dim, uri="squat")
    assert upsert_vectors(store, info, [squat], namespace="team-b") == 1  # team-b squats the id
    (b_tent,) = ingestor.ingest([IngestItem(tent, id=cat_id, namespace="team-b")])  # other content
    assert b_tent.status == "failed" and b_tent.error_code == ALREADY_EXISTS  # its own namespace's rule
    (a_cat,) = ingestor.ingest([IngestItem(cat, uri="a", namespace="team-a")])
    assert (a_cat.status, a_cat.id) == ("new", cat_id)
    (d_cat,) = ingestor.ingest([IngestItem(cat, uri="d")])
    assert (d_cat.status, d_cat.id) == ("new", cat_id)
    (again,) = ingestor.ingest([IngestItem(cat, uri="a", namespace="team-a")])
    assert again.status == "duplicate"
    assert store.get_image(cat_id, "team-b").payload["uri"] == "squat"
    assert store.get_image(cat_id, "team-a").payload["uri"] == "a"
    # team-b's answers are the same whether team-a holds the photo or not
    (probe,) = ingestor.ingest([IngestItem(tent, id=cat_id, namespace="team-b")])
    assert (probe.status, probe.error_code) == (b_tent.status, b_tent.error_code)
    assert store.delete_images(ids=[cat_id], namespace="team-a") == 1
    assert store.get_image(cat_id, "team-b") is not None and store.get_image(cat_id) is not None


def test_an_empty_metadata_key_is_refused_everywhere(runtime, store, photos):
    """No filter could name it: a form field `metadata.` over HTTP gave one."""
    cat = photos["black_cat"].read_bytes()
    (out,) = Ingestor(runtime, store, batch=8).ingest([IngestItem(cat, metadata={"": "x"})])
    assert out.status == "failed" and out.error_code == INVALID and "must not be empty" in out.error
    info = runtime.model_info()
    point = PointVectors(
        "00000000-0000-0000-0000-0000000000ee",
        [1.0] * info.visual_dim,
        [1.0] * info.semantic_dim,
        metadata={"": "x"},
    )
    with pytest.raises(InvalidArgument, match="must not be empty"):
        upsert_vectors(store, info, [point])
    assert store.count_images() == 0
