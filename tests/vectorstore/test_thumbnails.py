"""Thumbnails in the payload, on both adapters (Qdrant Edge, and RemoteStore over qdrant-client's
local mode): read by id, per namespace, and left out of every search result."""

from __future__ import annotations

import base64
import uuid

import numpy as np

from imgsearch.vectorstore import SEMANTIC, VISUAL, ImagePoint

VIS, SEM, WORD = 16, 8, 8
THUMB = b"RIFF\x00\x00\x00\x00WEBPVP8 fake thumbnail bytes"


def _point(namespace: str = "", thumbnail: bytes | None = THUMB, seed: int = 0) -> ImagePoint:
    rng = np.random.default_rng(seed)
    payload = {"uri": "/p.jpg", "label": "x", "metadata": {}, "namespace": namespace}
    if thumbnail is not None:
        payload["thumbnail"] = base64.b64encode(thumbnail).decode()
    return ImagePoint(
        str(uuid.uuid4()),
        rng.standard_normal(VIS).astype(np.float32),
        rng.standard_normal(SEM).astype(np.float32),
        payload,
    )


def test_thumbnails_are_read_by_id_within_their_namespace(store):
    kept, bare, other = _point(seed=1), _point(thumbnail=None, seed=2), _point("team-b", seed=3)
    store.upsert_images([kept, bare, other])
    assert store.thumbnails([kept.id, bare.id, other.id, str(uuid.uuid4())]) == {kept.id: THUMB}
    assert store.thumbnails([other.id], "team-b") == {other.id: THUMB}
    assert store.thumbnails([]) == {}


def test_searches_leave_the_thumbnail_out(store):
    point = _point(seed=4)
    store.upsert_images([point])
    for vector, using in ((point.visual, VISUAL), (point.semantic, SEMANTIC)):
        (hit,) = store.search_images(vector, using, 1)
        assert hit.id == point.id and hit.payload["uri"] == "/p.jpg"
        assert "thumbnail" not in hit.payload


def test_a_thumbnail_stored_before_imports_were_checked_is_skipped_not_a_failure(store):
    """Imports once stored any JSON as the thumbnail (5, "###", {}): reading one serves no
    thumbnail for that image instead of failing every search with thumbnails."""
    good = _point(seed=5)
    broken = []
    for n, value in enumerate((5, "###", {}, "")):
        p = _point(seed=10 + n)
        broken.append(ImagePoint(p.id, p.visual, p.semantic, {**p.payload, "thumbnail": value}))
    store.upsert_images([good, *broken])
    assert store.thumbnails([good.id, *(p.id for p in broken)]) == {good.id: THUMB}
