"""`imgsearch reindex` gives a collection made before the taxonomic channel its `classes` vector,
rebuilt from the stored CNN features, and keeps every image (real models, real Qdrant Edge)."""

from __future__ import annotations

import pytest

from imgsearch.config.settings import Limits
from imgsearch.indexer.ingest import Ingestor
from imgsearch.indexer.reindex import reindex
from imgsearch.query.search import Page, search_text
from imgsearch.types.items import IngestItem
from imgsearch.vectorstore import IMAGES
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.schema import SPARSE_VECTORS

pytestmark = pytest.mark.slow

NAMES = ("bear", "puppy", "puppies", "chelsea", "gold_fish", "laptop")


def test_reindex_adds_the_classes_vector_to_an_old_collection(runtime, photos, tmp_path, monkeypatch):
    store = EdgeStore(tmp_path / "qdrant")
    try:
        info = runtime.model_info()
        monkeypatch.setitem(SPARSE_VECTORS, IMAGES, ())  # the collection as an older version made it
        store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
        monkeypatch.undo()
        items = [IngestItem(image=photos[n].read_bytes(), uri=n, label=n) for n in NAMES]
        ids = {r.uri: r.id for r in Ingestor(runtime, store, info.max_batch).ingest(items)}
        assert not store.has_classes()
        before = search_text(runtime, store, "bear", Page(k=3), None, Limits()).hits
        assert before[0].payload["label"] != "bear"  # the semantic channel alone misses it

        progress = list(reindex(runtime, store, batch=4))

        assert progress[-1].done == len(NAMES)
        assert store.has_classes()
        assert store.count_images(namespace=None) == len(NAMES)
        point = store.get_image(ids["puppy"])
        assert point.classes and point.payload["label"] == "puppy"
        after = search_text(runtime, store, "bear", Page(k=3), None, Limits()).hits
        assert after[0].payload["label"] == "bear"
    finally:
        store.close()
