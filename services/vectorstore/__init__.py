"""Vector-store adapters: Qdrant Edge embedded (default) or a Qdrant server (QDRANT_URL set).

Import `open_store` and the types from here; the Qdrant libraries load only when a store opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgsearch.vectorstore.base import VectorStore
from imgsearch.vectorstore.schema import IMAGES, SEMANTIC, VISUAL, WORDS, VectorName
from imgsearch.vectorstore.storage import StorageOptions
from imgsearch.vectorstore.types import CollectionDims, Hit, ImagePoint, PayloadFilter

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
    storage = storage_options(settings)
    quantize = storage.quantized
    if settings.qdrant_url:
        from imgsearch.vectorstore.remote import RemoteStore

        if settings.qdrant_url == ":memory:":
            from qdrant_client import QdrantClient

            return RemoteStore(
                client=QdrantClient(":memory:"),
                local=True,
                hnsw_ef=hnsw_ef,
                quantize=quantize,
                storage=storage,
            )

        return RemoteStore(
            settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            hnsw_ef=hnsw_ef,
            shards=settings.qdrant_shards,
            replicas=settings.qdrant_replicas,
            quantize=quantize,
            storage=storage,
        )
    from imgsearch.vectorstore.edge import EdgeStore

    return EdgeStore(
        settings.data_dir / "qdrant",
        hnsw_ef=hnsw_ef,
        search_threads=settings.search_threads,
        quantize=quantize,
        min_free_bytes=settings.limits.min_free_disk_bytes,
        storage=storage,
        optimize_max_pending=settings.optimize_max_pending,
    )


def storage_options(settings: Settings) -> StorageOptions:
    """The collection layout the settings ask for; ValueError names a setting out of range."""
    return StorageOptions(
        quantization=settings.quantization,
        vectors_on_disk=settings.vectors_on_disk,
        payload_on_disk=settings.payload_on_disk,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        max_segment_mb=settings.max_segment_mb,
    )
