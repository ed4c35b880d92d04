"""Vector-store adapters: Qdrant Edge embedded (default) or a Qdrant server (QDRANT_URL set).

Import `open_store` and the types from here; the Qdrant libraries load only when a store opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgsearch.vectorstore.base import (
    IMAGES,
    SEMANTIC,
    VISUAL,
    WORDS,
    CollectionDims,
    Hit,
    ImagePoint,
    PayloadFilter,
    VectorName,
    VectorStore,
)
from imgsearch.vectorstore.engine import QUANTIZATIONS

if TYPE_CHECKING:
    from imgsearch.config.settings import Settings

__all__ = [
    "IMAGES",
    "SEMANTIC",
    "VISUAL",
    "WORDS",
    "CollectionDims",
    "Hit",
    "ImagePoint",
    "PayloadFilter",
    "VectorName",
    "VectorStore",
    "open_store",
]


def open_store(settings: Settings, *, hnsw_ef: int | None = None) -> VectorStore:
    """RemoteStore when `settings.qdrant_url` is set, else EdgeStore under `<data_dir>/qdrant`.

    QDRANT_URL=":memory:" is qdrant-client's local mode: the Qdrant-server code path with no
    server, for tests and trials (one process only, nothing persisted).
    """
    hnsw_ef = hnsw_ef or settings.hnsw_ef
    if settings.quantization not in QUANTIZATIONS:
        raise ValueError(
            f"IMGSEARCH_QUANTIZATION must be one of {', '.join(QUANTIZATIONS)}, got {settings.quantization!r}"
        )
    quantize = settings.quantization == "int8"
    if settings.qdrant_url:
        from imgsearch.vectorstore.remote import RemoteStore

        if settings.qdrant_url == ":memory:":
            from qdrant_client import QdrantClient

            return RemoteStore(
                client=QdrantClient(":memory:"), local=True, hnsw_ef=hnsw_ef, quantize=quantize
            )

        return RemoteStore(
            settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            hnsw_ef=hnsw_ef,
            shards=settings.qdrant_shards,
            replicas=settings.qdrant_replicas,
            quantize=quantize,
        )
    from imgsearch.vectorstore.edge import EdgeStore

    return EdgeStore(
        settings.data_dir / "qdrant",
        hnsw_ef=hnsw_ef,
        search_threads=settings.search_threads,
        quantize=quantize,
    )
