"""`imgsearch reindex` gives a collection made before the lexical channel its `text` vector, from the
stored labels, captions and metadata, so hybrid search starts to match them (real models, real
Qdrant Edge)."""

from __future__ import annotations

import pytest

from imgsearch.config.settings import Limits
from imgsearch.errors import FailedPrecondition
from imgsearch.indexer.ingest import Ingestor
from imgsearch.indexer.reindex import reindex
from imgsearch.query.search import Page, search_text
from imgsearch.types.items import IngestItem
from imgsearch.vectorstore import IMAGES
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.schema import CLASSES, SPARSE_VECTORS

pytestmark = pytest.mark.slow

NAMES = ("bear", "puppy", "coffee", "laptop")


def test_reindex_adds_the_text_vector_to_an_old_collection(runtime, photos, tmp_path, monkeypatch):
    store = EdgeStore(tmp_path / "qdrant")
    try:
        info = runtime.model_info()
        monkeypatch.setitem(SPARSE_VECTORS, IMAGES, (CLASSES,))  # as the version before `text` made it
        store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
        monkeypatch.undo()
        items = [
            IngestItem(
                image=photos[n].read_bytes(), uri=n, caption="grandpa's lawyer" if n == "coffee" else ""
            )
            for n in NAMES
        ]
        ids = {r.uri: r.id for r in Ingestor(runtime, store, info.max_batch).ingest(items)}
        assert not store.has_text()
        with pytest.raises(FailedPrecondition, match="reindex"):
            search_text(runtime, store, "lawyer", Page(k=3), None, Limits(), mode="lexical")

        list(reindex(runtime, store, batch=4))

        assert store.has_text() and store.has_classes()
        assert store.count_images(namespace=None) == len(NAMES)
        found = search_text(runtime, store, "lawyer", Page(k=3), None, Limits(), mode="lexical").hits
        assert [h.id for h in found] == [ids["coffee"]]
        assert search_text(runtime, store, "lawyer", Page(k=3), None, Limits()).hits[0].id == ids["coffee"]
    finally:
        store.close()
