"""The store every store test runs on: each test once over EdgeStore (embedded) and once over
RemoteStore in qdrant-client's local mode, with small collections (visual 16, semantic 8, words 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from imgsearch.vectorstore import VectorStore
from imgsearch.vectorstore.edge import EdgeStore
from imgsearch.vectorstore.remote import RemoteStore

VIS, SEM, WORD = 16, 8, 8


@pytest.fixture(params=["edge", "remote"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "edge":
        s: VectorStore = EdgeStore(tmp_path / "qdrant")
    else:
        s = RemoteStore(client=QdrantClient(":memory:"), local=True)
    s.ensure_collections(VIS, SEM, WORD)
    yield s
    s.close()
